"""
The echo protocol: what the seed's inner C{read()} loop did, driven by the
reactor instead of a busy loop.

L{EchoProtocol} treats every chunk read from the socket as one message (the
seed's own semantics, binary-safe, RFC 862); L{LineEchoProtocol} frames
messages as lines ending in LF or CRLF.  Both send back every byte they accept,
in order, and log the seed's C{Accept}, C{Read Data} and C{close} events.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho._address import formatAddress
from nbecho._escape import escapeMessage
from nbecho._fastwrite import fastWriter
from nbecho._logbatch import info, logMessages
from nbecho._typing import IStreamTransport

if TYPE_CHECKING:
    from nbecho.factory import EchoFactory

log = Logger(namespace="nbecho")


def _closeReason(reason: Failure) -> str:
    if reason.check(ConnectionDone):
        return "client closed"
    return reason.getErrorMessage()


@implementer(IHalfCloseableProtocol)
class EchoProtocol(Protocol):
    """
    Echo each chunk as it arrives; a chunk equal to the exit word (a trailing
    LF or CRLF allowed, as a terminal would send it) ends the connection.

    The transport is registered as its own streaming producer: when a client
    stops reading and the outgoing buffer fills, Twisted pauses reading from
    that client, so its memory stays bounded; reading resumes once the buffer
    drains.
    """

    factory: EchoFactory
    transport: IStreamTransport
    peer = "?"
    messages = 0
    bytesIn = 0
    bytesOut = 0
    started = 0.0
    closing = False
    closeWhy = ""

    def connectionMade(self) -> None:
        self.peer = formatAddress(self.transport.getPeer())
        self.started = time.monotonic()
        self.settings = self.factory.settings
        self.stats = self.factory.stats
        self.stats.connectionsOpen += 1
        self.stats.connectionsTotal += 1
        self.transport.registerProducer(self.transport, True)
        self._write = fastWriter(self.transport)
        log.info("Accept {peer}", peer=self.peer, nbecho_event="accept")

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.received(data)
        self.messagesRead([data])
        self.echo(data)
        exitWord = self.settings.exitWord
        if exitWord and _withoutTerminator(data) == exitWord:
            self.close("exit word")

    def received(self, data: bytes) -> None:
        """
        Count C{data} as read from the client.
        """
        self.bytesIn += len(data)
        self.stats.bytesIn += len(data)

    def counted(self, count: int) -> None:
        """
        Count C{count} messages without looking at them.
        """
        self.messages += count
        self.stats.messages += count

    def messagesRead(self, messages: list[bytes]) -> None:
        """
        Count C{messages} and log each, terminator removed, unless quiet.

        Several messages read together are logged as one event, one line
        each, for a fraction of the cost of an event per message.
        """
        self.counted(len(messages))
        if self.settings.quiet:
            return
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

    def echo(self, data: bytes) -> None:
        """
        Send C{data} back to the client.
        """
        self.bytesOut += len(data)
        self.stats.bytesOut += len(data)
        self._write(data)

    def close(self, why: str) -> None:
        """
        Close the connection once everything queued for the client is sent.

        The transport stops being its own producer first: a paused producer
        would otherwise keep the connection open forever.
        """
        if self.closing:
            return
        self.closing = True
        self.closeWhy = why
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def finish(self, why: str) -> None:
        """
        Echo whatever was read but not yet sent back, then close: the end of
        input, and a server shutting down, both lose nothing accepted.
        """
        self.close(why)

    def readConnectionLost(self) -> None:
        """
        The client shut its sending side: nothing more will arrive, so close
        once every echo has been sent.
        """
        self.finish("client finished sending")

    def writeConnectionLost(self) -> None:
        self.close("write side closed")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.stats.connectionsOpen -= 1
        log.info(
            "close {peer} ({reason}): {messages} messages, {bytesIn} bytes in, "
            "{bytesOut} bytes out, {duration:.3f}s",
            peer=self.peer,
            reason=self.closeWhy or _closeReason(reason),
            messages=self.messages,
            bytesIn=self.bytesIn,
            bytesOut=self.bytesOut,
            duration=time.monotonic() - self.started,
            nbecho_event="close",
        )


class LineEchoProtocol(EchoProtocol):
    """
    Echo lines ending in LF (CRLF too): all complete lines of one chunk go
    back in one write, terminators included; a partial line waits for the
    rest, up to C{maxLineLength} bytes.
    """

    delimiter = b"\n"
    _buffer = b""

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.received(data)
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        end = data.rfind(b"\n") + 1
        if end:
            complete = data[:end]
            if not self._echoLines(complete):
                return
            data = data[end:]
        if data:
            if _bodyLength(data) > self.settings.maxLineLength:
                self._lineTooLong(len(data))
                return
            self._buffer = data

    def _echoLines(self, complete: bytes) -> bool:
        """
        Echo the complete lines in C{complete}; return C{False} when one of
        them ended the connection.
        """
        settings = self.settings
        exitWord = settings.exitWord
        # A too-long line is at least maxLineLength + 1 bytes and its LF.
        mayEnd = (exitWord and exitWord in complete) or (
            len(complete) > settings.maxLineLength + 1
        )
        if not mayEnd and settings.quiet:
            # No line can end the connection and none is logged: skip the split.
            self.counted(complete.count(b"\n"))
            self.echo(complete)
            return True
        lines = complete.split(b"\n")
        lines.pop()
        if not mayEnd and b"\r" not in complete:
            # Every line is a plain message: log them without a loop here.
            self.messagesRead(lines)
            self.echo(complete)
            return True
        bodies: list[bytes] = []
        for line in lines:
            body = line[:-1] if line.endswith(b"\r") else line
            if len(body) > settings.maxLineLength:
                self._echoFirst(lines, bodies)
                self._lineTooLong(len(body))
                return False
            bodies.append(body)
            if exitWord and body == exitWord:
                self._echoFirst(lines, bodies)
                self.close("exit word")
                return False
        self.messagesRead(bodies)
        self.echo(complete)
        return True

    def _echoFirst(self, lines: list[bytes], bodies: list[bytes]) -> None:
        """
        Echo the lines before the one that ends the connection.
        """
        if bodies:
            self.messagesRead(bodies)
            self.echo(b"".join(line + b"\n" for line in lines[: len(bodies)]))

    def _lineTooLong(self, length: int) -> None:
        limit = self.settings.maxLineLength
        log.warn(
            "Line too long from {peer}: {length} bytes, limit {limit}",
            peer=self.peer,
            length=length,
            limit=limit,
            nbecho_event="line_too_long",
        )
        self._buffer = b""
        self.transport.write(b"error: line too long (limit %d bytes)\n" % (limit,))
        self.close("line too long")

    def finish(self, why: str) -> None:
        """
        A partial line left when the client stops sending (or the server
        stops) is its last message: echo it before closing, so nothing the
        client sent is lost.
        """
        if self._buffer and not self.closing:
            rest, self._buffer = self._buffer, b""
            self.messagesRead([_withoutTerminator(rest)])
            self.echo(rest)
        super().finish(why)


def _withoutTerminator(message: bytes) -> bytes:
    """
    C{message} without one trailing LF or CRLF.
    """
    if message.endswith(b"\n"):
        message = message[:-1]
    if message.endswith(b"\r"):
        message = message[:-1]
    return message


def _bodyLength(partial: bytes) -> int:
    """
    The length of a partial line without a CR that may be the start of CRLF.
    """
    return len(partial) - 1 if partial.endswith(b"\r") else len(partial)
