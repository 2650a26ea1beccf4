"""
Standard input and output, whichever session runs over them: the prompt,
the base of both consoles (L{StdioLines}), the stdio modes to put back and
the signals that end the client at once.

A session reads lines from standard input and writes echoes to standard
output; over a stream (L{nbecho.client.stream}) or datagrams
(L{nbecho.client.datagram}), the terminal behaves the same.
"""

from __future__ import annotations

import fcntl
import os
import signal
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import connectionDone
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

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


class StdioLines(LineReceiver):
    """
    Standard input and output of a session: lines in, echoes out, and the
    prompt on a terminal whenever nothing is waiting for its echo.

    @ivar prompt: the prompt shown before each line, or C{b""} when input is
        not a terminal.
    @ivar sending: whether input lines are still sent (not after the exit
        word or the end of input).
    @ivar atLineStart: whether the last byte written to stdout ended a line;
        on a terminal the session ends on a new line, so that the shell's
        prompt does not start after the client's.
    """

    delimiter = b"\n"
    transport: IStreamTransport
    prompt = b""
    sending = True
    atLineStart = True

    def __init__(self, done: Deferred[None], prompt: bytes, exitWord: bytes) -> None:
        """
        @param done: fires when the session is over (errbacks with why, if
            it ended badly).
        @param prompt: shown before each line; C{b""} off a terminal.
        @param exitWord: the line that ends the session once echoed.
        """
        self.done = done
        self.prompt = prompt
        self.exitWord = exitWord

    def write(self, data: bytes) -> None:
        if data:
            self.atLineStart = data.endswith(b"\n")
            self.transport.write(data)

    def idle(self) -> bool:
        """
        Whether no line sent is still waiting for its echo.
        """
        raise NotImplementedError

    def lastLineEnded(self, rest: bytes) -> None:
        """
        Input ended after C{rest}, a line with no newline.  On a terminal the
        user's typed text is still on the screen with the cursor after it:
        start a new line, so that its echo shows on a line of its own rather
        than as C{partialpartial}.
        """
        if rest and self.prompt:
            self.write(b"\n")

    def showPrompt(self) -> None:
        if self.sending and self.idle():
            self.write(self.prompt)

    def sessionError(self) -> Exception | None:
        """
        Why the session failed, or L{None} if it ended well.
        """
        raise NotImplementedError

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Standard input and output are closed: the session is over, well or
        not (L{sessionError}).
        """
        if self.done.called:
            return
        error = self.sessionError()
        if error is None:
            self.done.callback(None)
        else:
            self.done.errback(error)


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
