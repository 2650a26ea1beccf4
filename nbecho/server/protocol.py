"""
The echo protocol: what the seed's inner C{read()} loop did, driven by the
reactor instead of a busy loop.

L{EchoProtocol} treats every chunk read from the socket as one message (the
seed's own semantics, binary-safe, RFC 862); L{nbecho.server.lines.LineEchoProtocol}
frames messages as lines.  Both send back every byte they accept, in order,
and log the seed's C{Accept}, C{Read Data} and C{close} events.  Timeouts and
the lingering close come from L{nbecho.server.connection.Connection}.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING

from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from nbecho._tls import tlsFailure
from nbecho._twisted import readInto, tlsSendClosed, tlsWriter, watchCloseNotify
from nbecho._typing import IStreamTransport
from nbecho._words import counted
from nbecho.logs.batch import info, logMessages
from nbecho.logs.escape import Message, escapeMessage
from nbecho.logs.ratelimit import LogLimiter, limiterFor
from nbecho.server._address import formatAddress, logKey
from nbecho.server._fastwrite import fastSequenceWriter, fastWriter
from nbecho.server._libc import LONG, ReadBuffer
from nbecho.server.connection import Connection

if TYPE_CHECKING:
    from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")


def _closeReason(reason: Failure) -> str:
    if reason.check(ConnectionDone):
        return "client closed"
    return reason.getErrorMessage()


class EchoProtocol(Connection):
    """
    Echo each chunk as it arrives; a chunk equal to the exit word (a trailing
    LF or CRLF allowed, as a terminal would send it) ends the connection.

    The transport is registered as its own streaming producer: when a client
    stops reading and the outgoing buffer fills, Twisted pauses reading from
    that client, so its memory stays bounded; reading resumes once the buffer
    drains.

    Each connection counts its own messages and bytes; the factory sums them
    for the server's totals, so the hot path counts everything once.
    """

    transport: IStreamTransport
    messages = 0
    bytesIn = 0
    bytesOut = 0
    #: Echoes a TLS session that had ended could no longer send.
    notEchoed = 0
    started = 0.0
    logLimit: LogLimiter | None = None
    _writesViews = False
    _writeAll: Callable[[list[bytes | bytearray | memoryview]], None] | None = None
    #: Whether this connection's lines are logged (L{nbecho.logs.connlimit}).
    logged = True
    logKey = ""
    #: The read size of a client that sends in bulk (C{_readMore}).
    bulkReadSize = 262144
    #: A read this long fills the transport's buffer; 0 once raised.
    _readSize = 0
    #: The buffer this connection reads into, if it does (L{readView}).
    _buffer: ReadBuffer | None = None
    #: Reads longer than this are echoed from the read buffer when they
    #: can be (L{readView}); shorter ones are copied for C{dataReceived}.
    #: On CPython a short copy costs less than walking lines in a
    #: C{bytearray}; on PyPy, where it is the copies that cost, every read.
    viewAbove = LONG if sys.implementation.name != "pypy" else 0

    def connectionMade(self) -> None:
        super().connectionMade()
        address = self.transport.getPeer()
        self.peer = formatAddress(address)
        self.started = time.monotonic()
        self.settings = self.factory.settings
        self.transport.registerProducer(self.transport, True)
        # Twisted's TCP and UNIX transports read bufferSize bytes at most.
        self._readSize = getattr(self.transport, "bufferSize", 0)
        _noDelay(self.transport)
        self._write = fastWriter(self.transport)
        self._writesViews = self._write != self.transport.write
        if type(self).echo is EchoProtocol.echo:
            # echoPieces sends around echo(): not for a subclass that
            # changes it (the faults, which delay and slice every echo).
            self._writeAll = fastSequenceWriter(self.transport)
        if self._writeAll is not None and self._writesViews:
            # Echoes leave from the read itself (bufferReceived).
            buffer = sharedReadBuffer(self.bulkReadSize)
            if readInto(self.transport, buffer.data, self.bufferReceived):
                self._buffer = buffer
        tlsWrite = tlsWriter(self.transport)
        if tlsWrite is not None:
            # Only ever given bytes: _writesViews is false over TLS.
            self._write = tlsWrite  # type: ignore[assignment]
            self.echo = self._echoTLS  # type: ignore[method-assign,assignment]
            # The client's close_notify is its end of input, as a TCP
            # half-close is: echo what is left before the session ends.
            watchCloseNotify(self.transport, self.readConnectionLost)
        self.logLimit = limiterFor(self.peer, self.factory)
        self.logKey = logKey(address)
        self.logged = self.factory.connectionLog.admit(self.logKey)
        if self.logged:
            log.info("Accept {peer}", peer=self.peer, nbecho_event="accept")

    def dataReceived(self, data: bytes) -> None:
        if not self.noteRead(data):
            return
        self.messagesRead([data])
        self.echo(data)
        exitWord = self.settings.exitWord
        if exitWord and withoutTerminator(data) == exitWord:
            self.close("exit word")

    def bufferReceived(self, length: int) -> None:
        """
        A read of C{length} bytes arrived at the start of the read buffer
        every connection shares (L{nbecho._twisted.readInto}).  It is
        echoed from the buffer when L{readView} can (quiet, nothing in it
        that ends the connection); otherwise it is copied and goes to
        C{dataReceived}, as if Twisted had read it.
        """
        buffer = self._buffer
        assert buffer is not None
        quiet = self.settings.quiet
        if length <= self.viewAbove or not quiet or not self.readView(length):
            self.dataReceived(bytes(memoryview(buffer.data)[:length]))

    def readView(self, length: int) -> bool:
        """
        Echo the read of C{length} bytes in the read buffer, quietly, or
        return C{False} without doing anything, for C{dataReceived} to
        handle it: a read that may be the exit word.

        Nothing may keep a view of the buffer past this call: the fast
        writer sends it, or copies what the socket does not take.
        """
        exitWord = self.settings.exitWord
        if exitWord and length <= len(exitWord) + 2:
            return False
        assert self._buffer is not None
        view = memoryview(self._buffer.data)[:length]
        if self.noteRead(view):
            self.counted(1)
            self.echo(view)
        return True

    def noteRead(self, data: bytes | memoryview) -> bool:
        """
        Note the arrival of C{data}, a read, for the idle timeout, the
        counters and the read size; return C{False} when the connection is
        closing and C{data} is to be dropped unechoed.
        """
        if self.closing:
            return False
        self.lastInput = self.seconds()
        self.bytesIn += len(data)
        if len(data) == self._readSize:
            self._readMore()
        return True

    def _readMore(self) -> None:
        """
        A read filled the transport's buffer (Twisted's C{bufferSize}, 64
        KiB): the client sends in bulk, so read up to C{bulkReadSize} (256
        KiB, what asyncio and uvloop read) from now on.

        Fewer, larger reads cost fewer system calls and less per byte on
        any interpreter; on PyPy a read over 64 KiB is also allocated
        outside the nursery, instead of being copied out of it whenever a
        partial line holds on to it.  The memory bound this changes is in
        docs/limits.rst.
        """
        if self.bulkReadSize > self._readSize:
            self.transport.bufferSize = self.bulkReadSize  # type: ignore[attr-defined]
        self._readSize = 0

    def counted(self, count: int) -> None:
        """
        Count C{count} messages without looking at them.
        """
        self.messages += count

    def messagesRead(self, messages: Sequence[Message]) -> None:
        """
        Count C{messages} and log each, terminator removed, unless quiet or
        over the log rate (L{nbecho.logs.ratelimit}).

        Several messages read together are logged as one event, one line
        each, for a fraction of the cost of an event per message.
        """
        self.messages += len(messages)
        if self.settings.quiet:
            return
        if self.logLimit is not None:
            messages = self.logLimit.admit(messages)
        if len(messages) > 1:
            logMessages(log, self.peer, messages)
        else:
            for message in messages:
                info(
                    log,
                    "Read Data {peer} {text}",
                    peer=self.peer,
                    text=escapeMessage(message),
                    size=len(message),
                    nbecho_event="message",
                )

    def echo(self, data: bytes | memoryview) -> None:
        """
        Send C{data} back to the client: a view only when the fast writer
        sends (C{_writesViews}).
        """
        self.bytesOut += len(data)
        self._write(data)

    def _echoTLS(self, data: bytes) -> None:
        """
        L{echo} over TLS: once the TLS session has ended (the client reset
        or closed its socket) nothing more can be sent, and what is not
        sent is counted as not echoed rather than as bytes out.
        """
        if tlsSendClosed(self.transport):
            self.notEchoed += len(data)
            return
        self.bytesOut += len(data)
        self._write(data)

    def echoPrefix(self, data: bytes | memoryview, end: int) -> None:
        """
        Send C{data[:end]} back to the client: as a view of C{data}, not a
        copy, when the fast writer sends it: a socket takes views, and so
        does Twisted's own C{write}, but other transports (TLS, the PROXY
        protocol's wrapper, test transports) are only promised C{bytes}.
        """
        if end == len(data):
            self.echo(data)
        elif self._writesViews:
            self.bytesOut += end
            self._write(memoryview(data)[:end])
        else:
            self.echo(data[:end])

    def echoPieces(
        self,
        pieces: list[bytes | bytearray | memoryview],
        data: bytes | memoryview,
        end: int,
    ) -> None:
        """
        Send C{pieces} (a line that arrived in several reads, held until its
        LF came), then C{data[:end]}, back to the client, as one write.

        Where the fast writer sends, the pieces go to the kernel as they are
        (one C{sendmsg}), not joined into one string first: a line of
        100 KiB is then not copied again on its way out, and on PyPy every
        such copy is a large allocation, which its garbage collector pays
        for (docs/performance.rst, section PyPy).  C{pieces} is consumed.
        """
        writeAll = self._writeAll
        if writeAll is None:
            pieces.append(data[:end])
            self.echo(b"".join(pieces))
            return
        pieces.append(data if end == len(data) else memoryview(data)[:end])
        self.bytesOut += sum(map(len, pieces))
        writeAll(pieces)

    def close(self, why: str) -> None:
        """
        Close the connection once everything queued for the client is sent.

        The transport stops being its own producer first: a paused producer
        would otherwise keep the connection open forever.
        """
        if self.closing:
            return
        self.transport.unregisterProducer()
        super().close(why)

    def addTo(self, stats: EchoStats) -> None:
        """
        Add this connection's counts to C{stats}.
        """
        stats.messages += self.messages
        stats.bytesIn += self.bytesIn
        stats.bytesOut += self.bytesOut

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # The close line comes before the factory hears of the end: the
        # last connection's line then precedes the shutdown totals.
        if self.logLimit is not None:
            self.logLimit.close()
        # A failed TLS handshake (a port scanner, a client speaking plain
        # text) is worth a warning, in words rather than OpenSSL's tuples.
        tls = (
            None if self.closeWhy else tlsFailure(reason, self.transport, self.bytesIn)
        )
        if not self.logged:
            self.factory.connectionLog.hold(self.logKey, _outcome(self.closeWhy, tls))
            super().connectionLost(reason)
            return
        emit = log.info if tls is None else log.warn
        emit(
            "close {peer} ({reason}): {messagesText}, {bytesInText} in, "
            "{bytesOutText} out, {duration:.3f}s",
            peer=self.peer,
            reason=_notEchoed(
                self.closeWhy or tls or _closeReason(reason), self.notEchoed
            ),
            messages=self.messages,
            bytesIn=self.bytesIn,
            bytesOut=self.bytesOut,
            messagesText=counted(self.messages, "message"),
            bytesInText=counted(self.bytesIn, "byte"),
            bytesOutText=counted(self.bytesOut, "byte"),
            duration=time.monotonic() - self.started,
            nbecho_event="close",
        )
        super().connectionLost(reason)


@cache
def sharedReadBuffer(size: int) -> ReadBuffer:
    """
    The read buffer of every connection that reads into one, made with
    the first.
    """
    return ReadBuffer(size)


def _notEchoed(reason: str, count: int) -> str:
    """
    The close line's reason, saying how many bytes received were not
    echoed because the TLS session had ended, if any were.
    """
    if not count:
        return reason
    if reason == "client closed":
        return f"client closed TLS with {count:,} bytes not echoed"
    return f"{reason}, {count:,} bytes not echoed"


def _noDelay(transport: object) -> None:
    """
    Turn Nagle's algorithm off, as asyncio and uvloop do for every TCP
    connection: an echo is sent whole or not at all, and the tail of a
    large one must not wait for the client's delayed ACK (40 ms on Linux).
    UNIX sockets and wrappers that do not offer it are left as they are.
    """
    setNoDelay = getattr(transport, "setTcpNoDelay", None)
    if setNoDelay is None:
        return
    try:
        setNoDelay(True)
    except (OSError, AttributeError, NotImplementedError):
        pass


#: The outcome a close reason counts under when its lines are held back.
_OUTCOMES = {"idle timeout": "timed out", "line too long": "with a line too long"}


def _outcome(closeWhy: str, tls: str | None) -> str:
    """
    How a connection ended, as L{nbecho.logs.connlimit} summarises it.
    """
    if tls is not None:
        return "failing the TLS handshake"
    return _OUTCOMES.get(closeWhy, "closed")


def withoutTerminator(message: bytes) -> bytes:
    """
    C{message} without one trailing LF or CRLF.
    """
    if message.endswith(b"\n"):
        message = message[:-1]
    if message.endswith(b"\r"):
        message = message[:-1]
    return message
