"""
What a PROXY header says reaches nbecho only once validated: a malformed
header is one handled warning line and a closed connection, a header's bytes
never reach the log unescaped, and C{UNKNOWN} (v1) and C{LOCAL} (v2)
connections are served with the proxy's own address as their peer.
"""

from __future__ import annotations

import json
import re
import socket
import struct

from tests._clients import peerOf, recvAll
from tests._servers import (
    ALL_CONNECTION_LINES,
    RunningServer,
    ServerFactory,
    portOf,
    waitFor,
)
from tests.test_jsonlog import jsonEvents

HAPROXY = ("--listen", "haproxy:tcp:0:interface=127.0.0.1")

#: The PROXY v2 signature.
V2 = b"\r\n\r\n\x00\r\nQUIT\n"


def _v2(command: int, family: int, addresses: bytes) -> bytes:
    return V2 + struct.pack("!BBH", 0x20 | command, family, len(addresses)) + addresses


_TCP4 = struct.pack("!4s4sHH", b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x01", 40000, 80)

#: Headers that must be refused, and what is wrong with each.
MALFORMED = {
    "non-numeric port": b"PROXY TCP4 127.0.0.1 127.0.0.1 abc 80\r\n",
    "port above 65535": b"PROXY TCP4 127.0.0.1 127.0.0.1 70000 80\r\n",
    "negative port": b"PROXY TCP4 127.0.0.1 127.0.0.1 -1 80\r\n",
    "not an IPv4 address": b"PROXY TCP4 999.0.0.1 127.0.0.1 40000 80\r\n",
    "name for an address": b"PROXY TCP4 localhost 127.0.0.1 40000 80\r\n",
    "non-UTF-8 address": b"PROXY TCP4 \xff\xfe.0.0.1 127.0.0.1 40000 80\r\n",
    "escape sequence": b"PROXY TCP4 \x1b[31m 127.0.0.1 40000 80\r\n",
    "IPv6 address as TCP4": b"PROXY TCP4 ::1 ::1 40000 80\r\n",
    "not an IPv6 address": b"PROXY TCP6 ::g ::1 40000 80\r\n",
    "missing field": b"PROXY TCP4 127.0.0.1 127.0.0.1 40000\r\n",
    "unknown protocol": b"PROXY UDP4 127.0.0.1 127.0.0.1 40000 80\r\n",
    "v2, address block too short": _v2(1, 0x11, _TCP4[:6]),
    "v2, unknown command": _v2(0xF, 0x11, _TCP4),
}


def _mentioning(peer: str) -> str:
    """
    A regular expression for C{peer}, not followed by more port digits.
    """
    return re.escape(peer) + r"(?!\d)"


def _level(event: dict[str, object]) -> object:
    """
    The name of a JSON log event's level.
    """
    level = event.get("log_level")
    return level.get("name") if isinstance(level, dict) else None


def _refused(server: RunningServer, header: bytes) -> tuple[str, bytes | None]:
    """
    Send C{header} and a line; return the connection's peer as the server
    names it and what came back before the server closed, or L{None} if it
    kept the connection open.
    """
    port = portOf(server.address("haproxy:"))
    with socket.create_connection(("127.0.0.1", port), timeout=4) as sock:
        peer = peerOf(sock)
        sock.sendall(header + b"hello\n")
        try:
            return peer, recvAll(sock)
        except TimeoutError:
            return peer, None


def test_malformedHeadersAreOneWarningEach(nbechoServer: ServerFactory) -> None:
    """
    Each malformed or out-of-range PROXY header closes its connection with
    one proxy_refused warning naming the proxy's peer, and no traceback.
    """
    server = nbechoServer(*HAPROXY, *ALL_CONNECTION_LINES, "--log-format", "json")
    peers = {}
    problems = []
    for what, header in MALFORMED.items():
        peer, answer = _refused(server, header)
        peers[what] = peer
        if answer is None:
            problems.append(f"{what}: {header!r} accepted, connection kept open")
        elif answer != b"":
            problems.append(f"{what}: {header!r} got {answer!r}")

    def logged() -> bool:
        refused = {
            event.get("peer")
            for event in jsonEvents(server.log())
            if event.get("nbecho_event") == "proxy_refused"
        }
        return set(peers.values()) <= refused

    try:
        waitFor(logged, "a proxy_refused event for every header", timeout=10)
    except AssertionError:
        pass  # the checks below say which
    events = jsonEvents(server.log())
    for what, peer in peers.items():
        mentions = [e for e in events if re.search(_mentioning(peer), json.dumps(e))]
        warnings = [
            e
            for e in mentions
            if e.get("nbecho_event") == "proxy_refused"
            and e.get("peer") == peer
            and _level(e) == "warn"
        ]
        if len(mentions) != 1 or len(warnings) != 1:
            shown = [e.get("log_text") for e in mentions]
            problems.append(f"{what}: events about {peer}: {shown}")
    log = server.logBytes()
    assert not problems, "\n".join(problems)
    assert b"Traceback" not in log and b"Unhandled Error" not in log
    assert server.process.poll() is None


def test_headerBytesNeverReachTheLogRaw(nbechoServer: ServerFactory) -> None:
    """
    Control characters and invalid UTF-8 in a PROXY header reach the text
    log escaped, never as raw bytes.
    """
    server = nbechoServer(*HAPROXY)
    hostile = [
        b"PROXY TCP4 \x1b[2J\x1b[31m 127.0.0.1 40000 80\r\n",
        b"PROXY TCP4 127.0.0.1 \x07\x7f\x9b31m 40000 80\r\n",
        b"PROXY TCP6 \x1b]0;owned\x07 ::1 40000 80\r\n",
        b"PROXY TCP4 127.0.0.1 127.0.0.1 \x1b[1m 80\r\n",
        b"PROXY \x1b[31mUNKNOWN\r\n",
    ]
    peers = [_refused(server, header)[0] for header in hostile]
    server.stop()
    log = server.logBytes()
    for raw in (b"\x1b", b"\x07", b"\x7f", b"\x9b"):
        assert raw not in log, f"raw {raw!r} in the log:\n{log[-3000:]!r}"
    assert b"Traceback" not in log and b"Unhandled Error" not in log
    for peer in peers:
        assert peer.encode() in log, f"nothing logged about {peer}"


def _served(server: RunningServer, header: bytes) -> tuple[str, bytes]:
    """
    Send C{header} and a line, half-close, and return the connection's peer
    and what came back.
    """
    port = portOf(server.address("haproxy:"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        peer = peerOf(sock)
        sock.sendall(header + b"hello\n")
        sock.shutdown(socket.SHUT_WR)
        return peer, recvAll(sock)


def test_unknownAndLocalAreServed(nbechoServer: ServerFactory) -> None:
    """
    PROXY UNKNOWN (v1) and LOCAL (v2) connections are served, logged under
    the proxy's own address.
    """
    server = nbechoServer(*HAPROXY)
    headers = {
        "v1 UNKNOWN": b"PROXY UNKNOWN\r\n",
        "v1 UNKNOWN with addresses": b"PROXY UNKNOWN ::1 ::1 40000 80\r\n",
        "v2 LOCAL": _v2(0, 0x00, b""),
        "v2 LOCAL with addresses": _v2(0, 0x11, _TCP4),
    }
    problems = []
    for what, header in headers.items():
        peer, answer = _served(server, header)
        if answer != b"hello\n":
            problems.append(f"{what}: got {answer!r}")
            continue
        server.waitForLog(rf"Read Data {peer} hello$", timeout=10)
    assert not problems, "\n".join(problems)
