"""
When each message goes out.

Closed loop (L{Run} without a rate): each connection keeps C{pipeline}
messages in flight and sends the next when an echo comes back; the latency
of a message is from its send to its echo.

Open loop (with a rate): one clock across all connections says when
message I is due (C{start + I / rate}); messages go to the connections in
turn, and the latency of each is measured from the time it was due, not
the time it went out.  A slow echo, or a client too busy to send on time,
therefore shows up in the latencies instead of quietly lowering the rate
(no "coordinated omission").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from nbecho.client.load.figures import Figures
from nbecho.client.load.messages import Messages

if TYPE_CHECKING:
    from nbecho.client.load.connection import LoadProtocol


class Run:
    """
    A load run over established connections: schedule the messages, count
    what comes back, and fire C{done} with the L{Figures} at the end.

    @ivar warmup: seconds at the start whose messages are sent and checked
        but left out of the figures.
    @ivar duration: seconds measured after the warm-up, or C{None} with
        C{count}.
    @ivar count: messages measured after the warm-up, or C{None}.
    @ivar drain: seconds to wait for the last echoes once sending stops;
        those still missing then are counted C{unanswered}.
    """

    #: Open loop: the shortest wait between two turns of the send clock.
    #: Messages due in between go out together, each with its own due time.
    tick = 0.0005

    def __init__(
        self,
        clock: IReactorTime,
        messages: Messages,
        figures: Figures,
        *,
        rate: float | None = None,
        pipeline: int = 1,
        warmup: float = 0.0,
        duration: float | None = None,
        count: int | None = None,
        drain: float = 5.0,
    ) -> None:
        self.clock = clock
        self.messages = messages
        self.figures = figures
        self.rate = rate
        self.pipeline = pipeline
        self.warmup = warmup
        self.duration = duration
        self.count = count
        self.drain = drain
        figures.target = rate
        self.connections: list[LoadProtocol] = []
        self.turn = 0
        self.index = 0
        self.sending = False
        self.started = self.measureFrom = self.lastEcho = self.lastSent = 0.0
        self.stoppedAt = 0.0
        self.endAt: float | None = None
        self.timer: IDelayedCall | None = None
        self.done: Deferred[Figures] = Deferred()

    def start(self, connections: list[LoadProtocol]) -> Deferred[Figures]:
        """
        Start sending over C{connections}.
        """
        self.connections = list(connections)
        self.figures.connections = len(connections)
        now = self.clock.seconds()
        self.started = now
        self.measureFrom = self.lastEcho = self.lastSent = now + self.warmup
        if self.duration is not None:
            self.endAt = self.measureFrom + self.duration
        self.sending = True
        if not self.connections:
            self._stopSending()
        elif self.rate is None:
            if self.endAt is not None:
                # Closed loop: the end comes even if no echo ever does.
                self.timer = self.clock.callLater(self.endAt - now, self._stopSending)
            for connection in list(self.connections):
                self.ready(connection)
        else:
            self._clockTurn()
        return self.done

    def _next(self, due: float) -> tuple[bytes, bool] | None:
        """
        The message due at C{due} and whether it counts, or C{None} when the
        run has sent all it should.
        """
        if self.endAt is not None and due >= self.endAt:
            return None
        measured = due >= self.measureFrom
        if measured:
            if self.count is not None and self.figures.sent >= self.count:
                return None
            self.figures.sent += 1
        return self.messages.next(), measured

    def ready(self, connection: LoadProtocol) -> None:
        """
        Closed loop: top C{connection} up to C{pipeline} messages in flight.
        """
        if self.rate is not None or not self.sending or connection.broken:
            return
        now = self.clock.seconds()
        while len(connection.inFlight) < self.pipeline:
            message = self._next(now)
            if message is None:
                self._stopSending()
                return
            connection.send(message[0], now, message[1])
            if message[1]:
                self.lastSent = now

    def _clockTurn(self) -> None:
        """
        Open loop: send every message due by now, then wait for the next.
        """
        self.timer = None
        if not self.sending:
            return
        now = self.clock.seconds()
        interval = 1.0 / self.rate  # type: ignore[operator]
        due = self.started + self.index * interval
        while due <= now:
            message = self._next(due)
            if message is None or not self.connections:
                self._stopSending()
                return
            connection = self.connections[self.turn % len(self.connections)]
            self.turn += 1
            connection.send(message[0], due, message[1])
            if message[1]:
                # The end of this message's slot in the schedule.
                self.lastSent = due + interval
            self.index += 1
            due = self.started + self.index * interval
            if not self.sending:  # the send failed the last connection
                return
        self.timer = self.clock.callLater(max(due - now, self.tick), self._clockTurn)

    def echoed(self, sentAt: float, measured: bool, size: int, now: float) -> None:
        if measured:
            self.figures.record(now - sentAt, size)
            self.lastEcho = now
        if not self.sending and not any(c.inFlight for c in self.connections):
            self._finish()

    def failed(self, kind: str, connection: LoadProtocol | None) -> None:
        self.figures.count(kind)
        if connection is not None and connection in self.connections:
            self.connections.remove(connection)
        if not self.connections:
            self._stopSending()
        elif not self.sending and not any(c.inFlight for c in self.connections):
            self._finish()

    def stop(self) -> None:
        """
        Stop sending now (Ctrl-C), then wait for the echoes in flight.
        """
        self._stopSending()

    def _stopSending(self) -> None:
        if self.done.called:
            return
        wasSending, self.sending = self.sending, False
        if wasSending:
            self.stoppedAt = self.clock.seconds()
        if wasSending and self.timer is not None and self.timer.active():
            self.timer.cancel()
            self.timer = None
        if not any(c.inFlight for c in self.connections):
            self._finish()
        elif wasSending:
            self.timer = self.clock.callLater(self.drain, self._finish)

    def _finish(self) -> None:
        if self.done.called:
            return
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self.sending = False
        for connection in self.connections:
            unanswered = connection.finish()
            if unanswered:
                self.figures.count(connection.missing, unanswered)
        # The measured window: from the end of the warm-up to the end of the
        # sending (at most the duration), or to the last echo if later.
        end = max(self.lastEcho, self.lastSent)
        if self.endAt is not None:
            end = max(end, min(self.stoppedAt, self.endAt))
        self.figures.seconds = max(end - self.measureFrom, 0.0)
        self.done.callback(self.figures)
