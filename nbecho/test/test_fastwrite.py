"""
Tests for L{nbecho.server._fastwrite}: the direct send on Twisted's TCP transport,
and the fallback to the public C{write} everywhere else.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IReactorFDSet
from twisted.internet.protocol import (
    ClientFactory,
    Protocol,
    ServerFactory,
)
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.trial.unittest import SkipTest, TestCase

from nbecho.server import _fastwrite, _libc
from nbecho.server._fastwrite import fastSequenceWriter, fastWriter
from nbecho.server.factory import EchoFactory
from nbecho.settings import EchoSettings
from nbecho.test._helpers import Collector, loopbackPair

reactor: Any = _reactor


class FastWriterTCPTests(TestCase):
    """
    On a real TCP connection the write goes out at once, and every guarantee
    of C{transport.write} still holds.
    """

    def setUp(self) -> None:
        # The fast path itself, even on a Twisted that sends at once.
        self.patch(_fastwrite, "twistedWritesAtOnce", lambda: False)

    async def connect(self) -> tuple[Any, Collector]:
        return await loopbackPair(self, reactor)

    async def test_sendsAtOnce(self) -> None:
        """
        With nothing buffered, the bytes leave before write returns: the
        reactor is never asked to watch the socket for writability.
        """
        transport, client = await self.connect()
        write = fastWriter(transport)
        self.assertIsNot(write, transport.write)
        write(b"hello\n")
        self.assertEqual(transport._tempDataLen, 0)
        self.assertNotIn(transport, IReactorFDSet(reactor).getWriters())
        await client.waitFor(6)
        self.assertEqual(bytes(client.received), b"hello\n")

    async def test_queuedFirst(self) -> None:
        """
        Bytes already queued by C{transport.write} go out before a later fast
        write: the direct send only happens with Twisted's buffer empty.
        """
        transport, client = await self.connect()
        write = fastWriter(transport)
        transport.write(b"queued\n")
        write(b"fast\n")
        await client.waitFor(12)
        self.assertEqual(bytes(client.received), b"queued\nfast\n")

    async def test_orderAndBackpressure(self) -> None:
        """
        When the client does not read, the rest is queued in Twisted's buffer,
        later writes queue behind it in order, the transport (its own
        producer) is paused over the high-water mark, and everything arrives
        once the client reads.
        """
        transport, client = await self.connect()
        transport.registerProducer(transport, True)
        client.transport.pauseProducing()  # type: ignore[union-attr]
        write = fastWriter(transport)
        chunks = [bytes([65 + i % 26]) * 65536 for i in range(64)]
        for chunk in chunks:
            write(chunk)
        self.assertTrue(transport._tempDataLen or transport.dataBuffer)
        self.assertTrue(transport.producerPaused)
        client.transport.resumeProducing()  # type: ignore[union-attr]
        await client.waitFor(65536 * 64)
        self.assertEqual(bytes(client.received), b"".join(chunks))

    async def test_viewsWhenBackedUp(self) -> None:
        """
        Memoryviews (the echo of a read's complete lines) may be written
        too: when the socket takes only part of one, or something is queued
        before it, the rest goes to Twisted's write, which takes only bytes,
        as bytes, in order.
        """
        transport, client = await self.connect()
        client.transport.pauseProducing()  # type: ignore[union-attr]
        write = fastWriter(transport)
        chunks = [bytes([65 + i % 26]) * 65536 + b"tail" for i in range(64)]
        for chunk in chunks:
            write(memoryview(chunk)[:65536])
        self.assertTrue(transport._tempDataLen or transport.dataBuffer)
        client.transport.resumeProducing()  # type: ignore[union-attr]
        await client.waitFor(65536 * 64)
        self.assertEqual(
            bytes(client.received), b"".join(chunk[:65536] for chunk in chunks)
        )

    async def test_loseConnectionFlushes(self) -> None:
        """
        Bytes written just before C{loseConnection}, queued or not, all reach
        the client before the connection closes; writes after it are queued
        through Twisted, never sent around the closing logic.
        """
        transport, client = await self.connect()
        write = fastWriter(transport)
        big = b"x" * (4 * 1024 * 1024)
        write(b"first\n")
        write(big)
        transport.loseConnection()
        write(b"last\n")
        received = await client.done
        self.assertEqual(received, b"first\n" + big + b"last\n")

    async def test_halfClose(self) -> None:
        """
        After the server half-closes, the fast path no longer sends: Twisted
        drops writes to a closed write side, as its public write does.
        """
        transport, client = await self.connect()
        write = fastWriter(transport)
        write(b"before\n")
        transport.loseWriteConnection()
        write(b"after\n")
        await client.waitFor(7)
        self.assertEqual(bytes(client.received), b"before\n")

    async def test_wrapperKeepsItsWrite(self) -> None:
        """
        A wrapper between protocol and transport (the PROXY protocol's) is a
        transport the fast path does not know: its own C{write} is used.
        """
        transport, _client = await self.connect()
        wrapper = ProtocolWrapper(WrappingFactory(ServerFactory()), Protocol())
        wrapper.transport = transport
        self.assertEqual(fastWriter(wrapper), wrapper.write)

    async def test_tlsFlagFallsBack(self) -> None:
        """
        Once TLS is started on a TCP transport, bytes must go through the TLS
        layer: the fast path defers to C{transport.write}.
        """
        transport, _client = await self.connect()
        calls: list[bytes] = []
        transport.TLS = True
        self.patch(transport, "write", calls.append)
        write = fastWriter(transport)
        self.assertEqual(write, calls.append)
        transport.TLS = False
        write = fastWriter(transport)
        transport.TLS = True
        write(b"secret\n")
        self.assertEqual(calls, [b"secret\n"])


class SequenceWriterTests(TestCase):
    """
    The gathering writer sends a list of buffers as their concatenation,
    with every guarantee of the single-buffer one.
    """

    def setUp(self) -> None:
        self.patch(_fastwrite, "twistedWritesAtOnce", lambda: False)

    async def test_gathersAtOnce(self) -> None:
        """
        Bytes, bytearrays and views leave in order before the write
        returns, nothing queued in Twisted.
        """
        transport, client = await loopbackPair(self, reactor)
        writeAll = fastSequenceWriter(transport)
        assert writeAll is not None
        writeAll([b"one ", bytearray(b"two "), memoryview(b"three\nxx")[:6]])
        self.assertEqual(transport._tempDataLen, 0)
        self.assertFalse(transport.dataBuffer)
        await client.waitFor(14)
        self.assertEqual(bytes(client.received), b"one two three\n")

    async def test_orderWhenBackedUp(self) -> None:
        """
        When the client does not read, what the kernel did not take (part
        of a buffer, whole buffers, more than one C{sendmsg} takes) is
        queued in Twisted, later writes behind it, and everything arrives
        in order once the client reads.
        """
        transport, client = await loopbackPair(self, reactor)
        client.transport.pauseProducing()  # type: ignore[union-attr]
        writeAll = fastSequenceWriter(transport)
        write = fastWriter(transport)
        assert writeAll is not None
        sent = []
        for i in range(24):
            pieces: list[bytes | bytearray | memoryview] = [
                bytes([65 + (i + j) % 26]) * 4099 for j in range(100)
            ]
            sent.append(b"".join(pieces))
            writeAll(pieces)
        many = [bytes([48 + j % 10]) for j in range(1500)]
        writeAll(list(many))
        write(b"end\n")
        self.assertTrue(transport._tempDataLen or transport.dataBuffer)
        client.transport.resumeProducing()  # type: ignore[union-attr]
        expected = b"".join(sent) + b"".join(many) + b"end\n"
        await client.waitFor(len(expected))
        self.assertEqual(bytes(client.received), expected)

    async def test_overOneBatch(self) -> None:
        """
        More buffers than one C{sendmsg} takes go out in several, in order.
        """
        transport, client = await loopbackPair(self, reactor)
        writeAll = fastSequenceWriter(transport)
        assert writeAll is not None
        many = [b"%d," % (j,) for j in range(2000)]
        writeAll(list(many))
        self.assertEqual(transport._tempDataLen, 0)
        await client.waitFor(len(b"".join(many)))
        self.assertEqual(bytes(client.received), b"".join(many))

    def test_unknownTransport(self) -> None:
        """
        A transport the fast path does not know gets no gathering writer:
        its caller joins the buffers for the public C{write}.
        """
        self.assertIsNone(fastSequenceWriter(StringTransport()))


class LineEchoTCPTests(TestCase):
    """
    Line framing over a real TCP connection, where held lines go back
    through the gathering writer: every byte comes back, in order, at every
    message size benchmark clients use.
    """

    def setUp(self) -> None:
        self.patch(_fastwrite, "twistedWritesAtOnce", lambda: False)

    async def test_everyByteAtEverySize(self) -> None:
        """
        Five lines of 64 B, 1, 10, 100 and 128 KiB a request, several
        requests at once (many reads per line, several lines per read),
        quiet and logging: the echo is what was sent.
        """
        for quiet in (True, False):
            factory = EchoFactory(EchoSettings(quiet=quiet, logRate=0))
            port = reactor.listenTCP(0, factory, interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            client = Collector()
            connector = reactor.connectTCP(
                "127.0.0.1",
                port.getHost().port,
                ClientFactory.forProtocol(partial(_same, client)),
            )
            self.addCleanup(connector.disconnect)
            await client.made
            sent = b""
            for size in (64, 1024, 10240, 102400, 131073):
                for n in range(5):
                    sent += b"%d:" % (n,) + b"x" * (size - 4 - len(str(n))) + b"\r\n"
            for _ in range(3):
                client.transport.write(sent)  # type: ignore[union-attr]
            await client.waitFor(3 * len(sent))
            self.assertEqual(bytes(client.received), sent * 3, quiet)


def _same(client: Collector) -> Collector:
    return client


class TwistedWritesAtOnceTests(TestCase):
    """
    On a Twisted whose own C{write} sends at once, the fast path steps aside.
    """

    async def test_probeMatchesTwisted(self) -> None:
        """
        The probe says that Twisted sends at once exactly when a public
        C{write} on a real TCP transport with nothing buffered leaves nothing
        buffered and no writability watch behind.
        """
        transport, client = await loopbackPair(self, reactor)
        transport.write(b"public\n")
        sentAtOnce = not transport._tempDataLen and transport not in (
            IReactorFDSet(reactor).getWriters()
        )
        self.assertEqual(_fastwrite.twistedWritesAtOnce(), sentAtOnce)
        await client.waitFor(7)
        self.assertEqual(bytes(client.received), b"public\n")

    async def test_publicWrite(self) -> None:
        """
        When Twisted sends at once, a TCP transport gets its public C{write}.
        """
        self.patch(_fastwrite, "twistedWritesAtOnce", lambda: True)
        transport, _client = await loopbackPair(self, reactor)
        self.assertEqual(fastWriter(transport), transport.write)


class FallbackTests(TestCase):
    """
    Transports the fast path does not know get their public C{write}.
    """

    def test_stringTransport(self) -> None:
        """
        A test transport (and anything that is not Twisted's TCP connection,
        such as a TLS protocol) gets its own C{write}.
        """
        transport = StringTransport()
        self.assertEqual(fastWriter(transport), transport.write)

    async def test_missingDetail(self) -> None:
        """
        A Twisted whose transport lacks one of the buffer attributes the fast
        path reads gets the public C{write}, and echoes still arrive.
        """
        self.patch(_fastwrite, "_REQUIRED", (*_fastwrite._REQUIRED, "_gone"))
        transport, client = await loopbackPair(self, reactor)
        write = fastWriter(transport)
        self.assertEqual(write, transport.write)
        write(b"public\n")
        await client.waitFor(7)
        self.assertEqual(bytes(client.received), b"public\n")


class _ThroughLibc:
    """
    Run a test class's tests again with every view and every gathered
    write going through libc's C{send} and C{writev} (as on PyPy), whatever
    the interpreter.
    """

    def setUp(self) -> None:
        senders = _libc.libcSenders()
        if senders is None:
            raise SkipTest("no cffi: the libc senders are not available")
        super().setUp()  # type: ignore[misc]
        patch = self.patch  # type: ignore[attr-defined]
        patch(_fastwrite, "sendView", senders[0])
        patch(_fastwrite, "sendGathered", senders[1])


class FastWriterLibcTests(_ThroughLibc, FastWriterTCPTests):
    """
    L{FastWriterTCPTests} with long views sent through libc.
    """


class SequenceWriterLibcTests(_ThroughLibc, SequenceWriterTests):
    """
    L{SequenceWriterTests} with pieces gathered through libc's C{writev}.
    """


class LineEchoLibcTests(_ThroughLibc, LineEchoTCPTests):
    """
    L{LineEchoTCPTests} with libc sending every view and gathered line.
    """
