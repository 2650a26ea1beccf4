"""
The two ends of a UDP client session (RFC 862 echo over datagrams): the
socket connected to the server (L{DatagramClient}) and standard input and
output (L{DatagramConsole}).

UDP neither orders nor delivers for sure, so the console sends one line at a
time and waits for its echo: a line not answered within the timeout is sent
again, up to the retry count, and then the session ends with an error.  One
datagram in flight also keeps the client under any per-source reply limit a
careful server sets.
"""

from __future__ import annotations

from collections import deque

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
    IUDPTransport,
)
from twisted.internet.protocol import DatagramProtocol
from zope.interface import implementer

from nbecho.client.terminal import OutputClosedError, SessionLostError, StdioLines

#: The largest UDP payload over IPv4; over IPv6 it is 20 bytes more.
MAX_DATAGRAM = 65507

#: Input lines read ahead of the one in flight before reading stdin pauses.
READ_AHEAD = 64

#: How many late duplicate echoes (of lines sent more than once) to expect.
MAX_STALE = 256


class ServerUnreachableError(Exception):
    """
    Nothing came back from the server, not even one echo: refused by the
    host (no UDP socket listens there) or unanswered.
    """


class DatagramClient(DatagramProtocol):
    """
    The UDP socket, connected to the server: hand each echo to the console.
    A connected socket only receives datagrams from the server's address.
    """

    console: DatagramConsole | None = None
    transport: IUDPTransport

    def datagramReceived(self, datagram: bytes, addr: object) -> None:
        if self.console is not None:
            self.console.replied(datagram)

    def connectionRefused(self) -> None:
        """
        The server's host answered a datagram with ICMP port unreachable
        (the select reactor reports it so).
        """
        if self.console is not None:
            self.console.refused()

    def stopProtocol(self) -> None:
        """
        The socket closed.  Poll-like reactors (epoll, the default on Linux)
        close a connected UDP socket on the error an ICMP port unreachable
        raises on it, without calling L{connectionRefused} (Twisted issues
        5377 and 6467); when the console did not close it, that is why.
        """
        if self.console is not None:
            self.console.refused()


@attrs.define
class _InFlight:
    """
    The line sent and not yet echoed.

    @ivar number: its line number in the input, for the loss report.
    @ivar ending: what to print after its echo: C{b"\\n"}, or nothing for a
        last input line without one.
    """

    datagram: bytes
    number: int
    ending: bytes
    tries: int = 0
    timer: IDelayedCall | None = None


@implementer(IHalfCloseableProtocol, IPushProducer)
class DatagramConsole(StdioLines):
    """
    Standard input and output of a UDP session: send each input line as one
    datagram, without its newline, and print each echo followed by one.

    The session ends once the exit word's echo is printed, or at the end of
    input once every line has been echoed; or when a line stays unanswered
    after every retry, or the server's host refuses the datagrams.  It is
    also the producer for standard output: while the terminal or pipe is
    backed up no new line is sent.

    @ivar answered: how many echoes arrived; none means the server was never
        reached, which the exit status tells apart from a session lost.
    @ivar stale: echoes that may still come for lines sent more than once,
        dropped when they do rather than taken as the next line's echo.
    """

    MAX_LENGTH = MAX_DATAGRAM

    def __init__(
        self,
        socket: IUDPTransport,
        clock: IReactorTime,
        done: Deferred[None],
        prompt: bytes = b"",
        exitWord: bytes = b"exit",
        timeout: float = 1.0,
        retries: int = 3,
    ) -> None:
        super().__init__(done, prompt, exitWord)
        self.socket = socket
        self.clock = clock
        self.timeout = timeout
        self.retries = retries
        self.queue: deque[_InFlight] = deque()
        self.inFlight: _InFlight | None = None
        self.lines = 0
        self.answered = 0
        self.stale: dict[bytes, int] = {}
        self.readPaused = False
        self.outputPaused = False
        self.ended = False
        self.error: Exception | None = None

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self.showPrompt()

    def idle(self) -> bool:
        return self.inFlight is None and not self.queue

    def lineReceived(self, line: bytes) -> None:
        if self.sending:
            self.enqueue(line, b"\n")
            if self.exitWord and line.rstrip(b"\r") == self.exitWord:
                self.finishSending()
            self.sendNext()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.end(
            SessionLostError(
                f"input line longer than {self.MAX_LENGTH} bytes,"
                " the most one datagram holds"
            )
        )

    def enqueue(self, datagram: bytes, ending: bytes) -> None:
        self.lines += 1
        self.queue.append(_InFlight(datagram, self.lines, ending))
        if len(self.queue) >= READ_AHEAD and not self.readPaused:
            self.readPaused = True
            self.transport.pauseProducing()

    def readConnectionLost(self) -> None:
        """
        End of input: a last line without a newline is still sent, and its
        echo printed without one.
        """
        rest = self.clearLineBuffer()
        if rest and self.sending:
            self.lastLineEnded(rest)
            self.enqueue(rest, b"")
        self.finishSending()
        self.sendNext()

    def finishSending(self) -> None:
        if self.sending:
            self.sending = False
            self.transport.pauseProducing()

    def sendNext(self) -> None:
        """
        Send the next line if none is in flight and stdout keeps up; end the
        session when nothing is left to send or to wait for.
        """
        if self.ended or self.inFlight is not None or self.outputPaused:
            return
        if not self.queue:
            if not self.sending:
                self.end(None)
            return
        self.inFlight = self.queue.popleft()
        if self.readPaused and self.sending and len(self.queue) < READ_AHEAD // 2:
            self.readPaused = False
            self.transport.resumeProducing()
        self.transmit()

    def transmit(self) -> None:
        line = self.inFlight
        assert line is not None
        line.tries += 1
        line.timer = self.clock.callLater(self.timeout, self.timedOut)
        try:
            self.socket.write(line.datagram, None)  # to the connected address
        except MessageLengthError:
            self.end(SessionLostError(f"line {line.number} is too long for UDP"))

    def timedOut(self) -> None:
        line = self.inFlight
        assert line is not None
        if line.tries <= self.retries:
            self.transmit()
            return
        tries = "1 try" if line.tries == 1 else f"{line.tries} tries"
        if self.answered:
            self.end(
                SessionLostError(
                    f"no echo of line {line.number} after {tries},"
                    f" {self.timeout:g} s each"
                )
            )
        else:
            self.end(
                ServerUnreachableError(
                    f"no echo after {tries}, {self.timeout:g} s each"
                )
            )

    def replied(self, datagram: bytes) -> None:
        line = self.inFlight
        if self.ended:
            return
        if line is None or (datagram != line.datagram and self.stale.get(datagram)):
            self.dropStale(datagram)
            return
        if line.timer is not None and line.timer.active():
            line.timer.cancel()
        if line.tries > 1:
            self.stale.pop(line.datagram, None)
            self.stale[line.datagram] = line.tries - 1
            while len(self.stale) > MAX_STALE:
                del self.stale[next(iter(self.stale))]
        self.inFlight = None
        self.answered += 1
        self.write(datagram + line.ending)
        self.sendNext()
        self.showPrompt()

    def dropStale(self, datagram: bytes) -> None:
        """
        A late echo of a line sent more than once and already answered, or
        a datagram when no line waits: nothing asked for it.
        """
        left = self.stale.pop(datagram, 0) - 1
        if left > 0:
            self.stale[datagram] = left

    def refused(self) -> None:
        if self.answered:
            self.end(
                SessionLostError(
                    "connection refused: nothing receives UDP on that port any more"
                )
            )
        else:
            self.end(
                ServerUnreachableError(
                    "connection refused: nothing receives UDP on that port"
                )
            )

    def end(self, error: Exception | None) -> None:
        """
        Stop sending and waiting; the session is over once stdout has
        written everything (C{connectionLost}).
        """
        if self.ended:
            return
        self.ended = True
        self.error = error
        self.sending = False
        line, self.inFlight = self.inFlight, None
        if line is not None and line.timer is not None and line.timer.active():
            line.timer.cancel()
        self.queue.clear()
        if self.prompt and not self.atLineStart:
            self.write(b"\n")
        self.socket.stopListening()
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        """
        Standard output is gone: nobody would see the echoes, so the session
        ends at once.
        """
        self.end(OutputClosedError())
        if not self.done.called:
            self.done.errback(OutputClosedError())

    def sessionError(self) -> Exception | None:
        return self.error

    def pauseProducing(self) -> None:
        self.outputPaused = True

    def resumeProducing(self) -> None:
        self.outputPaused = False
        self.sendNext()

    def stopProducing(self) -> None:
        self.outputPaused = True
