"""
The command line of C{nbecho-client load}: the client's own options (the
server to reach, C{--connect}, C{--ca}, C{--udp}, C{--exit-word}) and the
shape of the load.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.python.usage import UsageError

from nbecho.client.cli import Options
from nbecho.client.load.messages import SizeError, parseSizes

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
#: At least one echo was wrong or missing, or a connection failed.
EXIT_FAILED = 3


def _positive(kind: type[int] | type[float], name: str, text: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if value <= 0:
        raise ValueError(f"--{name} takes a number above 0, not {text!r}")
    return value


class LoadOptions(Options):
    synopsis = "Usage: nbecho-client load [options] [HOST [PORT]]"
    longdesc = (
        "Load an echo server and measure it: open --connections, send "
        "messages closed loop (each connection sends its next message when "
        "an echo returns, --pipeline deep) or open loop (--rate messages a "
        "second across all connections, latency measured from when each "
        "message was due), check every echoed byte, and report messages and "
        "bytes a second and latency percentiles.  Exit status: 0 when every "
        "echo was right, 1 when no connection could be made, 2 for a usage "
        "error, 3 when an echo was wrong, short or missing or a connection "
        "failed."
    )
    #: The command line after C{load}, for the report and child processes.
    argv: Sequence[str] = ()

    # No one-letter forms: Twisted skips an empty short name.
    optFlags = [
        ["raw", "", "Send raw random bytes, not lines (any byte, no framing)."],
        ["json", "", "Print the figures as one JSON object instead of a table."],
        ["no-progress", "", "No live progress line, even on a terminal."],
    ]
    optParameters = [
        ["connections", "n", "1", "Connections to open."],
        [
            "size",
            "s",
            "64",
            "Payload bytes of each message: N, a list N,M,... to pick from, "
            "or MIN-MAX; line framing adds a line feed.",
        ],
        ["rate", "r", None, "Open loop: messages a second across all connections."],
        [
            "pipeline",
            None,
            "1",
            "Closed loop: messages each connection keeps in flight.",
        ],
        ["duration", "d", None, "Seconds to measure (default: 10)."],
        ["count", None, None, "Messages to measure, instead of a duration."],
        ["warmup", "w", "0", "Seconds sent first and left out of the figures."],
        [
            "drain",
            None,
            "5",
            "Seconds to wait for the last echoes; missing ones are counted.",
        ],
        ["processes", "P", "1", "Processes to spread the connections over."],
        ["seed", None, "0", "Seed of the message sizes and bytes."],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        try:
            self["connections"] = int(
                _positive(int, "connections", self["connections"])
            )
            self["pipeline"] = int(_positive(int, "pipeline", self["pipeline"]))
            self["processes"] = int(_positive(int, "processes", self["processes"]))
            self["drain"] = _positive(float, "drain", self["drain"])
            if self["rate"] is not None:
                self["rate"] = _positive(float, "rate", self["rate"])
            if self["count"] is not None:
                self["count"] = int(_positive(int, "count", self["count"]))
                if self["duration"] is not None:
                    raise ValueError("give --duration or --count, not both")
            else:
                self["duration"] = _positive(
                    float, "duration", self["duration"] or "10"
                )
        except ValueError as error:
            raise UsageError(str(error)) from None
        try:
            warmup = float(self["warmup"] or "0")
        except ValueError:
            warmup = -1.0
        if not warmup >= 0:
            raise UsageError(f"--warmup takes seconds from 0, not {self['warmup']!r}")
        self["warmup"] = warmup
        try:
            self["sizes"] = parseSizes(self["size"])
        except SizeError as error:
            raise UsageError(str(error)) from None
        if self["processes"] > self["connections"]:
            raise UsageError("--processes cannot be more than --connections")
