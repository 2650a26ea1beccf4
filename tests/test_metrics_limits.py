"""
End-to-end tests of the metrics port's own bounds, against a real
C{twistd -n nbecho --metrics}: its connection limit, its timeout, its
memory under pipelined requests that are never read, its paths, and the
echo clients it must never take file descriptors or time from.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests._servers import RunningServer, ServerFactory, tool
from tests.test_metrics import scrape, value

METRICS = ("--metrics", "tcp:0:interface=127.0.0.1")
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: nbecho\r\n\r\n"


def _metricsAddress(server: RunningServer) -> tuple[str, int]:
    url = urlsplit(server.metricsURL())
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


def _rss(pid: int) -> int:
    """
    The resident set size of process C{pid}, in KiB.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def _echoTime(sock: socket.socket, line: bytes) -> float:
    """
    Seconds until C{line} comes back on C{sock}.
    """
    started = time.monotonic()
    sock.sendall(line)
    got = b""
    while len(got) < len(line):
        chunk = sock.recv(len(line) - len(got))
        assert chunk, "the bystander was cut"
        got += chunk
    assert got == line
    return time.monotonic() - started


def _closedWithin(sock: socket.socket, seconds: float) -> bool:
    """
    Whether the server closes C{sock} within C{seconds}, reading and
    discarding what it sends meanwhile.
    """
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def test_pipelinedFloodNeverRead(nbechoServer: ServerFactory) -> None:
    """
    2 MB of pipelined C{GET /metrics} from a client that never reads grow
    the server by at most 512 KiB, while a bystander echo client is served
    within a second and scrapes keep answering.
    """
    server = nbechoServer("--quiet", *METRICS, listeners=2)
    for _ in range(5):
        scrape(server)
    before = _rss(server.pid)
    bystander = server.connect()
    flood = socket.create_connection(_metricsAddress(server))
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    payload = REQUEST * (2_000_000 // len(REQUEST))
    sent = 0
    slowest = 0.0
    deadline = time.monotonic() + 20
    flood.setblocking(False)
    while sent < len(payload) and time.monotonic() < deadline:
        try:
            sent += flood.send(payload[sent : sent + 65536])
        except BlockingIOError:
            slowest = max(slowest, _echoTime(bystander, b"still here\n"))
    for _ in range(5):
        slowest = max(slowest, _echoTime(bystander, b"after the flood\n"))
        scrape(server)
    grown = _rss(server.pid) - before
    print(f"sent {sent} bytes; RSS grew {grown} KiB; slowest echo {slowest:.3f}s")
    assert slowest < 1.0
    assert grown < 512, f"RSS grew {grown} KiB"
    flood.close()
    bystander.close()


def test_idleConnectionsPastLimit(nbechoServer: ServerFactory) -> None:
    """
    Under a file limit of 512, 300 idle metrics connections leave every one
    of 390 echo clients served and a scrape answered: past the metrics
    port's limit each newcomer closes the longest idle connection, and the
    metrics count them.
    """
    server = nbechoServer(
        "--quiet", "--max-connections", "390", *METRICS, listeners=2,
        fileLimit=(512, 512),
    )  # fmt: skip
    bystander = server.connect()
    idle = [socket.create_connection(_metricsAddress(server)) for _ in range(300)]
    clients = [server.connect() for _ in range(389)]
    for i, sock in enumerate(clients):
        sock.sendall(b"client %d\n" % i)
    for i, sock in enumerate(clients):
        assert sock.recv(100) == b"client %d\n" % i
    assert _echoTime(bystander, b"bystander\n") < 1.0
    samples = scrape(server)
    assert value(samples, "nbecho_connections_open") == 390
    assert value(samples, "nbecho_metrics_connections_open") <= 10
    evicted = value(
        samples, "nbecho_metrics_connections_dropped_total", reason="evicted"
    )
    assert evicted >= 290
    print(f"390 echo clients served; {evicted:.0f} idle metrics connections evicted")
    for sock in idle + clients + [bystander]:
        sock.close()


def test_idleAndSlowClosed(nbechoServer: ServerFactory) -> None:
    """
    With C{--metrics-timeout 1}, a connection that sends nothing and one
    that trickles a request a byte at a time are both closed within a few
    seconds, and counted.
    """
    server = nbechoServer("--metrics-timeout", "1", *METRICS, listeners=2)
    idle = socket.create_connection(_metricsAddress(server))
    slow = socket.create_connection(_metricsAddress(server))
    started = time.monotonic()
    closed = False
    for byte in REQUEST[:-2] * 10:
        slow.send(bytes([byte]))
        if _closedWithin(slow, 0.2):
            closed = True
            break
    assert closed, "a slow request was never cut"
    assert time.monotonic() - started < 8
    assert _closedWithin(idle, 8)
    samples = scrape(server)
    assert (
        value(samples, "nbecho_metrics_connections_dropped_total", reason="timeout")
        == 2
    )


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/metrics", "200"),
        ("/metrics?x=1", "200"),
        ("/", "404"),
        ("/metrics/", "404"),
        ("/metrics/x", "404"),
        ("/metrics/../metrics", "404"),
        ("/metricsx", "404"),
    ],
)
def test_onlyMetricsServed(nbechoServer: ServerFactory, path: str, status: str) -> None:
    """
    Exactly C{/metrics} is served (with any query); every other path is a 404.
    """
    server = nbechoServer(*METRICS, listeners=2)
    host, port = _metricsAddress(server)
    result = subprocess.run(
        [
            tool("curl", required=True), "--silent", "--path-as-is",
            "--output", "/dev/null", "--write-out", "%{http_code}",
            f"http://{host}:{port}{path}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout == status


def test_badMetricsLimits(nbechoServer: ServerFactory, tmp_path: Path) -> None:
    """
    Out-of-range metrics limits are one usage line and exit status 1.
    """
    from tests._servers import runTwistd

    for args, message in [
        (("--metrics-max-connections", "0"), "--metrics-max-connections takes"),
        (("--metrics-timeout", "0"), "--metrics-timeout takes"),
    ]:
        result = runTwistd(tmp_path, *METRICS, *args)
        assert result.returncode == 1
        assert message in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
