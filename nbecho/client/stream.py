"""
The two ends of a client session: the socket to the server (L{EchoClient})
and standard input and output (L{Console}), and how the client process ends
when interrupted.
"""

from __future__ import annotations

import fcntl
import os
import signal
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho._typing import IStreamTransport


class SessionLostError(Exception):
    """
    The connection ended before the session did.
    """


class OutputClosedError(Exception):
    """
    Standard output was closed: nobody reads the echoes any more.
    """


def prompt(exitWord: bytes) -> bytes:
    """
    The prompt shown on a terminal: the seed's, naming the exit word the
    client was given, so that the user knows which word ends the session.
    """
    if not exitWord:
        return b"send server: "
    return b'send server (exit is "' + exitWord + b'"): '


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
class Console(LineReceiver):
    """
    Standard input and output: send each input line, print each echo.

    The session ends after the exit word is sent or input ends; the client
    then stops sending, half-closes the socket and waits for the server to
    echo the rest and close.

    @ivar prompt: the prompt shown before each line, or C{b""} when input is
        not a terminal.
    @ivar atLineStart: whether the last byte written to stdout ended a line;
        on a terminal the session ends on a new line, so that the shell's
        prompt does not start after the client's.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024

    transport: IStreamTransport

    def __init__(
        self,
        server: EchoClient,
        done: Deferred[None],
        prompt: bytes = b"",
        exitWord: bytes = b"exit",
    ) -> None:
        self.server = server
        self.done = done
        self.prompt = prompt
        self.exitWord = exitWord
        self.sending = True
        self.pending = 0
        self.atLineStart = True
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

    def write(self, data: bytes) -> None:
        if data:
            self.atLineStart = data.endswith(b"\n")
            self.transport.write(data)

    def showPrompt(self) -> None:
        if self.sending and not self.pending:
            self.write(self.prompt)

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
            if self.tls:
                self.unterminated = True
                self.pending += 1
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
            if not reason.check(ConnectionDone):
                self.error = f"connection lost: {reason.getErrorMessage()}"
            elif self.sending:
                # Twisted calls this "closed cleanly"; to the user the server
                # went away in the middle of the session.
                self.error = "the server closed the connection mid-session"
        if self.prompt and not self.atLineStart:
            self.write(b"\n")
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if self.error is None:
            self.done.callback(None)
        else:
            self.done.errback(SessionLostError(self.error))


class StdioModes:
    """
    The file status flags of standard input and output as the client found
    them, to put back when it ends: Twisted's stdio makes them non-blocking,
    and on a terminal they are shared with the shell and whatever it runs
    next.
    """

    def __init__(self, flags: dict[int, int]) -> None:
        self.flags = flags

    @classmethod
    def save(cls, fds: tuple[int, ...] = (0, 1)) -> StdioModes:
        flags = {}
        for fd in fds:
            try:
                flags[fd] = fcntl.fcntl(fd, fcntl.F_GETFL)
            except OSError:
                pass  # closed: nothing to put back
        return cls(flags)

    def restore(self) -> None:
        for fd, flags in self.flags.items():
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)
            except OSError:
                pass  # closed meanwhile: nothing to put back


#: The signals that end the client at once, as they end C{nc}.
ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def endingSignals() -> list[signal.Signals]:
    """
    The signals of L{ENDING_SIGNALS} not ignored: a shell runs background
    jobs with SIGINT ignored so that Ctrl-C spares them, and so must it stay.
    Ask before the reactor starts: it handles SIGTERM, ignored or not.
    """
    return [
        number
        for number in ENDING_SIGNALS
        if signal.getsignal(number) != signal.SIG_IGN
    ]


def endOnSignals(modes: StdioModes, numbers: list[signal.Signals]) -> None:
    """
    From now on each of C{numbers} ends the client at once, killed by it,
    instead of stopping the reactor (which would tear the session down as if
    the connection had failed).
    """

    def handler(number: int, frame: Any) -> None:
        endBySignal(signal.Signals(number), modes)

    for number in numbers:
        signal.signal(number, handler)


def endBySignal(number: signal.Signals, modes: StdioModes) -> None:
    """
    End as the user asked, after putting stdio back as it was.

    Ctrl-C (SIGINT) exits with status 130, the status shells report for it,
    after starting a new line on the terminal (the shell's prompt would
    otherwise follow the C{^C}).  Other signals kill the client as they
    would a program without a handler, so the shell reports 128 plus the
    signal number.
    """
    modes.restore()
    if number == signal.SIGINT:
        for fd in (1, 2):
            try:
                if os.isatty(fd):
                    os.write(fd, b"\n")
                    break
            except OSError:
                pass  # closed: nobody to start a line for
        os._exit(128 + number)
    signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # only if the signal did not kill us


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
