"""
Hypothesis properties of the echo protocols: whatever a client sends, cut
into chunks wherever the network pleases, comes back as the framing says.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server.factory import EchoFactory
from nbecho.server.protocol import EchoProtocol
from nbecho.settings import EchoSettings
from nbecho.test._helpers import RecordingTransport, connect

# Few examples each, no example database, no deadline: the whole unit suite
# stays fast and nothing depends on how busy the machine is.
_examples = settings(max_examples=150, deadline=None, database=None)

# Lines that make framing interesting: empty, near the line limits, with a
# stray CR, the exit word (alone or inside a longer line), bytes that are
# not UTF-8, ended by LF, CRLF or nothing at all; or any bytes.
_bodies = st.one_of(
    st.integers(0, 14).map(lambda length: b"x" * length),
    st.lists(
        st.sampled_from([b"x", b"\r", b"\x00", b"\xff", b"\x1b["]), max_size=8
    ).map(b"".join),
    # The exit word, and lines holding it that are not it.
    st.sampled_from([b"exit", b"xexit", b"exitx", b"exitexit", b"exi"]),
)
_lines = st.tuples(_bodies, st.sampled_from([b"\n", b"\r\n", b""]))
_payloads = st.one_of(
    st.binary(max_size=300),
    st.lists(_lines, max_size=30).map(lambda lines: b"".join(map(b"".join, lines))),
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """
    Some bytes and the non-empty chunks they arrive in, cut anywhere, often
    right after an LF, or after every LF (as when a client writes one line
    at a time).
    """
    data = draw(_payloads)
    cuts: list[int] = []
    if len(data) > 1:
        anywhere = st.integers(1, len(data) - 1)
        afterLF = [n + 1 for n in range(len(data) - 1) if data[n] == 0x0A]
        if afterLF:
            anywhere = st.one_of(st.sampled_from(afterLF), anywhere)
        chosen = draw(st.sets(anywhere, max_size=20))
        if draw(st.booleans()):
            chosen.update(afterLF)
        cuts = sorted(chosen)
    bounds = [0, *cuts, len(data)]
    chunks = [data[start:end] for start, end in zip(bounds, bounds[1:])]
    return data, [chunk for chunk in chunks if chunk]


def feed(
    echoSettings: EchoSettings, chunks: list[bytes]
) -> tuple[EchoProtocol, RecordingTransport]:
    """
    Deliver C{chunks} as separate reads, then half-close, as a client that
    sends everything and shuts its sending side would.
    """
    proto, transport = connect(echoSettings)
    for chunk in chunks:
        proto.dataReceived(chunk)
    proto.readConnectionLost()
    return proto, transport


def modelLineEcho(data: bytes, echoSettings: EchoSettings) -> tuple[bytes, str]:
    """
    What line framing sends back for C{data} followed by a half-close, and
    why the connection closes, worked out one line at a time.
    """
    limit = echoSettings.maxLineLength
    error = (
        b"error: line too long (limit %d bytes; raise it with --max-line-length)\n"
        % (limit,)
    )
    out = b""
    *lines, partial = data.split(b"\n")
    for line in lines:
        body = line[:-1] if line.endswith(b"\r") else line
        if len(body) > limit:
            return out + error, "line too long"
        out += line + b"\n"
        if echoSettings.exitWord and body == echoSettings.exitWord:
            return out, "exit word"
    # A trailing CR may still become part of a CRLF: it does not count.
    if len(partial) - partial.endswith(b"\r") > limit:
        return out + error, "line too long"
    return out + partial, "client finished sending"


class IdentityTests(SynchronousTestCase):
    """
    With the exit word off and a line limit above the data's length, every
    byte comes back, in order, whatever the chunking.
    """

    @_examples
    @given(chunked(), st.booleans())
    def test_lineFraming(self, sent: tuple[bytes, list[bytes]], quiet: bool) -> None:
        """
        Line framing sends back exactly the bytes received, whole lines per
        write, the trailing partial line last.
        """
        data, chunks = sent
        echoSettings = EchoSettings(
            exitWord=b"", quiet=quiet, maxLineLength=len(data) + 1
        )
        proto, transport = feed(echoSettings, chunks)
        self.assertEqual(transport.value(), data)
        for write in transport.writes[:-1]:
            self.assertTrue(write.endswith(b"\n"), write)
        self.assertEqual(proto.bytesIn, len(data))
        self.assertEqual(proto.bytesOut, len(data))
        self.assertEqual(proto.closeWhy, "client finished sending")

    @_examples
    @given(chunked(), st.booleans())
    def test_rawFraming(self, sent: tuple[bytes, list[bytes]], quiet: bool) -> None:
        """
        Raw framing sends back each chunk as it came, one write each.
        """
        data, chunks = sent
        echoSettings = EchoSettings(framing="raw", exitWord=b"", quiet=quiet)
        proto, transport = feed(echoSettings, chunks)
        self.assertEqual(transport.value(), data)
        self.assertEqual(transport.writes, chunks)
        self.assertEqual(proto.messages, len(chunks))

    @_examples
    @given(chunked(), st.booleans())
    def test_lineCount(self, sent: tuple[bytes, list[bytes]], quiet: bool) -> None:
        """
        Line framing counts one message per LF, plus one for a trailing
        partial line echoed at half-close.
        """
        data, chunks = sent
        echoSettings = EchoSettings(
            exitWord=b"", quiet=quiet, maxLineLength=len(data) + 1
        )
        proto, _ = feed(echoSettings, chunks)
        partial = 1 if data and not data.endswith(b"\n") else 0
        self.assertEqual(proto.messages, data.count(b"\n") + partial)
        factory = proto.factory
        assert isinstance(factory, EchoFactory)
        self.assertEqual(factory.stats.messages, proto.messages)


class ModelTests(SynchronousTestCase):
    """
    With the exit word on and small line limits, line framing behaves like a
    one-line-at-a-time model, whatever the chunking and quiet or not.
    """

    @settings(max_examples=600, deadline=None, database=None)
    @given(chunked(), st.data(), st.booleans())
    def test_lineFramingModel(
        self, sent: tuple[bytes, list[bytes]], draw: st.DataObject, quiet: bool
    ) -> None:
        """
        What comes back and why the connection closes match the model: lines
        up to the first too-long line (then the error line) or the exit word.
        """
        data, chunks = sent
        # Limits right at the length of some line find off-by-one errors.
        near = {
            length + delta
            for length in map(len, data.split(b"\n"))
            for delta in (-2, -1, 0, 1)
            if length + delta >= 1
        }
        limits = st.integers(1, 12)
        if near:
            limits = st.one_of(st.sampled_from(sorted(near)), limits)
        limit = draw.draw(limits, label="maxLineLength")
        echoSettings = EchoSettings(quiet=quiet, maxLineLength=limit)
        proto, transport = feed(echoSettings, chunks)
        self.assertEqual(
            (transport.value(), proto.closeWhy), modelLineEcho(data, echoSettings)
        )
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producerAtClose)
