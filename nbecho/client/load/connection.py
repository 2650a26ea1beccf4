"""
One connection of a load run: send messages, check each echoed byte
against what was sent, and tell the run when a message has come back whole
or when something went wrong.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho._tls import isOpenSSLError
from nbecho.client.stream import overTLS

#: The kinds of error a run counts, with what each means in its report.
ERRORS = {
    "connect": "connection attempts that failed",
    "mismatch": "echoes whose bytes differ from those sent",
    "excess": "bytes echoed that were never sent",
    "short": "connections closed in the middle of an echo",
    "closed": "connections the server closed with messages unanswered",
    "reset": "connections lost by an error (reset, TLS, ...)",
    "unanswered": "messages still unanswered when the run ended",
    "lost": "datagrams whose echo never came",
}


class Outcome(TypingProtocol):
    """
    What a connection reports to: the run.
    """

    def echoed(self, sentAt: float, measured: bool, size: int, now: float) -> None:
        """
        A message sent at (or, open loop, meant to be sent at) C{sentAt} came
        back whole and right.
        """

    def failed(self, kind: str, connection: LoadProtocol | None) -> None:
        """
        Count an error of C{kind} (a key of L{ERRORS}); C{connection}, if
        given, met it and is no longer used.
        """

    def ready(self, connection: LoadProtocol) -> None:
        """
        The connection can take more messages (closed loop: one came back).
        """


@implementer(IHandshakeListener)
class LoadProtocol(Protocol):
    """
    A connection that checks its echoes as a stream of bytes: whatever the
    framing, the bytes that come back must be the bytes sent, in order.

    Each message in flight is a record of its bytes, the time the clock
    meant it to go out and whether it counts in the figures; when its last
    byte comes back the run gets its latency.
    """

    #: What messages still in flight at the end are counted as.
    missing = "unanswered"

    def __init__(self, clock: IReactorTime, outcome: Outcome) -> None:
        self.clock = clock
        self.outcome = outcome
        self.inFlight: deque[tuple[bytes, float, bool]] = deque()
        self.offset = 0
        self.broken = False
        self.finishing = False
        #: Over TLS, fires once the handshake has verified the server, or
        #: fails with the reason it did not.
        self.secured: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        self.secured.callback(None)

    def send(self, message: bytes, sentAt: float, measured: bool) -> None:
        """
        Send C{message}, meant to go out at C{sentAt}.
        """
        self.inFlight.append((message, sentAt, measured))
        self.transport.write(message)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.broken:
            return
        inFlight = self.inFlight
        now = self.clock.seconds()
        while data:
            if not inFlight:
                self.fail("excess")
                return
            message, sentAt, measured = inFlight[0]
            offset = self.offset
            need = len(message) - offset
            if len(data) >= need:
                if offset == 0 and need == len(data):
                    right = data == message
                else:
                    right = data[:need] == message[offset:]
                if not right:
                    self.fail("mismatch")
                    return
                inFlight.popleft()
                self.offset = 0
                data = data[need:]
                self.outcome.echoed(sentAt, measured, len(message), now)
            else:
                if data != message[offset : offset + len(data)]:
                    self.fail("mismatch")
                    return
                self.offset += len(data)
                return
        self.outcome.ready(self)

    def fail(self, kind: str) -> None:
        """
        Count an error of C{kind} and drop the connection: after a wrong
        byte nothing that follows can be matched to what was sent.
        """
        if self.broken:
            return
        self.broken = True
        self.outcome.failed(kind, self)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def finish(self) -> int:
        """
        The run is over: close, and return how many messages were still
        unanswered.
        """
        self.finishing = True
        unanswered = 0 if self.broken else sum(1 for m in self.inFlight if m[2])
        self.broken = True
        if self.transport is not None:
            self.transport.loseConnection()
        return unanswered

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.secured.called and overTLS(self.transport):
            self.secured.errback(reason)
        if self.broken or self.finishing:
            self.broken = True
            return
        if self.offset:
            self.fail("short")
        elif not reason.check(ConnectionDone) or (
            reason.value is not None and isOpenSSLError(reason.value)
        ):
            self.fail("reset")
        else:
            self.fail("closed")
