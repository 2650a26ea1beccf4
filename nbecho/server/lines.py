"""
Line framing: a message is a line ending in LF or CRLF.

Telnet, nc and the bundled client all send lines; a line may arrive in
pieces or many to one read, so L{LineEchoProtocol} buffers a partial line
(up to C{--max-line-length}) and echoes complete lines, terminators
included, in one write per read.
"""

from __future__ import annotations

import sys

from twisted.logger import Logger

from nbecho.logs.escape import LOG_LIMIT
from nbecho.server._libc import LONG, findLF, rfindLF
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
    of that read, uncopied; a long line is logged from a view too.

    A line that spans reads is not joined either: reads of C{pieceSize}
    (4 KiB) and more are held as they came, and when the LF comes they go
    back with the read in one gathered send (L{echoPieces}).  Smaller
    reads are gathered in one C{bytearray} that grows in place, so a
    client trickling a byte a read does not make the server hold some 40
    bytes of list and object per byte.  A long quiet read on plain TCP
    is echoed from the shared read buffer itself (L{readView}).  On PyPy
    every large copy is a large allocation, which its garbage collector
    pays for several times over (docs/performance.rst, section PyPy).

    @ivar _pieces: the partial line's pieces, if any.
    @ivar _held: the partial line's length.
    @ivar _head: the pieces of the line the read being echoed completes.
    @cvar pieceSize: reads this long and longer are held as pieces of their
        own.
    @cvar splitAbove: once this many lines of a chunk, of fewer than
        C{shortLine} bytes on average, have been walked from LF to LF, the
        rest is split at C speed (for short lines one copy is cheaper than
        a Python loop); long lines are walked without copying them.  PyPy
        never splits: its JIT makes the walk half the cost of the split
        (32 lines of 64 bytes a read: 0.03 µs a line against 0.09).
    """

    _pieces: list[bytes | bytearray | memoryview] | None = None
    _held = 0
    _head: list[bytes | bytearray | memoryview] | None = None
    splitAbove = 1 if sys.implementation.name != "pypy" else sys.maxsize
    shortLine = 256
    pieceSize = 4096

    def dataReceived(self, data: bytes) -> None:
        if not self.noteRead(data):
            return
        if len(data) > LONG and rfindLF is not None:
            end = rfindLF(data) + 1
        else:
            end = data.rfind(b"\n") + 1
        if self._pieces is not None:
            if not end:
                self._hold(data)
                return
            if not self._echoSpanned(data, end):
                return
        elif end and not self._echoLines(data, end):
            return
        if end < len(data):
            # A view: the line's first piece is not copied out of the read.
            self._hold(memoryview(data)[end:] if end else data)

    def readView(self, length: int) -> bool:
        """
        Echo the complete lines of a long read from the read buffer (after
        the held partial line, if this read completes it) and keep a copy
        of its partial line; or return C{False} untouched, for
        C{dataReceived} to handle the read: a line may be the exit word or
        is too long, or the lines are short and split faster than walked
        (C{splitAbove}).  The lines are walked to decide before anything
        is counted or sent.
        """
        buffer = self._buffer
        assert buffer is not None
        data, find = buffer.data, buffer.find
        exitWord = self.settings.exitWord
        exitLength = len(exitWord) if exitWord else -1
        limit = self.settings.maxLineLength
        end = buffer.rfind(length) + 1
        start = walked = before = 0
        pieces = self._pieces
        if pieces is not None and end:
            # The held line ends at this read's first LF.
            stop = find(0, end)
            before = self._held
            line = before + stop - ((data[stop - 1] if stop else pieces[-1][-1]) == 13)
            if line > limit or line == exitLength:
                return False
            start, walked = stop + 1, 1
        while start < end:
            if walked == self.splitAbove and start + before < walked * self.shortLine:
                return False
            stop = find(start, end)
            line = stop - start - (stop > start and data[stop - 1] == 13)
            if line > limit or line == exitLength:
                return False
            walked += 1
            start = stop + 1
        view = memoryview(data)[:length]
        if not self.noteRead(view):
            return True
        if end:
            self.counted(walked)
            if pieces is None:
                self.echoPrefix(view, end)
            else:
                self._pieces, self._held = None, 0
                self.echoPieces(pieces, view, end)
                buffer.release(pieces)
        if end < length:
            self._hold(buffer.keep(view[end:]))
        return True

    def _hold(self, data: bytes | memoryview) -> None:
        """
        Keep C{data} as (more of) the partial line, unless that makes the
        line too long.
        """
        if not data:
            return
        length = self._held + len(data)
        # A trailing CR may be the start of a CRLF: it does not count.
        if length - (data[-1] == 0x0D) > self.settings.maxLineLength:
            self._lineTooLong(length)
            return
        pieces = self._pieces
        if pieces is None:
            self._pieces = [data]
        elif len(data) >= self.pieceSize:
            pieces.append(data)
        else:
            last = pieces[-1]
            if isinstance(last, bytearray):
                last += data
            else:
                pieces.append(bytearray(data))
        self._held = length

    def _echoSpanned(self, data: bytes, end: int) -> bool:
        """
        Echo the held partial line, which C{data}'s first LF completes, and
        the complete lines after it up to C{end}; return C{False} when one
        of them ended the connection.

        The held pieces are not joined to echo them (L{echoPieces}), nor to
        check the line: its length is their sum, and only a line as long
        as the exit word is compared with it (joined, it is that short).
        """
        pieces = self._pieces
        assert pieces is not None
        held = self._held
        self._pieces = None
        self._held = 0
        settings = self.settings
        exitWord = settings.exitWord
        if findLF is not None and end > LONG:
            stop = findLF(data, 0)
        else:
            stop = data.find(b"\n")
        length = held + stop
        if (data[stop - 1] if stop else pieces[-1][-1]) == 0x0D:
            length -= 1
        if length > settings.maxLineLength:
            self._lineTooLong(length)
            return False
        bodies: list[bytes | memoryview] = []
        if not settings.quiet or (exitWord and length == len(exitWord)):
            body = b"".join([*pieces, data[:stop]])[:length]
            if exitWord and body == exitWord:
                if settings.quiet:
                    self.counted(1)
                else:
                    self.messagesRead([body])
                self.echoPieces(pieces, data, stop + 1)
                self.close("exit word")
                return False
            bodies.append(body)
        self._head = pieces
        return self._echoLines(data, end, stop + 1, bodies, held)

    def _echoLines(
        self,
        data: bytes,
        end: int,
        start: int = 0,
        bodies: list[bytes | memoryview] | None = None,
        before: int = 0,
    ) -> bool:
        """
        Echo the complete lines C{data[start:end]}; return C{False} when one
        of them ended the connection.  C{bodies} are lines that came before
        C{start} (a line completed by this read: it counts as walked, and
        C{before} is its length in earlier reads), and L{_head} what to echo
        before C{data}.

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
        walked = 0 if start == 0 else 1
        if bodies is None:
            bodies = []
        splitAbove = self.splitAbove
        shortLine = self.shortLine
        scan = findLF
        while start < end:
            if walked == splitAbove and start + before < walked * shortLine:
                return self._echoSplit(data, start, end, bodies, walked)
            # data[end - 1] is an LF, so no bound is needed; and on PyPy a
            # find with bounds (or index) costs five times a plain find.
            if scan is not None and end - start > LONG:
                stop = scan(data, start)
            else:
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
        self._echoOut(data, end)
        return True

    def _echoOut(self, data: bytes, end: int) -> None:
        """
        Echo C{data[:end]}, after the pieces of the line it completed, if
        any (L{_head}).
        """
        head = self._head
        if head is None:
            self.echoPrefix(data, end)
        else:
            self._head = None
            self.echoPieces(head, data, end)

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
        self._echoOut(data, end)

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
        self._echoOut(data, end)
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
        self._echoOut(data, end)
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
        self._pieces = None
        self._held = 0
        self._head = None
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
        if self._pieces is not None and not self.closing:
            rest = b"".join(self._pieces)
            self._pieces = None
            self._held = 0
            self.messagesRead([withoutTerminator(rest)])
            self.echo(rest)
        super().finish(why)
