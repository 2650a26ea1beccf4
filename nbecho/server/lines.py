"""
Line framing: a message is a line ending in LF or CRLF.

Telnet, nc and the bundled client all send lines; a line may arrive in
pieces or many to one read, so L{LineEchoProtocol} buffers a partial line
(up to C{--max-line-length}) and echoes complete lines, terminators
included, in one write per read.
"""

from __future__ import annotations

from twisted.logger import Logger

from nbecho.server.protocol import EchoProtocol, withoutTerminator

log = Logger(namespace="nbecho")


class LineEchoProtocol(EchoProtocol):
    """
    Echo lines ending in LF (CRLF too): all complete lines of one chunk go
    back in one write, terminators included; a partial line waits for the
    rest, up to C{maxLineLength} bytes.

    A partial line is kept in a C{bytearray} that each read extends in
    place (amortised: CPython over-allocates it), so a read costs what its
    own bytes cost however much of the line is already buffered; the line
    is copied out once, when its LF comes, and only the new bytes are
    searched for that LF.  A list of the reads, joined at the end, would
    cost as little CPU but some 40 bytes of memory per read: a client
    trickling a byte a read would make the server hold 40 times the line.

    @ivar _partial: the partial line, if any.
    """

    _partial: bytearray | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self.lastInput = self.seconds()
        self.bytesIn += len(data)
        end = data.rfind(b"\n") + 1
        partial = self._partial
        if partial is not None:
            if not end:
                self._hold(data)
                return
            partial += memoryview(data)[:end]
            self._partial = None
            if not self._echoLines(bytes(partial)):
                return
        elif end:
            if not self._echoLines(data[:end] if end < len(data) else data):
                return
        if end < len(data):
            self._hold(data[end:] if end else data)

    def _hold(self, data: bytes) -> None:
        """
        Keep C{data} as (more of) the partial line, unless that makes the
        line too long.
        """
        if not data:
            return
        partial = self._partial
        length = len(data) if partial is None else len(partial) + len(data)
        # A trailing CR may be the start of a CRLF: it does not count.
        if length - (data[-1] == 0x0D) > self.settings.maxLineLength:
            self._lineTooLong(length)
            return
        if partial is None:
            self._partial = bytearray(data)
        else:
            partial += data

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
        if self.logged:
            log.warn(
                "Line too long from {peer}: {length} bytes, limit {limit}",
                peer=self.peer,
                length=length,
                limit=limit,
                nbecho_event="line_too_long",
            )
        self._partial = None
        # Counted as sent: the close line says what the client received.
        self.echo(b"error: line too long (limit %d bytes)\n" % (limit,))
        self.close("line too long")

    def finish(self, why: str) -> None:
        """
        A partial line left when the client stops sending (or the server
        stops) is its last message: echo it before closing, so nothing the
        client sent is lost.
        """
        if self._partial is not None and not self.closing:
            rest = bytes(self._partial)
            self._partial = None
            self.messagesRead([withoutTerminator(rest)])
            self.echo(rest)
        super().finish(why)
