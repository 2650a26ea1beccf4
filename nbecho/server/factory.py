"""
The server factory: admission and the registry of open connections.

Every connection of every listener of one server goes through one
L{EchoFactory}: it refuses clients over C{--max-connections} or
C{--max-per-peer} (with a L{Refusal}, as
L{twisted.protocols.policies.LimitTotalConnectionsFactory} answers with its
C{overflowProtocol}), keeps each open connection so that a stopping server
can drain them, and adds up their counts for the totals.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from nbecho.interfaces import IEchoConnection
from nbecho.logs.connlimit import ConnectionLogLimit
from nbecho.logs.ratelimit import LogBudget
from nbecho.server._address import formatAddress, logKey, peerKey
from nbecho.server.connection import Connection
from nbecho.server.lines import LineEchoProtocol
from nbecho.server.protocol import EchoProtocol, sharedReadBuffer
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")

#: The protocol that implements each of L{nbecho.settings.FRAMINGS}.
PROTOCOLS: dict[str, type[EchoProtocol]] = {
    "line": LineEchoProtocol,
    "raw": EchoProtocol,
}

#: What a refused client reads before the server closes its connection.
REFUSAL = b"error: too many connections\n"

#: The limit names that C{EchoStats.refused} counts refusals under.
MAX_CONNECTIONS = "max-connections"
MAX_PER_PEER = "max-per-peer"
#: Refused because the open file limit has no room left for a connection.
OPEN_FILES = "open-files"

#: Refusals that may linger at once, to let their clients read why; beyond
#: this, a refused connection is cut at once so that refusals cannot use up
#: the descriptors they protect.
LINGERING_REFUSALS = 16


class Refusal(Connection):
    """
    Tell a client over a limit why it is turned away, then hang up, with the
    same lingering close as any connection so that it reads the reason.
    """

    #: Refusals must not pile up: a refused client gets less time to close.
    lingerTimeout = 1.0
    factory: EchoFactory

    def connectionMade(self) -> None:
        super().connectionMade()
        self.peer = formatAddress(self.transport.getPeer())
        if self.factory.refusing > LINGERING_REFUSALS:
            self.transport.abortConnection()
            return
        self.transport.write(REFUSAL)
        self.close("refused")

    def dataReceived(self, data: bytes) -> None:
        """
        Nothing a refused client sends is read.
        """


class EchoFactory(ServerFactory):
    """
    Admit or refuse each connection, and keep the open ones.

    L{twisted.protocols.policies.LimitConnectionsByPeer} would count per
    peer, but it indexes addresses as tuples (broken since addresses became
    objects) and drops refused clients without a word; this keys on
    C{address.host} and answers with L{REFUSAL}.

    @ivar connections: every open connection, refusals included.
    @ivar open: connections admitted and not yet closed.
    @ivar logBudget: the per-message log lines all connections share.
    @ivar connectionLog: which connections have their lines logged.
    @ivar fileRoom: how many connections, refusals included, the open file
        limit leaves room for beside the descriptors the server keeps for
        itself (listeners, log, metrics); 0: no such limit known.
    @ivar refusing: refusals open now.
    """

    noisy = False

    def __init__(
        self, settings: EchoSettings | None = None, clock: IReactorTime | None = None
    ) -> None:
        self.settings = settings if settings is not None else EchoSettings()
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.clock: Any = clock
        self.logBudget = LogBudget(self.settings.logRateTotal)
        self.connectionLog = ConnectionLogLimit(
            self.settings.logConnectionRate,
            self.settings.logConnectionRateTotal,
            clock,
        )
        self.protocol = PROTOCOLS[self.settings.framing]  # type: ignore[assignment]
        self.connections: set[IEchoConnection] = set()
        self.open = 0
        self.fileRoom = 0
        self.refusing = 0
        self.perPeer: dict[str, int] = {}
        self._admitted: dict[IEchoConnection, str | None] = {}
        self._closed = EchoStats()
        self._whenEmpty: list[Deferred[None]] = []

    def startFactory(self) -> None:
        """
        Make the read buffer every connection shares as the server starts,
        so that its 256 KiB are the process's, not the first client's.
        """
        sharedReadBuffer(EchoProtocol.bulkReadSize)

    def buildProtocol(self, addr: IAddress | None) -> Connection:  # type: ignore[override]
        settings = self.settings
        key = peerKey(addr)
        if settings.maxConnections and self.open >= settings.maxConnections:
            return self._refuse(addr, MAX_CONNECTIONS, settings.maxConnections)
        if self.fileRoom and len(self.connections) >= self.fileRoom:
            return self._refuse(addr, OPEN_FILES, self.fileRoom)
        if (
            key is not None
            and settings.maxPerPeer
            and self.perPeer.get(key, 0) >= settings.maxPerPeer
        ):
            return self._refuse(addr, MAX_PER_PEER, settings.maxPerPeer)
        protocol = cast("type[Connection]", self.protocol)()
        protocol.factory = self
        self.open += 1
        self._closed.connectionsTotal += 1
        if key is not None:
            self.perPeer[key] = self.perPeer.get(key, 0) + 1
        self._admitted[protocol] = key
        self.connections.add(protocol)
        return protocol

    def _refuse(self, addr: IAddress | None, limit: str, value: int) -> Refusal:
        refused = self._closed.refused
        refused[limit] = refused.get(limit, 0) + 1
        host = logKey(addr)
        if self.connectionLog.admit(host):
            log.warn(
                "Refused {peer}: too many connections ({why})",
                peer=formatAddress(addr),
                why=f"the open file limit leaves room for {value}"
                if limit == OPEN_FILES
                else f"--{limit} {value}",
                limit=limit,
                value=value,
                nbecho_event="refused",
            )
        else:
            self.connectionLog.hold(host, "refused")
        protocol = Refusal()
        protocol.factory = self
        self.connections.add(protocol)
        self.refusing += 1
        return protocol

    def handOver(self, old: IEchoConnection, new: IEchoConnection) -> None:
        """
        Let C{new} stand for the connection C{old} was admitted or refused
        as, with its slot: a PROXY-protocol connection is served by its
        wrapper until the header has named the client, by its echo protocol
        from then on, and shutdown must reach whichever serves it now.
        """
        if old not in self.connections:
            return
        self.connections.discard(old)
        self.connections.add(new)
        if old in self._admitted:
            self._admitted[new] = self._admitted.pop(old)

    def release(self, connection: IEchoConnection) -> None:
        """
        Give C{connection}'s slot back; only the first call for a connection
        counts, however it ended.
        """
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        if connection in self._admitted:
            key = self._admitted.pop(connection)
            self.open -= 1
            if key is not None:
                left = self.perPeer[key] - 1
                if left:
                    self.perPeer[key] = left
                else:
                    del self.perPeer[key]
            connection.addTo(self._closed)
        else:
            self.refusing -= 1
        if not self.connections:
            waiting, self._whenEmpty = self._whenEmpty, []
            for d in waiting:
                d.callback(None)

    @property
    def stats(self) -> EchoStats:
        """
        The totals now: those of closed connections plus the open ones'.
        """
        closed = self._closed
        stats = EchoStats(
            connectionsOpen=self.open,
            connectionsTotal=closed.connectionsTotal,
            messages=closed.messages,
            bytesIn=closed.bytesIn,
            bytesOut=closed.bytesOut,
            refused=dict(closed.refused),
            faults=dict(closed.faults),
            greetings=closed.greetings,
        )
        for connection in self._admitted:
            connection.addTo(stats)
        return stats

    def whenEmpty(self) -> Deferred[None]:
        """
        A L{Deferred} that fires once no connection is open.
        """
        if not self.connections:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._whenEmpty.append(d)
        return d
