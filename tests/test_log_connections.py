"""
The lines connections cause are rate-limited like the message lines: a
client that connects and resets in a loop, from one address or from many,
or that keeps connecting at the open-file limit, cannot grow the log without
bound, whether per-message lines are on or not (C{--quiet}), while the
close totals and the metrics still count every connection.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import pytest

from tests._clients import reset
from tests._servers import RunningServer, ServerFactory, waitFor
from tests._stress import LISTEN, PATIENCE
from tests.test_matrix import _scrape

pytestmark = pytest.mark.stress

#: Connect/reset cycles a churning client makes, and its time bound.
CYCLES = 50_000
CYCLE_TIME = 60.0

#: The log may grow by less than this over the cycles.
LOG_BOUND = 1_000_000

_SUMMARY = re.compile(
    r"([\d,]+) connections? from (.+?) not logged in the last second: (.*)$", re.M
)


def _churn(server: RunningServer, sources: list[str]) -> int:
    """
    Connect and reset up to L{CYCLES} times within L{CYCLE_TIME},
    round-robin over C{sources}; return the count.  (A reset leaves no
    TIME_WAIT behind, which would soon use up one address's ports; the
    guarantee matrix churns with clean closes too.)
    """
    deadline = time.monotonic() + CYCLE_TIME
    done = 0
    while done < CYCLES and time.monotonic() < deadline:
        sock = socket.socket()
        sock.bind((sources[done % len(sources)], 0))
        sock.connect(("127.0.0.1", server.port))
        reset(sock)
        done += 1
    return done


def _accounted(log: str) -> tuple[int, int]:
    """
    The connections C{log} has an Accept line for, and those its summaries
    count.
    """
    summaries = _SUMMARY.finditer(log)
    return log.count("] Accept 127.0.0."), sum(
        int(match.group(1).replace(",", "")) for match in summaries
    )


def _settled(server: RunningServer, total: float) -> None:
    """
    Wait until the metrics count C{total} connections, all closed.
    """
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        samples = _scrape(server.metricsURL())
        if samples["nbecho_connections_total"] >= total and not samples.get(
            "nbecho_connections_open"
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"the server never counted {total} connections")


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "logging"])
@pytest.mark.parametrize(
    "sources",
    [["127.0.0.1"], [f"127.0.0.{n}" for n in range(1, 101)]],
    ids=["one address", "100 addresses"],
)
def test_churnBoundsTheLog(
    nbechoServer: ServerFactory, quiet: bool, sources: list[str]
) -> None:
    """
    50,000 connect/reset cycles grow the log by less than 1 MB; the metrics
    count every connection, and the summaries account for the rest.
    """
    server = nbechoServer(
        *LISTEN,
        *(["--quiet"] if quiet else []),
        *("--metrics", "tcp:0:interface=127.0.0.1"),
        listeners=2,
        timeout=PATIENCE,
    )
    before = server.logPath.stat().st_size
    done = _churn(server, sources)
    _settled(server, done)
    grown = server.logPath.stat().st_size - before
    assert done > 1000, done
    assert grown < LOG_BOUND, f"{done:,} cycles grew the log by {grown:,} bytes"
    # Every connection is either logged (its Accept line) or summarised.
    waitFor(
        lambda: sum(_accounted(server.log())) >= done,
        "every connection logged or summarised",
        PATIENCE,
        lambda: str(_accounted(server.log())),
    )
    assert "Traceback" not in server.log()


def test_fileLimitBoundsTheLog(nbechoServer: ServerFactory) -> None:
    """
    At the open-file limit, 10 s of connect attempts grow the log by less
    than 100 kB (Twisted's own EMFILE lines included), and a scrape still
    answers.
    """
    server = nbechoServer(
        *LISTEN,
        *("--max-connections", "0"),
        *("--metrics", "tcp:0:interface=127.0.0.1"),
        listeners=2,
        timeout=PATIENCE,
        fileLimit=(256, 256),
    )
    held: list[socket.socket] = []
    attempt: Callable[[], socket.socket] = lambda: socket.create_connection(  # noqa: E731
        ("127.0.0.1", server.port), 5
    )
    try:
        for _ in range(300):  # more than the server has descriptors for
            try:
                held.append(attempt())
            except OSError:
                pass  # turned away at the limit: that is the point
        before = server.logPath.stat().st_size
        deadline = time.monotonic() + 10
        attempts = 0
        while time.monotonic() < deadline:
            try:
                reset(attempt())
            except OSError:
                pass  # the backlog is full: the attempt itself failed
            attempts += 1
        grown = server.logPath.stat().st_size - before
        assert "nbecho_connections_open" in _scrape(server.metricsURL())
    finally:
        for sock in held:
            sock.close()
    assert attempts > 100, attempts
    assert grown < 100_000, f"{attempts:,} attempts grew the log by {grown:,} bytes"
    assert "Traceback" not in server.log()
