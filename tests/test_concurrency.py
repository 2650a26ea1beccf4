"""
Many clients at once against one real C{twistd -n nbecho}: the seed served
one client at a time; nbecho must serve them all together, each getting back
exactly its own bytes.
"""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IReactorTCP, IReactorTime, ITCPTransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from tests._servers import ALL_CONNECTION_LINES, TIMEOUT, ServerFactory

CLIENTS = 100
LINES = 200


class Collector(Protocol):
    """
    Keep every byte the server sends back; fire C{firstLine} once the first
    echoed line is complete and C{closed} when the server closes.
    """

    transport: ITCPTransport

    def __init__(self) -> None:
        self.received = b""
        self.firstLine: Deferred[None] = Deferred()
        self.closed: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if not self.firstLine.called and b"\n" in self.received:
            self.firstLine.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed.callback(self.received)


def _script(number: int) -> list[bytes]:
    """
    What client C{number} sends: lines no other client sends, of varying
    lengths, with a CRLF now and then and a partial line at the end.
    """
    lines = [
        b"client %d line %d %s%s"
        % (
            number,
            index,
            b"x" * ((number * 7 + index) % 97),
            b"\r\n" if index % 5 else b"\n",
        )
        for index in range(LINES)
    ]
    lines.append(b"client %d partial" % (number,))
    return lines


@pytest_twisted.ensureDeferred
async def test_hundredClientsAtOnce(nbechoServer: ServerFactory) -> None:
    """
    100 clients connected together each get back exactly their own data,
    and each is answered while all the others are still connected.
    """
    server = nbechoServer(*ALL_CONNECTION_LINES)
    tcp: IReactorTCP = reactor
    clock: IReactorTime = reactor
    endpoint = TCP4ClientEndpoint(tcp, "127.0.0.1", server.port, timeout=TIMEOUT)
    connecting = [
        endpoint.connect(Factory.forProtocol(Collector)) for _ in range(CLIENTS)
    ]
    connected = gatherResults(connecting, consumeErrors=True)
    protocols = await connected.addTimeout(TIMEOUT, clock)
    clients = [client for client in protocols if isinstance(client, Collector)]
    assert len(clients) == CLIENTS
    scripts = [_script(number) for number in range(CLIENTS)]

    # Everyone sends a first line and is answered before anyone finishes:
    # a server that serves one client at a time never gets past this.
    for client, lines in zip(clients, scripts):
        client.transport.write(lines[0])
    answered = gatherResults([client.firstLine for client in clients])
    await answered.addTimeout(TIMEOUT, clock)
    assert not any(client.closed.called for client in clients)

    for client, lines in zip(clients, scripts):
        client.transport.writeSequence(lines[1:])
        client.transport.loseWriteConnection()
    finished = gatherResults([client.closed for client in clients])
    results: list[bytes] = await finished.addTimeout(60, clock)

    wrong = [
        number
        for number, (got, lines) in enumerate(zip(results, scripts))
        if got != b"".join(lines)
    ]
    assert wrong == []
    server.waitForLog(r"close .*\(client finished sending\)", count=CLIENTS)
    accepts = server.logLines("Accept ")
    assert len(accepts) == CLIENTS
