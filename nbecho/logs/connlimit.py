"""
The lines a connection causes (C{Accept}, C{close}, C{Refused}, a refused
PROXY header, a failed TLS handshake, a line too long), rate-limited per
client address and in total, so that a client that connects and resets in
a loop cannot fill the disk.

The unit is the connection: either all of a connection's lines are written
or none, so that what is written still reads as whole stories.  Each client
address may have C{--log-connection-rate} connections logged a second, and
all addresses together C{--log-connection-rate-total}; a connection over
either allowance is still served, counted in the close totals and the
metrics, only its lines are held back.  Once a second, for each address
that had connections held back, one line says how many and how they ended::

    1,998 connections from 127.0.0.1 not logged in the last second:
    1,000 closed, 998 refused

At most L{MAX_SUMMARIES} addresses get a line of their own in a second; the
others share one more line.

Twisted's own lines about accepting connections (C{EMFILE recovery: Closed
socket from ...}, three for each connection turned away at the open-file
limit) go through L{TwistedAcceptLines}, which keeps at most ten of them a
second and summarises the rest.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import ILogObserver, LogEvent, Logger, LogLevel
from zope.interface import implementer

from nbecho._words import counted

log = Logger(namespace="nbecho")

#: Addresses summarised one by one in a second; the others share a line.
MAX_SUMMARIES = 10

#: How connections ended, in the order a summary names them.
OUTCOMES = (
    "closed",
    "refused",
    "timed out",
    "with a line too long",
    "without a valid PROXY header",
    "failing the TLS handshake",
)


def _plural(count: int, noun: str, plural: str = "") -> str:
    """
    C{count} and C{noun}, in the plural (C{plural}, or C{noun} + s) unless
    one.
    """
    return f"{count:,} " + (noun if count == 1 else plural or noun + "s")


class _Window:
    """
    An allowance of C{perSecond} that starts again one second after the
    first thing it admitted.
    """

    def __init__(self, perSecond: int) -> None:
        self.perSecond = perSecond
        self.start = float("-inf")
        self.left = 0

    def take(self, now: float) -> bool:
        if not self.perSecond:
            return True
        if now - self.start >= 1.0:
            self.start = now
            self.left = self.perSecond
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class ConnectionLogLimit:
    """
    Which connections of one server get their lines logged, and the summary
    of the others.

    @ivar held: for each address, how many connections were held back in
        the current second, by outcome.
    """

    def __init__(self, perAddress: int, total: int, clock: Any) -> None:
        """
        @param perAddress: connections logged a second for one client
            address; 0: no limit.
        @param total: connections logged a second for all addresses; 0: no
            limit.
        @param clock: an C{IReactorTime}, for the time and the summaries.
        """
        self.perAddress = perAddress
        self.total = _Window(total)
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._windowsStart = float("-inf")
        self.held: dict[str, dict[str, int]] = {}
        self._timer: IDelayedCall | None = None

    @property
    def unlimited(self) -> bool:
        return not self.perAddress and not self.total.perSecond

    def admit(self, address: str) -> bool:
        """
        Whether a connection from C{address} (a host, without its port) may
        have its lines logged.
        """
        if self.unlimited:
            return True
        now = self.clock.seconds()
        if now - self._windowsStart >= 1.0:
            # The table holds the addresses of one second at most.
            self._windows = {}
            self._windowsStart = now
        window = self._windows.get(address)
        if window is None:
            window = self._windows[address] = _Window(self.perAddress)
        return window.take(now) and self.total.take(now)

    def hold(self, address: str, outcome: str) -> None:
        """
        A connection from C{address} whose lines were held back ended with
        C{outcome} (one of L{OUTCOMES}): count it for the next summary.
        """
        counts = self.held.setdefault(address, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        if self._timer is None:
            self._timer = self.clock.callLater(1.0, self.summarise)

    def summarise(self) -> None:
        """
        Log what was held back since the last summary.
        """
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        held, self.held = self.held, {}
        ranked = sorted(held.items(), key=lambda item: -sum(item[1].values()))
        for address, counts in ranked[:MAX_SUMMARIES]:
            self._line(f"from {address}", counts)
        rest: dict[str, int] = {}
        for _, counts in ranked[MAX_SUMMARIES:]:
            for outcome, count in counts.items():
                rest[outcome] = rest.get(outcome, 0) + count
        if rest:
            others = _plural(
                len(ranked) - MAX_SUMMARIES, "other address", "other addresses"
            )
            self._line(f"from {others}", rest)

    def _line(self, where: str, counts: dict[str, int]) -> None:
        total = sum(counts.values())
        outcomes = ", ".join(
            f"{counts[outcome]:,} {outcome}"
            for outcome in OUTCOMES
            if outcome in counts
        )
        log.info(
            "{connections} {where} not logged in the last second: {outcomes}",
            connections=_plural(total, "connection"),
            where=where,
            outcomes=outcomes,
            count=total,
            nbecho_event="connections_not_logged",
        )


#: The formats of Twisted's own per-connection lines (twisted.internet.tcp).
TWISTED_ACCEPT_FORMATS = frozenset(
    {
        "EMFILE encountered; releasing reserved file descriptor.",
        "EMFILE recovery: Closed socket from {address}",
        "Re-reserving EMFILE recovery file descriptor.",
        "Could not accept new connection ({acceptError})",
    }
)


@implementer(ILogObserver)
class TwistedAcceptLines:
    """
    A log observer in front of another: Twisted's own lines about accepting
    connections (L{TWISTED_ACCEPT_FORMATS}) reach it at most C{perSecond}
    times a second, and the rest are summarised once a second.
    """

    #: Twisted's accept lines kept a second: they are diagnostics, and at
    #: the open file limit Twisted writes three for each connection.
    perSecond = 10

    def __init__(self, observer: ILogObserver, limited: bool, clock: Any) -> None:
        """
        @param limited: whether to limit at all (C{False} when the operator
            turned the connection log limits off).
        """
        self.observer = observer
        self.window = _Window(self.perSecond if limited else 0)
        self.clock = clock
        self.heldCount = 0
        self._timer: IDelayedCall | None = None

    def __call__(self, event: LogEvent) -> None:
        if event.get("log_format") not in TWISTED_ACCEPT_FORMATS:
            self.observer(event)
            return
        if self.window.take(self.clock.seconds()):
            self.observer(event)
            return
        self.heldCount += 1
        if self._timer is None:
            self._timer = self.clock.callLater(1.0, self.summarise)

    def summarise(self) -> None:
        self._timer = None
        count, self.heldCount = self.heldCount, 0
        if count:
            self.observer(
                {
                    "log_format": "{countText} of Twisted's about accepting "
                    "connections (EMFILE recovery) not logged in the last second",
                    "log_namespace": "nbecho",
                    "log_level": LogLevel.info,
                    "log_time": self.clock.seconds(),
                    "log_system": "nbecho#info",
                    "count": count,
                    "countText": counted(count, "line"),
                    "nbecho_event": "twisted_lines_not_logged",
                }
            )
