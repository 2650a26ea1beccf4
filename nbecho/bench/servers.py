"""
The benchmark's baseline echo servers, each run as its own process by
L{nbecho.bench}: C{python -m nbecho.bench.servers NAME}.

Each listens on a free port of 127.0.0.1, prints C{PORT <number>} on standard
output and serves until terminated.  They are the simplest correct echo
server of each platform, as people would write them, so that nbecho is
compared with what its users would otherwise run.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any, Callable


def _announce(port: int) -> None:
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()


def wire() -> None:
    """
    Twisted's own C{twisted.protocols.wire.Echo}: the reference of the table.
    """
    from twisted.internet import reactor as _reactor
    from twisted.internet.protocol import ServerFactory
    from twisted.protocols.wire import Echo

    reactor: Any = _reactor
    port = reactor.listenTCP(0, ServerFactory.forProtocol(Echo), interface="127.0.0.1")
    _announce(port.getHost().port)
    reactor.run()


def linereceiver() -> None:
    """
    The naive Twisted line echo: C{LineReceiver} answering each line with
    C{sendLine}, one write per line.
    """
    from twisted.internet import reactor as _reactor
    from twisted.internet.protocol import ServerFactory
    from twisted.protocols.basic import LineReceiver

    class LineEcho(LineReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 65536

        def lineReceived(self, line: bytes) -> None:
            self.sendLine(line)

    reactor: Any = _reactor
    port = reactor.listenTCP(
        0, ServerFactory.forProtocol(LineEcho), interface="127.0.0.1"
    )
    _announce(port.getHost().port)
    reactor.run()


class _AsyncioEcho(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


#: The asyncio line server's longest line: asyncio's default (64 KiB) would
#: refuse the 100 KiB messages of the size scenarios.
READLINE_LIMIT = 1 << 20


async def _readlineEcho(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """
    The line echo people write with streams: C{readline}, C{write}, C{drain}.
    """
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


async def _serveAsyncio(lines: bool = False) -> None:
    loop = asyncio.get_running_loop()
    if lines:
        server = await asyncio.start_server(
            _readlineEcho, "127.0.0.1", 0, limit=READLINE_LIMIT
        )
    else:
        server = await loop.create_server(_AsyncioEcho, "127.0.0.1", 0)
    _announce(server.sockets[0].getsockname()[1])
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop


def asyncio_() -> None:
    """
    The standard library's asyncio C{Protocol} echo.
    """
    asyncio.run(_serveAsyncio())


def asyncioReadline() -> None:
    """
    The standard library's asyncio streams, a line at a time.
    """
    asyncio.run(_serveAsyncio(lines=True))


def uvloop() -> None:
    """
    The same asyncio protocol on uvloop (libuv).
    """
    import uvloop as _uvloop

    _uvloop.install()
    asyncio.run(_serveAsyncio())


def uvloopReadline() -> None:
    """
    The asyncio streams line echo on uvloop.
    """
    import uvloop as _uvloop

    _uvloop.install()
    asyncio.run(_serveAsyncio(lines=True))


SERVERS: dict[str, Callable[[], None]] = {
    "wire": wire,
    "linereceiver": linereceiver,
    "asyncio": asyncio_,
    "asyncio-readline": asyncioReadline,
    "uvloop": uvloop,
    "uvloop-readline": uvloopReadline,
}


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in SERVERS:
        raise SystemExit(f"usage: python -m nbecho.bench.servers {'|'.join(SERVERS)}")
    SERVERS[name]()


if __name__ == "__main__":
    main()
