"""
Echo over UDP against a real C{twistd -n nbecho --listen udp:...}: the real
C{socat} and C{nc -u}, crafted datagrams from Python sockets (a source port
below 1024, and a raw IPv4 packet spoofed as from the server's own address),
the rate limits, and the counts in the log and the metrics.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._clients import readLine
from tests._servers import RunningServer, ServerFactory, portOf, runTwistd, tool
from tests.test_metrics import Samples, scrape, value

LOOPBACK = "udp:0:interface=127.0.0.1"
LOOPBACK6 = r"udp:0:interface=\:\:1"
METRICS = ("--metrics", "tcp:0:interface=127.0.0.1")

#: Seconds to wait for a reply that must not come.
SILENCE = 1.0


def udpServer(nbechoServer: ServerFactory, *args: str) -> RunningServer:
    """
    A server echoing UDP on loopback, with metrics, and the given options.
    """
    return nbechoServer("--listen", LOOPBACK, *METRICS, *args)


@pytest.fixture
def client() -> Iterator[socket.socket]:
    """
    A plain UDP socket on 127.0.0.1, a port the kernel picks.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(SILENCE)
    yield sock
    sock.close()


def replies(sock: socket.socket) -> list[bytes]:
    """
    Every datagram C{sock} receives until none comes for L{SILENCE} seconds.
    """
    received = []
    while True:
        try:
            received.append(sock.recv(65536))
        except TimeoutError:
            return received


def talk(command: list[str], lines: list[bytes]) -> list[bytes]:
    """
    Run C{command}, a UDP tool reading stdin, send each line and read its
    echo before sending the next, then stop the tool.
    """
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        echoed = []
        for line in lines:
            process.stdin.write(line)
            process.stdin.flush()
            echoed.append(readLine(process.stdout))
        return echoed
    finally:
        process.kill()
        process.wait(30)


def test_socat(nbechoServer: ServerFactory) -> None:
    """socat's datagrams come back one by one and are logged as messages."""
    server = udpServer(nbechoServer)
    sent = [b"hello\n", b"caf\xc3\xa9 \x1b[31m\n", b"exit\n", b"still here\n"]
    command = [tool("socat", required=True), "-", f"UDP:127.0.0.1:{server.port}"]
    assert talk(command, sent) == sent
    (match,) = server.waitForLog(r"Read Data (127\.0\.0\.1:\d+) hello$")
    peer = match.group(1)
    server.waitForLog(rf"Read Data {peer} café \\x1b\[31m$")
    server.waitForLog(rf"Read Data {peer} still here$")
    samples = scrape(server)
    assert value(samples, "nbecho_messages_total") == 4
    assert value(samples, "nbecho_udp_datagrams_total") == 4
    total = sum(map(len, sent))
    assert value(samples, "nbecho_received_bytes_total") == total
    assert value(samples, "nbecho_sent_bytes_total") == total
    assert value(samples, "nbecho_connections_total") == 0


def test_netcat(nbechoServer: ServerFactory) -> None:
    """nc -u gets its lines back from a server serving TCP and UDP side by side."""
    server = nbechoServer(
        "--listen", "tcp:0:interface=127.0.0.1", "--listen", LOOPBACK
    )  # fmt: skip
    udpPort = portOf(server.address("udp:"))
    tcpPort = portOf(server.address("tcp:"))
    nc = tool("nc", required=True)
    assert talk([nc, "-u", "127.0.0.1", str(udpPort)], [b"one\n", b"two\n"]) == [
        b"one\n",
        b"two\n",
    ]
    assert talk([nc, "127.0.0.1", str(tcpPort)], [b"tcp\n"]) == [b"tcp\n"]
    server.waitForLog(r"Read Data 127\.0\.0\.1:\d+ two$")


def test_ipv6(nbechoServer: ServerFactory) -> None:
    """A udp: endpoint on ::1 echoes socat's and a Python socket's datagrams."""
    server = nbechoServer("--listen", LOOPBACK6)
    assert server.addresses[0].startswith("[::1]:")
    command = [tool("socat", required=True), "-", f"UDP6:[::1]:{server.port}"]
    assert talk(command, [b"six\n"]) == [b"six\n"]
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind(("::1", 0))
        sock.settimeout(30)
        sock.sendto(b"\x00\xffbinary", ("::1", server.port))
        assert sock.recv(100) == b"\x00\xffbinary"
        port = sock.getsockname()[1]
    server.waitForLog(rf"Read Data \[::1\]:{port} \\x00\\xffbinary$")


def test_largeDatagram(nbechoServer: ServerFactory, client: socket.socket) -> None:
    """A datagram of 60000 bytes comes back whole."""
    server = nbechoServer("--quiet", "--listen", LOOPBACK)
    data = os.urandom(60000)
    client.settimeout(30)
    client.sendto(data, ("127.0.0.1", server.port))
    assert client.recv(65536) == data


def lowPortSocket() -> socket.socket:
    """
    A UDP socket on 127.0.0.1 and a free port below 1024 (root only).
    """
    for port in range(1023, 900, -1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.settimeout(SILENCE)
        return sock
    raise AssertionError("no free port from 901 to 1023")


def test_privilegedSourcePort(
    nbechoServer: ServerFactory, client: socket.socket
) -> None:
    """A datagram from a source port below 1024 gets no reply, and is counted."""
    if os.geteuid() != 0:
        pytest.skip("binding a port below 1024 needs root")
    server = udpServer(nbechoServer)
    with lowPortSocket() as low:
        port = low.getsockname()[1]
        low.sendto(b"reflect me", ("127.0.0.1", server.port))
        assert replies(low) == []
    server.waitForLog(
        r"UDP echo dropped 1 datagram \(1 from source ports below 1024\), "
        rf"the last from 127\.0\.0\.1:{port}$"
    )
    client.sendto(b"ok", ("127.0.0.1", server.port))
    assert replies(client) == [b"ok"]
    samples = scrape(server)
    assert value(samples, "nbecho_udp_dropped_total", reason="source-port") == 1
    assert value(samples, "nbecho_messages_total") == 1
    assert "reflect me" not in server.log()


def rawUDP(source: tuple[str, int], target: tuple[str, int], payload: bytes) -> None:
    """
    Send C{payload} in an IPv4 UDP packet built by hand, its source address
    whatever C{source} says (a raw socket: root only).
    """
    length = 8 + len(payload)
    udp = struct.pack("!HHHH", source[1], target[1], length, 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + length, 0, 0, 64, socket.IPPROTO_UDP, 0,
        socket.inet_aton(source[0]), socket.inet_aton(target[0]),
    )  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(header + udp, (target[0], 0))


def test_spoofedOwnAddress(nbechoServer: ServerFactory, client: socket.socket) -> None:
    """A datagram spoofed as from the server's own address is not echoed: no loop."""
    if os.geteuid() != 0:
        pytest.skip("a raw socket needs root")
    server = udpServer(nbechoServer)
    target = ("127.0.0.1", server.port)
    # The crafting works: a packet "from" the client's address reaches it.
    rawUDP(client.getsockname(), target, b"crafted")
    assert replies(client) == [b"crafted"]
    rawUDP(target, target, b"loop forever")
    server.waitForLog(r"UDP echo dropped 1 datagram \(1 from the server's own port\)")
    time.sleep(SILENCE)
    samples = scrape(server)
    assert value(samples, "nbecho_udp_dropped_total", reason="own-port") == 1
    assert value(samples, "nbecho_messages_total") == 1
    assert server.logLines(f"Read Data 127.0.0.1:{server.port} ") == []


def burst(sock: socket.socket, port: int, count: int) -> None:
    for n in range(count):
        sock.sendto(b"%d\n" % n, ("127.0.0.1", port))


def test_ratePerSource(nbechoServer: ServerFactory, client: socket.socket) -> None:
    """A burst from one address gets --udp-rate replies, the rest one log line."""
    server = udpServer(nbechoServer, "--udp-rate", "3", "--udp-rate-total", "0")
    burst(client, server.port, 12)
    assert replies(client) == [b"0\n", b"1\n", b"2\n"]
    server.waitForLog(r"UDP echo dropped 9 datagrams \(9 over --udp-rate\)")
    assert len(server.logLines("Read Data ")) == 3
    assert len(server.logLines("UDP echo dropped")) == 1
    samples = scrape(server)
    assert value(samples, "nbecho_udp_dropped_total", reason="udp-rate") == 9
    # A new second, new replies.
    client.sendto(b"later\n", ("127.0.0.1", server.port))
    assert replies(client) == [b"later\n"]


def test_rateTotal(nbechoServer: ServerFactory) -> None:
    """Bursts from two sockets share --udp-rate-total replies."""
    server = udpServer(nbechoServer, "--udp-rate", "0", "--udp-rate-total", "4")
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(SILENCE)
            burst(sock, server.port, 5)
        got = [replies(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    assert sum(map(len, got)) == 4
    server.waitForLog(r"UDP echo dropped 6 datagrams \(6 over --udp-rate-total\)")
    samples: Samples = scrape(server)
    assert value(samples, "nbecho_udp_dropped_total", reason="udp-rate-total") == 6
    assert value(samples, "nbecho_messages_total") == 4


def test_stopLine(nbechoServer: ServerFactory, client: socket.socket) -> None:
    """The totals logged at the stop count UDP datagrams, echoed and dropped."""
    server = nbechoServer("--listen", LOOPBACK, "--udp-rate", "1")
    burst(client, server.port, 3)
    assert replies(client) == [b"0\n"]
    server.stop()
    server.waitForLog(
        r"nbecho stopped: 0 connections, 1 message, 2 bytes in, 2 bytes out, "
        r"0 refused; UDP: 1 datagram echoed, 2 dropped$"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--listen", LOOPBACK, "--workers", "2"), "--workers cannot share"),
        (("--listen", "udp:0:interface=localhost"), "must be an IP address"),
        (("--listen", LOOPBACK, "--udp-rate", "-5"), "--udp-rate takes a whole number"),
    ],
)
def test_usageErrors(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    """Bad UDP options end twistd with one line and a non-zero status."""
    result = runTwistd(tmp_path, *args)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert expected in output
    assert len(output.strip().splitlines()) == 1, output
    assert "Traceback" not in output
