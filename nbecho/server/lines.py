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
    a longer line is data.  Complete lines of one read go back as a view
    of that read, uncopied; a long line is logged from a view too.  A line
    that spans reads is copied twice (its first piece kept, its last piece
    sliced off the read, the two concatenated once its LF comes), three
    times for what came between.

    The first piece of a partial line is kept as it was read; a second
    piece turns it into a C{bytearray} that each read extends in place
    (amortised: CPython over-allocates it), so a read costs what its own
    bytes cost however much of the line is already buffered.  A list of
    the reads, joined at the end, would cost as little CPU but some 40
    bytes of memory per read: a client trickling a byte a read would make
    the server hold 40 times the line.

    @ivar _partial: the partial line, if any.
    @cvar splitAbove: once this many lines of a chunk, of fewer than
        C{shortLine} bytes on average, have been walked from LF to LF, the
        rest is split at C speed (for short lines one copy is cheaper than
        a Python loop); long lines are walked without copying them.
    """

    _partial: bytes | bytearray | None = None
    splitAbove = 1
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
            # The line's copy: partial and the read's lines, concatenated.
            # Not joined: on PyPy a find in the result of a join (or in a
            # bytearray) costs five times (fifty times) a find in bytes.
            if not isinstance(partial, bytes):
                partial = bytes(partial)
            complete = partial + (data if end == len(data) else data[:end])
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

        Lines are walked from LF to LF (one C{find} each, no copy); after
        C{splitAbove} short lines the rest of the chunk is split at C speed
        instead.  Nothing counts the LFs first: a count is a scan of its
        own, as costly as the search for them.
        """
        settings = self.settings
        exitWord = settings.exitWord
        exitLength = len(exitWord) if exitWord else -1
        limit = settings.maxLineLength
        quiet = settings.quiet
        bodies: list[bytes | memoryview] = []
        walked = 0
        start = 0
        while start < end:
            if walked == self.splitAbove and start < walked * self.shortLine:
                return self._echoSplit(data, start, end, bodies, walked)
            # data[end - 1] is an LF, so no bound is needed; and on PyPy a
            # find with bounds (or index) costs five times a plain find.
            stop = data.find(b"\n", start) if start else data.find(b"\n")
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
            walked += 1
            start = stop + 1
        if quiet:
            self.counted(walked)
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

    def _echoSplit(
        self,
        data: bytes,
        start: int,
        end: int,
        bodies: list[bytes | memoryview],
        walked: int,
    ) -> bool:
        """
        Echo C{data[:end]} of which the lines from C{start} on are many
        short ones: split them at C speed.  C{walked} lines (C{bodies})
        came before.
        """
        settings = self.settings
        exitWord = settings.exitWord
        rest = data[start:end]
        lines = rest.split(b"\n")
        lines.pop()
        # Only a line as long as the exit word (a CR more for CRLF) can be it.
        lengths = set(map(len, lines))
        mayEnd = max(lengths) > settings.maxLineLength or (
            exitWord and not lengths.isdisjoint((len(exitWord), len(exitWord) + 1))
        )
        if mayEnd:
            return self._echoLinesSlowly(data, start, lines, bodies, walked)
        if settings.quiet:
            self.counted(walked + len(lines))
        elif b"\r" not in rest:
            # Every line is a plain message: log them without a loop.
            self.messagesRead(bodies + lines)  # type: ignore[operator]
        else:
            self.messagesRead(bodies + [withoutTerminator(line) for line in lines])
        self.echoPrefix(data, end)
        return True

    def _echoLinesSlowly(
        self,
        data: bytes,
        start: int,
        lines: list[bytes],
        bodies: list[bytes | memoryview],
        walked: int,
    ) -> bool:
        """
        Echo C{lines}, which start at C{start} of C{data}, up to the first
        that ends the connection, if any.
        """
        settings = self.settings
        exitWord = settings.exitWord
        end = start
        for line in lines:
            body = line[:-1] if line.endswith(b"\r") else line
            if len(body) > settings.maxLineLength:
                self._echoBefore(data, end, bodies)
                self._lineTooLong(len(body))
                return False
            bodies.append(body)
            end += len(line) + 1
            if exitWord and body == exitWord:
                self._echoBefore(data, end, bodies)
                self.close("exit word")
                return False
        if settings.quiet:
            self.counted(walked + len(lines))
        else:
            self.messagesRead(bodies)
        self.echoPrefix(data, end)
        return True

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
