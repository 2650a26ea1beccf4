"""
Per-message log lines are rate-limited, per connection (C{--log-rate}) and
in total (C{--log-rate-total}), so that one client cannot fill the disk;
what is held back is summarised in a line such as (one line)::

    Read Data 127.0.0.1:5000: 48,213 more messages (2.3 MB) not logged
    in the last second

Every echo still arrives, the C{close} line and the metrics still count
every message and byte, and C{--quiet} still logs no message at all.
"""

from __future__ import annotations

import collections
import re
import socket
import threading

import pytest

from tests._clients import lines, peerOf, sendAndHalfClose
from tests._servers import RunningServer, ServerFactory, waitFor
from tests._stress import PATIENCE
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.stress

METRICS = ("--metrics", "tcp:0:interface=127.0.0.1")

#: The flood of the issue: 4 MiB of empty lines.
FLOOD = b"\n" * (4 * 1024 * 1024)

_SUMMARY = (
    r"Read Data {peer}: (?P<count>\d[\d,]*) more messages? "
    r"\((?P<size>[\d.,]+ ?[kKMG]?B)\) not logged in the last second$"
)
_STAMP = re.compile(r"^(\d\S+) ")


def _send(server: RunningServer, payload: bytes) -> tuple[str, bytes]:
    """
    Send C{payload}, half-close, and return the connection's peer and
    everything echoed once the server has closed it.
    """
    with socket.create_connection(("127.0.0.1", server.port), PATIENCE) as sock:
        peer = peerOf(sock)
        echoed = sendAndHalfClose(sock, payload)
    return peer, echoed


def _closed(server: RunningServer, peer: str) -> tuple[int, int, int]:
    """
    The messages, bytes in and bytes out of C{peer}'s C{close} line.
    """
    (match,) = server.waitForLog(
        rf"close {re.escape(peer)} \(client finished sending\): (\d+) messages?, "
        r"(\d+) bytes? in, (\d+) bytes? out"
    )
    messages, bytesIn, bytesOut = map(int, match.groups())
    return messages, bytesIn, bytesOut


class _Accounting:
    """
    What the log says about one peer's messages: how many were logged one
    line each, how many summarised, and the most logged in one second.
    """

    def __init__(self, server: RunningServer, peer: str) -> None:
        # One line a message; the messages of one read may share a time
        # stamp, on lines of their own that start with a tab.
        logged = re.compile(rf"(\] |^\t)Read Data {re.escape(peer)} ")
        summary = re.compile(_SUMMARY.format(peer=re.escape(peer)))
        self.logged = self.summarised = self.summaries = 0
        perSecond: collections.Counter[str] = collections.Counter()
        second = ""
        for line in server.log().splitlines():
            stamp = _STAMP.match(line)
            second = stamp.group(1) if stamp else second
            if logged.search(line):
                self.logged += 1
                perSecond[second] += 1
                continue
            match = summary.search(line)
            if match:
                self.summaries += 1
                self.summarised += int(match.group("count").replace(",", ""))
        self.busiestSecond = max(perSecond.values(), default=0)

    def __repr__(self) -> str:
        return (
            f"{self.logged} logged, {self.summarised} summarised in "
            f"{self.summaries} lines, at most {self.busiestSecond} in one second"
        )


def _accountedFor(server: RunningServer, peer: str, count: int) -> _Accounting:
    """
    Wait until every one of C{peer}'s C{count} messages is either logged or
    summarised, and return the accounting.
    """
    waitFor(
        lambda: (lambda a: a.logged + a.summarised >= count)(_Accounting(server, peer)),
        f"{count} messages from {peer} to be logged or summarised",
        timeout=10,
        details=lambda: repr(_Accounting(server, peer)),
    )
    accounting = _Accounting(server, peer)
    assert accounting.logged + accounting.summarised == count, accounting
    return accounting


def test_emptyLineFloodIsRateLimited(nbechoServer: ServerFactory) -> None:
    """
    4 MiB of empty lines come back whole, are counted in full, and make the
    log grow by less than 1 MB, with what was held back summarised.
    """
    server = nbechoServer("--port", "0", "--interface", "127.0.0.1", *METRICS)
    before = len(server.logBytes())
    peer, echoed = _send(server, FLOOD)
    assert echoed == FLOOD, f"{len(echoed)} of {len(FLOOD)} bytes echoed"
    assert _closed(server, peer) == (len(FLOOD), len(FLOOD), len(FLOOD))
    assert value(scrape(server), "nbecho_messages_total") == len(FLOOD)
    grown = len(server.logBytes()) - before
    assert grown < 1_000_000, (
        f"the log grew by {grown:,} bytes for {len(FLOOD):,} bytes of empty lines"
    )
    accounting = _accountedFor(server, peer, len(FLOOD))
    assert accounting.summaries >= 1
    # The default: 100 a second for one connection (a second of the log's
    # clock may hold the ends of two of the limit's seconds).
    assert accounting.busiestSecond <= 200, accounting


def test_logRateOption(nbechoServer: ServerFactory) -> None:
    """
    --log-rate 10 logs at most 10 of one connection's messages a second and
    summarises the rest.
    """
    server = nbechoServer("--log-rate", "10", "--log-rate-total", "0")
    peer, echoed = _send(server, lines(5000))
    assert echoed == lines(5000)
    assert _closed(server, peer)[0] == 5000
    accounting = _accountedFor(server, peer, 5000)
    assert 1 <= accounting.logged and accounting.busiestSecond <= 20, accounting


def test_logRateTotalOption(nbechoServer: ServerFactory) -> None:
    """
    --log-rate-total 20 holds all connections together to 20 logged messages
    a second, each connection's rest summarised.
    """
    server = nbechoServer("--log-rate", "0", "--log-rate-total", "20")
    results: list[tuple[str, bytes]] = []
    clients = [
        threading.Thread(target=lambda: results.append(_send(server, lines(2000))))
        for _ in range(4)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join(PATIENCE)
    assert [echoed == lines(2000) for _, echoed in results] == [True] * 4
    for peer, _ in results:
        assert _closed(server, peer)[0] == 2000
        _accountedFor(server, peer, 2000)
    perSecond: collections.Counter[str] = collections.Counter()
    second = ""
    for line in server.log().splitlines():
        stamp = _STAMP.match(line)
        second = stamp.group(1) if stamp else second
        if re.search(r"(\] |^\t)Read Data \S+ ", line):
            perSecond[second] += 1
    assert max(perSecond.values(), default=0) <= 40, perSecond


def test_zeroLogRateIsUnlimited(nbechoServer: ServerFactory) -> None:
    """
    --log-rate 0 --log-rate-total 0 logs every message, as nbecho 1.0 did.
    """
    server = nbechoServer("--log-rate", "0", "--log-rate-total", "0")
    peer, echoed = _send(server, lines(20000))
    assert echoed == lines(20000)
    accounting = _accountedFor(server, peer, 20000)
    assert (accounting.logged, accounting.summaries) == (20000, 0)


def test_quietIgnoresLogRate(nbechoServer: ServerFactory) -> None:
    """
    With --quiet no message is logged nor summarised, whatever --log-rate
    says, and the metrics still count every message.
    """
    server = nbechoServer("--quiet", "--log-rate", "5", *METRICS)
    peer, echoed = _send(server, lines(100_000))
    assert echoed == lines(100_000)
    assert _closed(server, peer)[0] == 100_000
    assert value(scrape(server), "nbecho_messages_total") == 100_000
    server.stop()
    log = server.log()
    assert "Read Data" not in log and "not logged" not in log
