"""
The two ends of a stream session: the socket to the server (L{EchoClient})
and standard input and output (L{Console}).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho._typing import IStreamTransport
from nbecho._words import counted
from nbecho.client.terminal import OutputClosedError, SessionLostError, StdioLines


@implementer(IHandshakeListener)
class EchoClient(LineReceiver):
    """
    The connection to the server: hand each echoed line to the console.

    Over TLS the session starts only once the handshake has verified the
    server, so that a wrong certificate is reported as such, before any
    input is read.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024
    console: Console | None = None
    transport: IStreamTransport

    def __init__(self) -> None:
        self.secured: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        self.secured.callback(None)

    def lineReceived(self, line: bytes) -> None:
        assert self.console is not None
        self.console.echoed(line + b"\n")

    def lineLengthExceeded(self, line: bytes) -> None:
        assert self.console is not None
        self.console.fail(f"echoed line longer than {self.MAX_LENGTH} bytes")
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.console is None:
            if not self.secured.called:
                self.secured.errback(reason)
            return
        rest = self.clearLineBuffer()
        if rest:
            self.console.echoed(rest)
        self.console.serverGone(reason)


@implementer(IHalfCloseableProtocol)
class Console(StdioLines):
    """
    Standard input and output: send each input line, print each echo.

    The session ends after the exit word is sent or input ends; the client
    then stops sending, half-closes the socket and waits for the server to
    echo the rest and close.

    """

    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(
        self,
        server: EchoClient,
        done: Deferred[None],
        prompt: bytes = b"",
        exitWord: bytes = b"exit",
    ) -> None:
        super().__init__(done, prompt, exitWord)
        self.server = server
        self.pending = 0
        self.error: str | None = None
        # TLS in Twisted cannot half-close: the client's close_notify ends
        # the session for the server.  So over TLS the client closes once
        # every line it sent has been echoed, and a last unterminated line is
        # sent with a newline that is then left out of its echo.
        self.tls = overTLS(server.transport)
        self.unterminated = False

    def connectionMade(self) -> None:
        server = self.server.transport
        server.registerProducer(self.transport, True)
        self.transport.registerProducer(server, True)
        self.showPrompt()

    def idle(self) -> bool:
        return not self.pending

    def lineReceived(self, line: bytes) -> None:
        if not self.sending:
            return
        self.pending += 1
        self.server.sendLine(line)
        if self.exitWord and line.rstrip(b"\r") == self.exitWord:
            self.finishSending()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.fail(f"input line longer than {self.MAX_LENGTH} bytes")
        self.server.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """
        End of input: a last line without a newline is still sent.
        """
        rest = self.clearLineBuffer()
        if rest and self.sending:
            self.lastLineEnded(rest)
            self.pending += 1
            if self.tls:
                self.unterminated = True
                rest += b"\n"
            self.server.transport.write(rest)
        self.finishSending()

    def writeConnectionLost(self) -> None:
        """
        Standard output is gone: nobody would see the echoes, so the session
        ends at once, whatever the server still has to send.
        """
        self.sending = False
        self.transport.loseConnection()
        self.server.transport.abortConnection()
        if not self.done.called:
            self.done.errback(OutputClosedError())

    def finishSending(self) -> None:
        if not self.sending:
            return
        self.sending = False
        self.transport.pauseProducing()
        server = self.server.transport
        server.unregisterProducer()
        if not self.tls:
            server.loseWriteConnection()
        elif not self.pending:
            server.loseConnection()

    def echoed(self, data: bytes) -> None:
        self.pending = max(0, self.pending - 1)
        if self.tls and not self.sending and not self.pending:
            # Every line sent has come back: only now may TLS close_notify go
            # out, as the server stops reading when it arrives.
            if self.unterminated and data.endswith(b"\n"):
                data = data[:-1]
            self.server.transport.loseConnection()
        self.write(data)
        self.showPrompt()

    def fail(self, error: str) -> None:
        if self.error is None:
            self.error = error

    def serverGone(self, reason: Failure) -> None:
        if self.done.called:
            return
        if self.error is None:
            self.error = self._lost(reason)
        if self.prompt and not self.atLineStart:
            self.write(b"\n")
        self.transport.loseConnection()

    def _lost(self, reason: Failure) -> str | None:
        """
        What went wrong when the server's side ended, if anything: lines sent
        whose echoes never came are an error however fast the input was.
        """
        unechoed = ""
        if self.pending:
            unechoed = f" with {counted(self.pending, 'line')} not echoed"
        if not reason.check(ConnectionDone):
            return f"connection lost: {reason.getErrorMessage()}{unechoed}"
        if self.pending:
            return f"the server closed the connection{unechoed}"
        if self.sending:
            # Twisted calls this "closed cleanly"; to the user the server
            # went away in the middle of the session.
            return "the server closed the connection mid-session"
        return None

    def sessionError(self) -> Exception | None:
        return None if self.error is None else SessionLostError(self.error)


def overTLS(transport: object) -> bool:
    """
    Whether C{transport} is Twisted's TLS layer.

    Imported here rather than at the top: L{twisted.protocols.tls} needs
    pyOpenSSL, which only the C{tls} extra installs, and a plain C{pip
    install .} must give a client that works over TCP and UNIX sockets.
    """
    try:
        from twisted.protocols.tls import TLSMemoryBIOProtocol
    except ImportError:
        return False
    return isinstance(transport, TLSMemoryBIOProtocol)
