"""
Echo over UDP (RFC 862): C{--listen udp:PORT[:interface=ADDR]}.

Each datagram goes back to the address it came from.  That makes a UDP echo
server a classic tool for reflection and loops: an attacker spoofs the
source of a datagram so that the echo lands on a victim, or on another echo
or chargen service that answers back, forever.  So L{UDPEcho} answers only
what it can answer safely:

  - never a datagram from a source port below 1024, where echo, chargen,
    DNS and the other services that answer datagrams live;
  - never a datagram from the server's own port (itself, or an echo server
    on the same port elsewhere: a loop);
  - at most C{UDPLimits.perSource} replies per second to one source address
    and C{UDPLimits.total} replies per second in all.

Every datagram left unanswered is counted by reason (in the totals and the
metrics) and summarised in the log at most once a second, never one line
per datagram: a flood must not flood the log too.  The per-source limit
bounds the C{Read Data} lines of one source as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError, MessageLengthError
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IReactorTime,
    IUDPTransport,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python import usage

from nbecho._twisted import endpointArguments
from nbecho._words import counted
from nbecho.logs.batch import info
from nbecho.logs.escape import escapeMessage
from nbecho.server._address import formatAddress, unmapped
from nbecho.server._errors import inUse, inWords
from nbecho.server.listening import ListenFailed
from nbecho.server.protocol import withoutTerminator
from nbecho.server.service import ServerService
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")

#: The largest datagram read whole: the largest a UDP packet can carry.
MAX_DATAGRAM = 65535

#: Source ports below this are never answered.
LOWEST_PORT = 1024

#: The reasons dropped datagrams are counted under, with the words the log
#: summary uses for each.
SOURCE_PORT = "source-port"
OWN_PORT = "own-port"
RATE = "udp-rate"
RATE_TOTAL = "udp-rate-total"
SEND_ERROR = "send-error"
REASONS = {
    SOURCE_PORT: f"from source ports below {LOWEST_PORT}",
    OWN_PORT: "from the server's own port",
    RATE: "over --udp-rate",
    RATE_TOTAL: "over --udp-rate-total",
    SEND_ERROR: "not sendable",
}

#: Replies per second to one source address, and in all, by default.
DEFAULT_RATE = 20
DEFAULT_RATE_TOTAL = 1000

#: Seconds between two summaries of dropped datagrams, at least.
SUMMARY_INTERVAL = 1.0


@attrs.frozen
class UDPLimits:
    """
    How many replies a UDP echo server sends per second; 0: no limit.

    @ivar perSource: replies to one source address (IP, whatever the port).
    @ivar total: replies to all sources together.
    """

    perSource: int = DEFAULT_RATE
    total: int = DEFAULT_RATE_TOTAL


def isUDP(description: str) -> bool:
    """
    Whether C{description} is a C{udp:} endpoint, which only this module
    serves (Twisted's endpoint parsers know stream endpoints only).
    """
    return description.split(":", 1)[0] == "udp"


def parseUDPListener(description: str) -> tuple[int, str]:
    """
    The port and interface of C{udp:PORT[:interface=ADDR]}.

    Twisted's endpoint string rules apply (C{:} separates, C{=} assigns, a
    backslash quotes the next character: C{interface=\\:\\:1}), read by
    Twisted's own parser.

    @raise twisted.python.usage.UsageError: for anything else.
    """
    try:
        args, kwargs = endpointArguments(description)
    except Exception:  # noqa: BLE001 - a lone trailing backslash and the like
        args, kwargs = [], {}
    if len(args) != 2 or not args[1].isascii() or not args[1].isdigit():
        raise usage.UsageError(f"{description!r} is not udp:PORT[:interface=ADDRESS]")
    port = int(args[1])
    if port > 65535:
        raise usage.UsageError(f"{description!r}: port {port} is over 65535")
    unknown = set(kwargs) - {"interface"}
    if unknown:
        raise usage.UsageError(
            f"{description!r}: udp: takes interface= only, not {sorted(unknown)[0]}="
        )
    interface = kwargs.get("interface", "")
    if interface and not (isIPAddress(interface) or isIPv6Address(interface)):
        raise usage.UsageError(
            f"{description!r}: interface must be an IP address, not {interface!r}"
        )
    return port, interface


class UDPEcho(DatagramProtocol):
    """
    Send each datagram back to its sender, within the safety rules above.

    The rate limits count replies in fixed windows of one second from the
    first datagram after the previous window ended; the table of sources is
    emptied with each window, so it holds at most the sources of one second.

    @ivar stats: this endpoint's totals: datagrams answered as messages,
        their bytes, and C{udpDropped} by reason.
    @ivar observe: called with the size of every datagram answered (the
        metrics' size histogram), if set.
    """

    transport: IUDPTransport
    noisy = False
    observe: Callable[[int], object] | None = None
    ownPort = -1

    def __init__(
        self, settings: EchoSettings, limits: UDPLimits, clock: IReactorTime
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.clock = clock
        self.stats = EchoStats()
        self._windowStart = float("-inf")
        self._windowTotal = 0
        self._perSource: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._lastDropped = ""
        self._summary: IDelayedCall | None = None

    def startProtocol(self) -> None:
        self.ownPort = self.transport.getHost().port

    def stopProtocol(self) -> None:
        if self._summary is not None and self._summary.active():
            self._summary.cancel()
        self._summarise()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        host, port = addr[0], addr[1]
        reason = self._refusal(host, port)
        if reason is None:
            try:
                self.transport.write(datagram, addr)
            except (OSError, MessageLengthError):
                reason = SEND_ERROR
        if reason is not None:
            self._drop(reason, host, port)
            return
        stats = self.stats
        stats.messages += 1
        stats.udpDatagrams += 1
        stats.bytesIn += len(datagram)
        stats.bytesOut += len(datagram)
        if self.observe is not None:
            self.observe(len(withoutTerminator(datagram)))
        if not self.settings.quiet:
            info(
                log,
                "Read Data {peer} {text}",
                peer=_peer(host, port),
                text=escapeMessage(withoutTerminator(datagram)),
                size=len(datagram),
                transport="udp",
                nbecho_event="message",
            )

    def _refusal(self, host: str, port: int) -> str | None:
        """
        Why a datagram from C{host}, C{port} gets no reply, or C{None}; a
        reply is counted against the limits here.
        """
        if port < LOWEST_PORT:
            return SOURCE_PORT
        if port == self.ownPort:
            return OWN_PORT
        now = self.clock.seconds()
        if now - self._windowStart >= 1.0:
            self._windowStart = now
            self._windowTotal = 0
            self._perSource.clear()
        limits = self.limits
        if limits.total and self._windowTotal >= limits.total:
            return RATE_TOTAL
        source = unmapped(host)
        sent = self._perSource.get(source, 0)
        if limits.perSource and sent >= limits.perSource:
            return RATE
        self._perSource[source] = sent + 1
        self._windowTotal += 1
        return None

    def _drop(self, reason: str, host: str, port: int) -> None:
        dropped = self.stats.udpDropped
        dropped[reason] = dropped.get(reason, 0) + 1
        self._pending[reason] = self._pending.get(reason, 0) + 1
        self._lastDropped = _peer(host, port)
        if self._summary is None or not self._summary.active():
            self._summary = self.clock.callLater(SUMMARY_INTERVAL, self._summarise)

    def _summarise(self) -> None:
        """
        Log the datagrams dropped since the last summary, in one line.
        """
        pending, self._pending = self._pending, {}
        if not pending:
            return
        log.warn(
            "UDP echo dropped {countText} ({detail}), the last from {peer}",
            count=sum(pending.values()),
            countText=counted(sum(pending.values()), "datagram"),
            detail=", ".join(
                f"{count} {REASONS.get(reason, reason)}"
                for reason, count in sorted(pending.items())
            ),
            dropped=pending,
            peer=self._lastDropped,
            nbecho_event="udp_dropped",
        )


def _peer(host: str, port: int) -> str:
    if ":" in host:
        return formatAddress(IPv6Address("UDP", host, port))
    return formatAddress(IPv4Address("UDP", host, port))


class UDPEchoService(Service):
    """
    Listen for datagrams on one C{udp:} endpoint while running, with a
    C{Ready?} line like the stream listeners'.

    Like L{ListeningService<nbecho.server.listening.ListeningService>} it
    binds in L{listenNow}, which C{makeService} calls before twistd forks,
    so that a port in use is one line on the terminal and status 1, and
    says C{Ready?} only once twistd starts the services, after every
    listener is bound.

    @ivar echo: the protocol, which keeps this endpoint's totals.
    @ivar readyName: how the C{Ready?} line names this listener.
    """

    port: IListeningPort | None = None
    _announced = False

    def __init__(
        self,
        description: str,
        settings: EchoSettings,
        limits: UDPLimits,
        reactor: Any = None,
        name: str | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.description = description
        self.readyName = description if name is None else name
        self.portNumber, self.interface = parseUDPListener(description)
        self.reactor = reactor
        self.echo = UDPEcho(settings, limits, reactor)

    def stats(self) -> EchoStats:
        """
        A copy of this endpoint's totals, for the server's.
        """
        return EchoStats() + self.echo.stats

    def listenNow(self) -> None:
        """
        Bind now, unless already bound.

        @raise ListenFailed: with one line naming the listener, if the
            address cannot be bound.
        """
        if self.port is not None:
            return
        try:
            self.port = self.reactor.listenUDP(
                self.portNumber,
                self.echo,
                interface=self.interface,
                maxPacketSize=MAX_DATAGRAM,
            )
        except CannotListenError as error:
            why = inUse(error, self.readyName, "UDP port") or (
                f"cannot listen on {self.readyName}: "
                f"{inWords(error.socketError, self.readyName)}"
            )
            raise ListenFailed(f"nbecho: {why}") from None

    def privilegedStartService(self) -> None:
        """
        Bind now unless L{listenNow} already did, before twistd sheds
        privileges (ports below 1024), and say C{Ready?}.
        """
        super().privilegedStartService()
        self.listenNow()
        assert self.port is not None
        if self._announced:
            return
        self._announced = True
        log.info(
            "Ready? nbecho listening on {address} ({description})",
            address=formatAddress(self.port.getHost()),
            description=self.readyName,
            transport="udp",
            nbecho_event="ready",
        )

    def startService(self) -> None:
        super().startService()
        if not self._announced:
            self.privilegedStartService()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        port, self.port = self.port, None
        self._announced = False
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)  # type: ignore[call-overload]


def addUDP(
    server: ServerService,
    listeners: list[tuple[str, str]],
    limits: UDPLimits,
) -> list[UDPEchoService]:
    """
    Serve echo over UDP on each of C{listeners} (pairs of a C{udp:}
    description with its interface given, and the name of its C{Ready?}
    line) as part of C{server}, its datagrams in the server's totals.
    """
    services = []
    for description, name in listeners:
        service = UDPEchoService(
            description, server.factory.settings, limits, server.clock, name
        )
        service.setServiceParent(server)
        server.statsSources.append(service.stats)
        services.append(service)
    return services
