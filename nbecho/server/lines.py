"""
Line framing: a message is a line ending in LF or CRLF.

Telnet, nc and the bundled client all send lines; a line may arrive in
pieces or many to one read, so L{LineEchoProtocol} buffers a partial line
(up to C{--max-line-length}) and echoes complete lines, terminators
included, in one write per read.
"""

from __future__ import annotations

from twisted.logger import Logger

from nbecho.logs.escape import LOG_LIMIT
from nbecho.server.protocol import EchoProtocol, withoutTerminator

log = Logger(namespace="nbecho")


class LineEchoProtocol(EchoProtocol):
    """
    Echo lines ending in LF (CRLF too): all complete lines of one chunk go
    back in one write, terminators included; a partial line waits for the
    rest, up to C{maxLineLength} bytes.

    What a read costs does not depend on what its lines say: only a line
    exactly as long as the exit word (and its terminator) is compared with
    it, and no chunk is ever searched for the word, so an exit word inside
    a longer line is data.  A line's bytes are copied at most twice on
    their way back: the tail of a read that ends inside a line is kept, and
    the line is joined once when its LF comes.  Complete lines of one read
    go back as a view of that read; a long line is logged from a view too.

    The first piece of a partial line is kept as it was read; a second
    piece turns it into a C{bytearray} that each read extends in place
    (amortised: CPython over-allocates it), so a read costs what its own
    bytes cost however much of the line is already buffered.  A list of
    the reads, joined at the end, would cost as little CPU but some 40
    bytes of memory per read: a client trickling a byte a read would make
    the server hold 40 times the line.

    @ivar _partial: the partial line, if any.
    @cvar splitAbove: a chunk with more lines than this, of fewer than
        C{shortLine} bytes on average, is split at C speed (for short lines
        one copy is cheaper than a Python loop); any other chunk is walked
        from LF to LF without copying its lines.
    """

    _partial: bytes | bytearray | None = None
    splitAbove = 4
    shortLine = 256

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
            self._partial = None
            # The one copy of the line: partial and the read's lines joined.
            complete = b"".join((partial, memoryview(data)[:end]))
            if not self._echoLines(complete, len(complete)):
                return
        elif end and not self._echoLines(data, end):
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
            self._partial = data
        elif isinstance(partial, bytearray):
            partial += data
        else:
            grown = self._partial = bytearray(partial)
            grown += data

    def _echoLines(self, data: bytes, end: int) -> bool:
        """
        Echo the complete lines C{data[:end]}; return C{False} when one of
        them ended the connection.
        """
        count = data.count(b"\n", 0, end)
        if count > self.splitAbove and end < count * self.shortLine:
            return self._echoSplit(data if end == len(data) else data[:end], count)
        settings = self.settings
        exitWord = settings.exitWord
        exitLength = len(exitWord) if exitWord else -1
        limit = settings.maxLineLength
        quiet = settings.quiet
        bodies: list[bytes | memoryview] = []
        start = 0
        while start < end:
            stop = data.index(b"\n", start, end)
            length = stop - start
            if length and data[stop - 1] == 0x0D:
                length -= 1
            if length > limit:
                self._echoBefore(data, start, bodies)
                self._lineTooLong(length)
                return False
            if length == exitLength and data.startswith(exitWord, start):
                bodies.append(exitWord)
                self._echoBefore(data, stop + 1, bodies)
                self.close("exit word")
                return False
            if not quiet:
                bodies.append(
                    data[start : start + length]
                    if length <= LOG_LIMIT
                    else memoryview(data)[start : start + length]
                )
            start = stop + 1
        if quiet:
            self.counted(count)
        else:
            self.messagesRead(bodies)
        self.echoPrefix(data, end)
        return True

    def _echoBefore(
        self, data: bytes, end: int, bodies: list[bytes | memoryview]
    ) -> None:
        """
        Echo C{data[:end]}, the lines before the one that ends the
        connection (the exit word's included), and count or log them.
        """
        if not end:
            return
        if self.settings.quiet:
            self.counted(data.count(b"\n", 0, end))
        else:
            self.messagesRead(bodies)
        self.echoPrefix(data, end)

    def _echoSplit(self, complete: bytes, count: int) -> bool:
        """
        Echo the C{count} complete lines of C{complete}, many short ones.
        """
        settings = self.settings
        exitWord = settings.exitWord
        lines = complete.split(b"\n")
        lines.pop()
        # Only a line as long as the exit word (a CR more for CRLF) can be it.
        lengths = set(map(len, lines))
        mayEnd = max(lengths) > settings.maxLineLength or (
            exitWord and not lengths.isdisjoint((len(exitWord), len(exitWord) + 1))
        )
        if not mayEnd:
            if settings.quiet:
                self.counted(count)
            elif b"\r" not in complete:
                # Every line is a plain message: log them without a loop.
                self.messagesRead(lines)
            else:
                self.messagesRead([withoutTerminator(line) for line in lines])
            self.echo(complete)
            return True
        return self._echoLinesSlowly(complete, lines)

    def _echoLinesSlowly(self, complete: bytes, lines: list[bytes]) -> bool:
        """
        Echo C{lines} up to the first that ends the connection, if any.
        """
        settings = self.settings
        exitWord = settings.exitWord
        bodies: list[bytes | memoryview] = []
        end = 0
        for line in lines:
            body = line[:-1] if line.endswith(b"\r") else line
            if len(body) > settings.maxLineLength:
                self._echoBefore(complete, end, bodies)
                self._lineTooLong(len(body))
                return False
            bodies.append(body)
            end += len(line) + 1
            if exitWord and body == exitWord:
                self._echoBefore(complete, end, bodies)
                self.close("exit word")
                return False
        self.messagesRead(bodies)
        self.echo(complete)
        return True

    def _lineTooLong(self, length: int) -> None:
        limit = self.settings.maxLineLength
        log.warn(
            "Line too long from {peer}: {length} bytes, limit {limit}",
            peer=self.peer,
            length=length,
            limit=limit,
            nbecho_event="line_too_long",
        )
        self._partial = None
        # Counted as sent: the close line says what the client received.
        self.echo(
            b"error: line too long (limit %d bytes; raise it with "
            b"--max-line-length)\n" % (limit,)
        )
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
