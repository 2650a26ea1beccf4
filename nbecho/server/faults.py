"""
Faults on demand: nbecho as a misbehaving peer, for testing clients.

C{--fault-*} options make every connection (or a seeded random share of
them) misbehave: echoes come late (C{latency}, with jitter), slowly
(C{bandwidth}), in pieces (C{sliceSize}), after a stall
(C{stall}), or the connection ends after some bytes or seconds,
cleanly or with a reset.  C{--greeting} sends a line naming the instance on
connect.

With none given nothing here runs: L{installFaults} subclasses the
factory's protocol only for an active plan; the plain echo keeps its cost.

Each connection keeps its echoes in a queue of C{(release time, bytes)}:
an echo is released at C{max(now + delay, the previous release)}, so one
connection's bytes never overtake each other and a slow connection never
blocks another (one L{IDelayedCall} per connection, no sleeping).  While more
than L{QUEUE_BOUND} bytes wait, the connection stops reading from its
client, as Twisted's own backpressure does for the write buffer.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections import deque
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from nbecho._words import counted
from nbecho.server._address import formatAddress
from nbecho.server.protocol import EchoProtocol
from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")

#: Echo bytes one connection may hold back before it stops reading (the
#: size of Twisted's own write buffer high-water mark).
QUEUE_BOUND = 65536

#: The faults C{--fault-probability} names, in the order they are drawn.
KINDS = ("latency", "bandwidth", "slice", "stall", "close")

#: How C{--fault-jitter} spreads the delay.
DISTRIBUTIONS = ("uniform", "normal")

#: How C{--fault-close-*} ends a connection.
CLOSE_HOWS = ("clean", "reset")

#: The fields a C{--greeting} template may use.
GREETING_FIELDS = ("host", "pid", "listener")

#: Pieces of a bandwidth-limited echo: a tenth of a second's worth each.
_PIECES_PER_SECOND = 10


@attrs.frozen
class FaultPlan:
    """
    The faults one server injects.

    @ivar latency: seconds each echo is held back.
    @ivar jitter: added to C{latency}: uniform in C{[-jitter, +jitter]}, or
        normal with this standard deviation, clipped to three of them; a
        delay is never negative.
    @ivar bandwidth: bytes a second each connection's echoes get; 0: any.
    @ivar sliceSize: echo in pieces of this many bytes; 0: whole.
    @ivar sliceDelay: seconds between two pieces.
    @ivar stall: seconds a connection stops reading and echoing, once it
        has received C{stallAfter} bytes.
    @ivar closeAfterBytes: close once this many bytes are echoed (the echo
        that reaches it is sent whole); 0: never.
    @ivar closeAfterSeconds: close this many seconds after the connect.
    @ivar closeHow: C{clean} (FIN) or C{reset} (RST).
    @ivar probability: for each of L{KINDS}, the share of connections it
        hits (1 when absent).
    @ivar seed: seeds the draws, so that a run repeats; L{None}: random.
    @ivar greeting: a template sent as one line on connect; L{None}: none.
    """

    latency: float = 0.0
    jitter: float = 0.0
    distribution: str = "uniform"
    bandwidth: int = 0
    sliceSize: int = 0
    sliceDelay: float = 0.0
    stall: float = 0.0
    stallAfter: int = 1
    closeAfterBytes: int = 0
    closeAfterSeconds: float = 0.0
    closeHow: str = "clean"
    probability: dict[str, float] = attrs.field(factory=dict)
    seed: int | None = None
    greeting: str | None = None

    def configured(self) -> tuple[str, ...]:
        """
        The kinds of fault this plan injects, in L{KINDS} order.
        """
        given = {
            "latency": self.latency > 0 or self.jitter > 0,
            "bandwidth": self.bandwidth > 0,
            "slice": self.sliceSize > 0,
            "stall": self.stall > 0,
            "close": self.closeAfterBytes > 0 or self.closeAfterSeconds > 0,
        }
        return tuple(kind for kind in KINDS if given[kind])

    @property
    def active(self) -> bool:
        """Whether connections need the fault layer at all."""
        return bool(self.configured()) or self.greeting is not None

    def delay(self, draw: random.Random) -> float:
        """
        One echo's delay, drawn from C{draw}.
        """
        jitter = self.jitter
        if not jitter:
            return self.latency
        if self.distribution == "normal":
            spread = min(max(draw.gauss(0.0, jitter), -3 * jitter), 3 * jitter)
        else:
            spread = draw.uniform(-jitter, jitter)
        return max(0.0, self.latency + spread)


class Faults:
    """A plan and the random draws all connections of one server share."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.draw = random.Random(plan.seed)

    def hits(self) -> frozenset[str]:
        """
        The faults the next connection gets: one draw per configured kind,
        always made, so that a seed gives the same sequence whatever hits.
        """
        chosen = set()
        for kind in self.plan.configured():
            chance = self.plan.probability.get(kind, 1.0)
            if self.draw.random() < chance:
                chosen.add(kind)
        return frozenset(chosen)


def greetingLine(template: str, listener: str) -> bytes:
    """
    C{template} filled in, as one line.
    """
    text = template.format(
        host=socket.gethostname(), pid=os.getpid(), listener=listener
    )
    return text.encode("utf-8", "replace") + b"\n"


def faultyProtocol(base: type[EchoProtocol], faults: Faults) -> type[EchoProtocol]:
    """
    A subclass of C{base} whose connections misbehave as C{faults} plan.
    """
    plan = faults.plan

    class Faulty(base):  # type: ignore[valid-type,misc]
        _hits: frozenset[str] = frozenset()
        _queue: deque[tuple[float, bytes]]
        _queued = 0
        _next = 0.0
        _stallUntil = 0.0
        _stalled = False
        _paused = False
        _release: IDelayedCall | None = None
        _closeTimer: IDelayedCall | None = None
        _stallTimer: IDelayedCall | None = None
        _closeWhenDrained: str | None = None
        _counted: dict[str, int]
        greetings = 0

        def connectionMade(self) -> None:
            super().connectionMade()
            self._queue = deque()
            self._counted = {}
            self._hits = faults.hits()
            if plan.greeting is not None:
                listener = formatAddress(self.transport.getHost())
                self.transport.write(greetingLine(plan.greeting, listener))
                self.greetings = 1
            if "close" in self._hits and plan.closeAfterSeconds:
                self._closeTimer = self.callLater(
                    plan.closeAfterSeconds, self._closeAfterSeconds
                )

        def _fault(self, kind: str, what: str) -> None:
            """
            Count C{kind} once for this connection, and log it once if the
            connection's lines are logged (L{nbecho.logs.connlimit}).
            """
            if kind in self._counted:
                return
            self._counted[kind] = 1
            if self.logged:
                log.info(
                    "Fault {kind} {peer}: {what}",
                    kind=kind,
                    peer=self.peer,
                    what=what,
                    nbecho_event="fault",
                )

        def dataReceived(self, data: bytes) -> None:
            if self._closeWhenDrained is not None:
                return
            super().dataReceived(data)

        def echo(self, data: bytes) -> None:
            hits = self._hits
            now = self.seconds()
            if (
                "stall" in hits
                and not self._stalled
                and self.bytesIn >= plan.stallAfter
            ):
                self._stalled = True
                self._stallUntil = now + plan.stall
                self._fault("stall", f"stalled for {plan.stall:g}s")
                self._stallTimer = self.callLater(plan.stall, self._stallOver)
            release = max(self._next, self._stallUntil)
            if "latency" in hits:
                delay = plan.delay(faults.draw)
                release = max(release, now + delay)
                self._fault(
                    "latency", f"echoes delayed {plan.latency:g}s ± {plan.jitter:g}s"
                )
            else:
                release = max(release, now)
            pieces = [data]
            if "slice" in hits:
                self._fault(
                    "slice", f"echoes sliced in {counted(plan.sliceSize, 'byte')}"
                )
                size = plan.sliceSize
                pieces = [data[at : at + size] for at in range(0, len(data), size)]
            bandwidth = plan.bandwidth if "bandwidth" in hits else 0
            if bandwidth:
                self._fault("bandwidth", f"echoes limited to {bandwidth} bytes/s")
                size = max(1, bandwidth // _PIECES_PER_SECOND)
                pieces = [
                    p[at : at + size] for p in pieces for at in range(0, len(p), size)
                ]
            queue = self._queue
            for piece in pieces:
                queue.append((release, piece))
                self._queued += len(piece)
                after = release
                if bandwidth:
                    after = release + len(piece) / bandwidth
                if "slice" in hits:
                    after = max(after, release + plan.sliceDelay)
                release = after
            self._next = release
            if self._queued > QUEUE_BOUND and not self._paused:
                self._paused = True
                self.transport.pauseProducing()
            if "stall" in hits and now < self._stallUntil:
                self.transport.pauseProducing()
            self._schedule()

        def echoPrefix(self, data: bytes, end: int) -> None:
            # A copy: a queued view would hold the whole read.
            self.echo(data if end == len(data) else data[:end])

        def _schedule(self) -> None:
            if self._release is not None or not self._queue:
                return
            wait = max(self._queue[0][0], self._stallUntil) - self.seconds()
            if wait <= 0:
                # Due now (no delay, or the first slice): no timer.
                self._releaseDue()
                return
            self._release = self.callLater(wait, self._releaseDue)

        def _releaseDue(self) -> None:
            self._release = None
            now = self.seconds()
            queue = self._queue
            if now >= self._stallUntil:
                while queue and queue[0][0] <= now:
                    piece = queue.popleft()[1]
                    self._queued -= len(piece)
                    self.bytesOut += len(piece)
                    self._write(piece)
                    if (
                        "close" in self._hits
                        and plan.closeAfterBytes
                        and self.bytesOut >= plan.closeAfterBytes
                    ):
                        self._faultClose(f"after {counted(self.bytesOut, 'byte')}")
                        return
            self._resumeIfDrained(now)
            if queue:
                self._schedule()
            elif self._closeWhenDrained is not None:
                why, self._closeWhenDrained = self._closeWhenDrained, None
                self.close(why)

        def _resumeIfDrained(self, now: float) -> None:
            if now < self._stallUntil or self.closing:
                return
            if self._paused and self._queued <= QUEUE_BOUND:
                self._paused = False
                self.transport.resumeProducing()

        def _stallOver(self) -> None:
            if self.closing:
                return
            if not self._paused:
                self.transport.resumeProducing()
            self._schedule()

        def _closeAfterSeconds(self) -> None:
            self._closeTimer = None
            if not self.closing:
                self._faultClose(f"after {plan.closeAfterSeconds:g}s")

        def _faultClose(self, when: str) -> None:
            """
            End the connection as the plan says, whatever is still queued.
            """
            self._dropQueue()
            self._fault("close", f"{plan.closeHow} close {when}")
            if plan.closeHow == "reset":
                handle = getattr(self.transport, "getHandle", lambda: None)()
                if isinstance(handle, socket.socket):
                    # SO_LINGER with a zero timeout: close() sends a RST.
                    handle.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                self.cut(f"fault: reset {when}")
            else:
                self._closeWhenDrained = None
                self.close(f"fault: close {when}")

        def _dropQueue(self) -> None:
            self._queue.clear()
            self._queued = 0
            if self._release is not None and self._release.active():
                self._release.cancel()
            self._release = None

        def close(self, why: str) -> None:
            # The echoes still queued are owed: close once they are sent.
            if self._queue and not self.closing and not why.startswith("fault:"):
                if self._closeWhenDrained is None:
                    self._closeWhenDrained = why
                return
            super().close(why)

        def timeoutConnection(self) -> None:
            self._dropQueue()
            self._closeWhenDrained = None
            super().timeoutConnection()

        def cut(self, why: str) -> None:
            self._dropQueue()
            super().cut(why)

        def addTo(self, stats: EchoStats) -> None:
            super().addTo(stats)
            stats.greetings += self.greetings
            faulted = stats.faults
            for kind in self._counted:
                faulted[kind] = faulted.get(kind, 0) + 1

        def connectionLost(self, reason: Failure = connectionDone) -> None:
            self._dropQueue()
            for timer in (self._closeTimer, self._stallTimer):
                if timer is not None and timer.active():
                    timer.cancel()
            self._closeTimer = self._stallTimer = None
            super().connectionLost(reason)

    Faulty.__name__ = Faulty.__qualname__ = "Faulty" + base.__name__
    return Faulty


def installFaults(factory: Any, plan: FaultPlan | None) -> None:
    """
    Give C{factory}'s connections the faults of C{plan}, if any: with none,
    the factory's protocol class stays as it is.
    """
    if plan is None or not plan.active:
        return
    factory.protocol = faultyProtocol(factory.protocol, Faults(plan))
