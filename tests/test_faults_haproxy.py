"""
Faults and the measuring client together: nbecho with 20 ms ± 5 ms of
latency behind the real C{haproxy}, loaded by C{nbecho-client load} at a
fixed rate; then with 1 % of connections reset, the client's count of lost
connections against the server's metrics.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from tests._servers import TIMEOUT, RunningServer, ServerFactory, freePort, script
from tests.test_haproxy import haproxyRunning
from tests.test_metrics import scrape, value

#: HAProxy in TCP mode in front of one nbecho, without health checks: every
#: connection nbecho sees (and every fault it draws) is the client's.
CONFIG = """\
global
    log stderr local0 notice
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend front
    bind 127.0.0.1:{front}
    default_backend echo
backend echo
    server nbecho 127.0.0.1:{back}
"""

#: The load: open loop, bounded in time (and so in count).
RATE, CONNECTIONS, SECONDS = "400", "40", "4"


def load(port: int, *extra: str) -> dict[str, Any]:
    """
    Run C{nbecho-client load} against C{port} and return its C{--json}.
    """
    result = subprocess.run(
        [script("nbecho-client"), "load", "--json", "--no-progress",
         "--rate", RATE, "--duration", SECONDS, "--warmup", "1",
         *extra, "127.0.0.1", str(port)],
        capture_output=True,
        timeout=TIMEOUT * 3,
    )  # fmt: skip
    assert result.stdout, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    report["exit"] = result.returncode
    return report


def faultyServer(nbechoServer: ServerFactory, *faults: str) -> RunningServer:
    return nbechoServer(
        "--quiet",
        "--listen", "tcp:0:interface=127.0.0.1",
        "--metrics", "tcp:0:interface=127.0.0.1",
        "--fault-latency", "0.02", "--fault-jitter", "0.005",
        *faults,
    )  # fmt: skip


def test_latency_and_resets_through_haproxy(
    nbechoServer: ServerFactory, tmp_path: Path
) -> None:
    """Through HAProxy the client measures the configured latency, with every
    echo verified, and loses exactly the connections the server reset."""
    server = faultyServer(nbechoServer)
    front = freePort()
    with haproxyRunning(CONFIG.format(front=front, back=server.port), tmp_path):
        report = load(front, "--connections", CONNECTIONS)
    assert (report["exit"], report["ok"], report["errors"]) == (0, True, {})
    assert report["echoed"] == report["sent"] > 0
    latency = report["latency_ms"]
    histogram = HdrHistogram.decode(report["histogram"].encode("ascii"))
    # No echo earlier than the delay less the jitter (microseconds).
    assert histogram.get_min_value() >= 15_000
    # The middle of the spread, within a band wide enough for a busy machine.
    assert 18 <= latency["p50"] <= 40, latency
    assert latency["p99"] >= 20, latency
    server.stop()

    # 1 % of connections reset after their first echo, a seeded draw.
    resetting = faultyServer(
        nbechoServer,
        "--fault-close-after-bytes", "1", "--fault-close-how", "reset",
        "--fault-probability", "close=0.01", "--fault-seed", "3",
    )  # fmt: skip
    front = freePort()
    config = CONFIG.format(front=front, back=resetting.port)
    with haproxyRunning(config, tmp_path):
        proxied = load(front, "--connections", "400")
    resets = value(scrape(resetting), "nbecho_faults_total", kind="close")
    assert resets > 0
    # HAProxy passes a server's reset on to its client as a plain close.
    lost = proxied["errors"]
    assert lost == {"closed": resets}, lost
    assert proxied["exit"] == 3
    direct = load(resetting.port, "--connections", "400")
    total = value(scrape(resetting), "nbecho_faults_total", kind="close")
    assert direct["errors"] == {"reset": total - resets}, direct["errors"]
