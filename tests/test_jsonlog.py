"""
C{--log-format json}: every line of a real run's log is one JSON object,
with nbecho's events as structured fields, escaped as in the text log.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from twisted.logger import eventsFromJSONLogFile, formatEvent

from tests._clients import runClient
from tests._servers import ServerFactory, runTwistd, tool

HOSTILE = b"plain\n\x1b[31mred\x1b[0m \xff\xfe\ttab\nexit\n"


def jsonEvents(text: str) -> list[dict[str, object]]:
    """
    Every line of a JSON log, each parsed on its own: a line that is not one
    JSON object fails the test.
    """
    events = []
    for line in text.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict), line
        events.append(event)
    return events


def test_json_log_file(nbechoServer: ServerFactory) -> None:
    """With --logfile, each line parses as JSON and nbecho events carry their fields."""
    server = nbechoServer(
        "--log-format", "json",
        "--listen", "tcp:0:interface=127.0.0.1",
        logFile="nbecho.log",
    )  # fmt: skip
    address = server.address("tcp:")
    result = runClient(server.port, HOSTILE)
    assert (result.stdout, result.returncode) == (HOSTILE, 0)
    server.stop()
    text = server.log()
    events = jsonEvents(text)  # every line, not just nbecho's
    assert len(events) == len(text.splitlines()) > 6
    assert all("log_text" in event and "log_time" in event for event in events)
    ours = [event for event in events if "nbecho_event" in event]
    kinds = [event["nbecho_event"] for event in ours]
    assert kinds == [
        "ready",
        "accept",
        "message",
        "message",
        "message",
        "close",
        "shutdown",
        "stopped",
    ]
    ready, accept, plain, red, exitWord, close, shutdown, stopped = ours
    assert shutdown["signal"] == "SIGTERM"
    assert (stopped["connections"], stopped["messages"]) == (1, 3)
    assert ready["address"] == address
    assert ready["description"] == "tcp:0:interface=127.0.0.1"
    peer = accept["peer"]
    assert isinstance(peer, str) and peer.startswith("127.0.0.1:")
    assert [plain["text"], plain["size"], plain["peer"]] == ["plain", 5, peer]
    assert red["text"] == "\\x1b[31mred\\x1b[0m \\xff\\xfe\\x09tab"
    assert red["size"] == len(b"\x1b[31mred\x1b[0m \xff\xfe\ttab")
    assert (
        red["log_text"] == f"Read Data {peer} \\x1b[31mred\\x1b[0m \\xff\\xfe\\x09tab"
    )
    assert "\x1b" not in text and "\\u001b" not in text
    assert exitWord["text"] == "exit"
    assert close["peer"] == peer
    assert close["reason"] == "exit word"
    assert (close["messages"], close["bytesIn"], close["bytesOut"]) == (
        3,
        len(HOSTILE),
        len(HOSTILE),
    )
    assert all(event["log_level"]["name"] == "info" for event in ours)  # type: ignore[index]


def test_readable_by_twisted(nbechoServer: ServerFactory) -> None:
    """Twisted's eventsFromJSONLogFile reads the log back into formattable events."""
    server = nbechoServer(
        "--log-format", "json",
        "--listen", "tcp:0:interface=127.0.0.1",
        logFile="nbecho.log",
    )  # fmt: skip
    runClient(server.port, b"round trip\n")
    server.stop()
    with open(server.logPath) as logFile:
        texts = [formatEvent(event) for event in eventsFromJSONLogFile(logFile)]
    events = jsonEvents(server.log())
    assert len(texts) == len(events)
    message = next(event for event in events if event.get("nbecho_event") == "message")
    assert f"Read Data {message['peer']} round trip" in texts


def test_json_to_stdout(nbechoServer: ServerFactory) -> None:
    """Without --logfile, twistd -n writes the JSON lines to standard output."""
    server = nbechoServer(
        "--log-format", "json", "--listen", "tcp:0:interface=127.0.0.1"
    )
    runClient(server.port, b"to stdout\n")
    server.stop()
    events = jsonEvents(server.output())
    assert [event["text"] for event in events if "text" in event] == ["to stdout"]


def test_bad_log_format(tmp_path: Path) -> None:
    """An unknown --log-format is a one-line usage error."""
    result = runTwistd(tmp_path, "--log-format", "xml")
    assert result.returncode != 0
    assert result.stderr == (
        "twistd nbecho: --log-format takes one of text, json, not 'xml' "
        "(see: twistd nbecho --help)\n"
    )


def test_every_event_kind_with_jq(nbechoServer: ServerFactory) -> None:
    """jq reads the log as the README shows; limits and metrics log their events."""
    server = nbechoServer(
        "--log-format", "json",
        "--max-line-length", "10",
        "--listen", "tcp:0:interface=127.0.0.1",
        "--metrics", "tcp:0:interface=127.0.0.1",
        logFile="nbecho.log",
    )  # fmt: skip
    long = runClient(server.port, b"short\n" + b"x" * 50 + b"\n")
    assert long.stdout.startswith(
        b"short\nerror: line too long (limit 10 bytes; "
        b"raise it with --max-line-length)\n"
    )
    runClient(server.port, b"fine\n")
    server.stop()
    events = jsonEvents(server.log())
    tooLong = [e for e in events if e.get("nbecho_event") == "line_too_long"]
    assert [(e["length"], e["limit"]) for e in tooLong] == [(50, 10)]
    (metrics,) = [e for e in events if e.get("nbecho_event") == "metrics_ready"]
    assert metrics["url"] == f"http://{metrics['address']}/metrics"
    assert metrics["description"] == "tcp:0:interface=127.0.0.1"
    closes = subprocess.run(
        [
            tool("jq", required=True),
            "-r",
            'select(.nbecho_event == "close") | .peer',
            server.logPath,
        ],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout.decode()
    accepted = [e["peer"] for e in events if e.get("nbecho_event") == "accept"]
    assert closes.splitlines() == accepted
    assert len(accepted) == 2
