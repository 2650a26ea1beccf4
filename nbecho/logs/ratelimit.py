"""
Per-message log lines, rate-limited so that no client can fill the disk.

With per-message logging on, the log grows with what clients send: 4 MB of
empty lines would be over 100 MB of log.  Each connection may log
C{--log-rate} messages a second, and all connections together
C{--log-rate-total}; a message over either allowance is still counted and
echoed, only its log line is held back.  Held-back messages are never lost
silently: at the end of the second in which they were held back (and when the
connection closes) one line per connection says how many there were::

    Read Data 127.0.0.1:5000: 48,213 more messages (2.3 MB) not logged in
    the last second

The seconds are counted from the first message logged after a quiet spell,
not from the clock's whole seconds, so a second of the log's time stamps may
hold the end of one such second and the start of the next.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from typing import Protocol as Structural

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from nbecho.logs.escape import Message

if TYPE_CHECKING:
    from nbecho.settings import EchoSettings

log = Logger(namespace="nbecho")

#: Messages a second that stand for "no limit".
_UNLIMITED = sys.maxsize


def formatSize(size: int) -> str:
    """
    C{size} bytes for a person: C{512 B}, C{48.2 kB}, C{2.3 MB}, C{1.1 GB}.
    """
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB"):
        value /= 1000
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:,.1f} GB"


class LogBudget:
    """
    The per-message log lines all connections of one server may write in a
    second.

    @ivar perSecond: the allowance; 0 means no limit.
    """

    def __init__(self, perSecond: int) -> None:
        self.perSecond = perSecond
        self._start = float("-inf")
        self._left = 0

    def take(self, wanted: int, now: float) -> int:
        """
        Take up to C{wanted} log lines from the allowance at time C{now};
        return how many may be written.
        """
        if not self.perSecond:
            return wanted
        if now - self._start >= 1.0:
            self._start = now
            self._left = self.perSecond
        granted = min(wanted, self._left)
        self._left -= granted
        return granted


class LogLimiter:
    """
    One connection's share of the log: which of its messages are logged,
    and the summary of the others.

    @ivar heldCount: messages held back in the current second.
    @ivar heldBytes: their size, terminators excluded (as a message's log
        line gives it).
    """

    heldCount = 0
    heldBytes = 0
    _timer: IDelayedCall | None = None

    def __init__(
        self, peer: str, perSecond: int, budget: LogBudget, clock: Any
    ) -> None:
        """
        @param clock: an L{IReactorTime}: it tells the time and ends each
            second's holding back with a summary.
        """
        self.peer = peer
        self.perSecond = perSecond or _UNLIMITED
        self.budget = budget
        self.clock = clock
        self._start = float("-inf")
        self._left = 0

    def admit(self, messages: Sequence[Message]) -> Sequence[Message]:
        """
        The first of C{messages} that may be logged now; the others are held
        back, to be summarised.
        """
        now = self.clock.seconds()
        if now - self._start >= 1.0:
            if self.heldCount:
                self._summarise()
            self._start = now
            self._left = self.perSecond
        wanted = len(messages)
        granted = self.budget.take(min(wanted, self._left), now)
        self._left -= granted
        if granted == wanted:
            return messages
        held = messages[granted:] if granted else messages
        if self._timer is None:
            self._timer = self.clock.callLater(
                max(0.0, self._start + 1.0 - now), self._secondOver
            )
        self.heldCount += len(held)
        self.heldBytes += sum(map(len, held))
        return messages[:granted] if granted else []

    def _secondOver(self) -> None:
        """
        Summarise the second that just ended; the next message starts a new
        one.
        """
        self._timer = None
        self._start = float("-inf")
        if self.heldCount:
            self._summarise()

    def _summarise(self) -> None:
        count, size = self.heldCount, self.heldBytes
        self.heldCount = self.heldBytes = 0
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        log.info(
            "Read Data {peer}: {count:,} more {noun} ({amount}) "
            "not logged in the last second",
            peer=self.peer,
            count=count,
            bytes=size,
            noun="message" if count == 1 else "messages",
            amount=formatSize(size),
            nbecho_event="messages_not_logged",
        )

    def close(self) -> None:
        """
        The connection is closing: summarise what is still held back.
        """
        if self.heldCount:
            self._summarise()
        elif self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None


class LogOwner(Structural):
    """
    What L{limiterFor} needs from a connection's factory.
    """

    settings: EchoSettings
    clock: Any
    logBudget: LogBudget


def limiterFor(peer: str, owner: LogOwner) -> LogLimiter | None:
    """
    The L{LogLimiter} of a connection from C{peer} to C{owner} (its
    factory), or L{None} when its messages are not logged (C{--quiet}) or
    every one of them is.
    """
    settings = owner.settings
    if settings.quiet or not (settings.logRate or settings.logRateTotal):
        return None
    return LogLimiter(peer, settings.logRate, owner.logBudget, owner.clock)
