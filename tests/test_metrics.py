"""
C{--metrics}: Prometheus text format over HTTP, scraped by the real C{curl}
while clients are connected and parsed with C{prometheus_client}'s parser;
every number must match the traffic the test sent.  Prometheus's own
C{promtool} checks the format and the naming conventions.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import nbecho
from tests._clients import assertEchoes, lines, recvAll, runClient
from tests._servers import RunningServer, ServerFactory, portOf, runTwistd, tool

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: RunningServer, url: str | None = None) -> Samples:
    """
    GET /metrics with curl, as Prometheus would, and index every sample.

    @param url: the metrics URL, when C{server}'s log cannot tell it.
    """
    url = url or server.metricsURL()
    result = subprocess.run(
        [tool("curl", required=True), "--silent", "--show-error", "--fail", url],
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
def metricsServer(nbechoServer: ServerFactory) -> RunningServer:
    return nbechoServer(
        "--quiet",
        "--listen", "tcp:0:interface=127.0.0.1",
        "--metrics", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip


def test_scrape_during_traffic(metricsServer: RunningServer) -> None:
    """Counters and size histogram match the traffic, mid-session and after."""
    address = metricsServer.address("tcp:")
    first = b"aaaaa\n" * 10 + b"b" * 100 + b"\r\n" + b"b" * 100 + b"\n"
    with socket.create_connection(("127.0.0.1", portOf(address))) as connection:
        assertEchoes(connection, first)
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
    piped = runClient(portOf(address), lines(1000))
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
    metricsServer.stop()
    assert "Read Data" not in metricsServer.log()


def test_metrics_off_by_default(nbechoServer: ServerFactory) -> None:
    """Without --metrics nothing but the echo service listens."""
    server = nbechoServer("--listen", "tcp:0:interface=127.0.0.1")
    server.stop()
    log = server.log()
    assert "Ready? nbecho listening on" in log
    assert "nbecho metrics at" not in log  # not "metrics": paths may hold it


def test_bad_metrics_endpoint(tmp_path: Path) -> None:
    """An unparsable --metrics endpoint is a one-line usage error."""
    result = runTwistd(tmp_path, "--metrics", "nonsense:1")
    assert result.returncode != 0
    assert result.stderr.startswith(
        "twistd nbecho: --metrics 'nonsense:1': unknown endpoint type 'nonsense'"
    )
    assert len(result.stderr.splitlines()) == 1


def test_promtool_check(nbechoServer: ServerFactory, tmp_path: Path) -> None:
    """promtool check metrics accepts a scrape, process_* and build info included."""
    server = nbechoServer(
        "--max-connections", "1",
        "--listen", "tcp:0:interface=127.0.0.1",
        "--metrics", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip
    scraped = tmp_path / "scraped.txt"
    pipeline = " | ".join(
        shlex.join(command)
        for command in (
            [tool("curl", required=True), "-sSf", server.metricsURL()],
            ["tee", str(scraped)],
            [tool("promtool", required=True), "check", "metrics"],
        )
    )
    with server.connect() as held:
        assertEchoes(held, b"held\n")
        # Refused while the first is open: a labelled refusal counter.
        with server.connect() as refused:
            assert recvAll(refused).startswith(b"error: too many")
        check = subprocess.run(
            ["bash", "-o", "pipefail", "-c", pipeline],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")
    text = scraped.read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("cpu_seconds", "resident_memory_bytes", "open_fds", "max_fds"):
        assert f"process_{name}" in families, text
    (build,) = families["nbecho_build_info"].samples
    assert (build.name, build.labels, build.value) == (
        "nbecho_build_info",
        {"version": nbecho.__version__},
        1.0,
    )
    (refusal,) = families["nbecho_refusals"].samples
    assert (refusal.labels, refusal.value) == ({"reason": "max-connections"}, 1)
