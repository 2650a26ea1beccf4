"""
C{--metrics}: Prometheus text format over HTTP, scraped by the real C{curl}
while clients are connected and parsed with C{prometheus_client}'s parser;
every number must match the traffic the test sent.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._deploy import TWISTD, Server, lines, portOf, runClient, startServer, tool

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> Samples:
    """
    GET /metrics with curl, as Prometheus would, and index every sample.
    """
    url = server.address("--metrics ")
    result = subprocess.run(
        [tool("curl"), "--silent", "--show-error", "--fail", url],
        capture_output=True,
        timeout=60,
        check=True,
    )
    samples: Samples = {}
    for family in text_string_to_metric_families(result.stdout.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


def bucket(samples: Samples, le: str) -> float:
    return value(samples, "nbecho_message_size_bytes_bucket", le=le)


@pytest.fixture
def metricsServer(tmp_path: Path) -> Iterator[Server]:
    server = startServer(
        tmp_path,
        "--quiet",
        "--listen", "tcp:0:interface=127.0.0.1",
        "--metrics", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip
    yield server
    server.stop()


def _echoed(connection: socket.socket, data: bytes) -> None:
    connection.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = connection.recv(65536)
        assert chunk, "server closed early"
        received += chunk
    assert received == data


def test_scrape_during_traffic(metricsServer: Server) -> None:
    """Counters and size histogram match the traffic, mid-session and after."""
    address = metricsServer.address("tcp:")
    first = b"aaaaa\n" * 10 + b"b" * 100 + b"\r\n" + b"b" * 100 + b"\n"
    with socket.create_connection(("127.0.0.1", portOf(address))) as connection:
        _echoed(connection, first)
        during = scrape(metricsServer)
        assert value(during, "nbecho_connections_open") == 1
        assert value(during, "nbecho_connections_total") == 1
        assert value(during, "nbecho_messages_total") == 12
        assert value(during, "nbecho_received_bytes_total") == len(first)
        assert value(during, "nbecho_sent_bytes_total") == len(first)
        assert value(during, "nbecho_message_size_bytes_count") == 12
        assert value(during, "nbecho_message_size_bytes_sum") == 5 * 10 + 200
        assert bucket(during, "1.0") == 0
        assert bucket(during, "8.0") == 10
        assert bucket(during, "64.0") == 10
        assert bucket(during, "256.0") == 12
    piped = runClient("--port", str(portOf(address)), input=lines(1000))
    assert (piped.stdout, piped.returncode) == (lines(1000), 0)
    after = scrape(metricsServer)
    assert value(after, "nbecho_connections_open") == 0
    assert value(after, "nbecho_connections_total") == 2
    assert value(after, "nbecho_messages_total") == 1012
    total = len(first) + len(lines(1000))
    assert value(after, "nbecho_received_bytes_total") == total
    assert value(after, "nbecho_sent_bytes_total") == total
    # 1-9 are one digit, 10-99 two, 100-999 three, 1000 four.
    assert bucket(after, "1.0") == 9
    assert bucket(after, "8.0") == 10 + 1000
    assert bucket(after, "+Inf") == 1012
    digits = 9 * 1 + 90 * 2 + 900 * 3 + 4
    assert value(after, "nbecho_message_size_bytes_sum") == 250 + digits
    # --quiet still holds: metrics need each message, the log does not.
    assert "Read Data" not in metricsServer.stop()


def test_metrics_off_by_default(tmp_path: Path) -> None:
    """Without --metrics nothing but the echo service listens."""
    server = startServer(tmp_path, "--listen", "tcp:0:interface=127.0.0.1")
    log = server.stop()
    assert "Ready? nbecho listening on" in log
    assert "metrics" not in log


def test_bad_metrics_endpoint(tmp_path: Path) -> None:
    """An unparsable --metrics endpoint is a one-line usage error."""
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "nbecho", "--metrics", "nonsense:1"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.decode().startswith(
        "twistd nbecho: cannot use --metrics endpoint 'nonsense:1': "
    )
    assert len(result.stderr.splitlines()) == 1
