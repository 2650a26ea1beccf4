"""
A load "connection" over UDP: one datagram per message, each echo matched
to the datagram it answers whatever the order, and a datagram whose echo
has not come within the timeout counted as lost.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.abstract import isIPv6Address
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from nbecho.client.load.connection import Outcome


class LoadDatagrams(DatagramProtocol):
    """
    Datagrams to one server from one local port.

    C{inFlight} maps each datagram's bytes to the due times of its copies
    in flight (the same bytes may be in flight twice); an echo takes the
    oldest.  C{send}, C{inFlight}, C{broken} and C{finish} are those of
    L{nbecho.client.load.connection.LoadProtocol}, for the scheduler.
    """

    missing = "lost"

    def __init__(self, clock: IReactorTime, outcome: Outcome, timeout: float) -> None:
        self.clock = clock
        self.outcome = outcome
        self.timeout = timeout
        self.inFlight: dict[bytes, deque[tuple[float, bool, IDelayedCall]]] = {}
        self.broken = False

    def send(self, message: bytes, sentAt: float, measured: bool) -> None:
        if self.broken or self.transport is None:
            return
        expiry = self.clock.callLater(self.timeout, self._expire, message)
        self.inFlight.setdefault(message, deque()).append((sentAt, measured, expiry))
        try:
            self.transport.write(message, None)
        except OSError:
            # The socket's buffer is full (EAGAIN): the datagram is lost
            # here rather than on the way, and counted so when it expires.
            pass

    def _expire(self, message: bytes) -> None:
        copies = self.inFlight[message]
        _, measured, _ = copies.popleft()
        if not copies:
            del self.inFlight[message]
        if measured:
            self.outcome.failed("lost", None)
        self.outcome.ready(self)  # type: ignore[arg-type]

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self.broken:
            return
        copies = self.inFlight.get(datagram)
        if copies is None:
            self.outcome.failed("mismatch", None)
            return
        sentAt, measured, expiry = copies.popleft()
        if not copies:
            del self.inFlight[datagram]
        expiry.cancel()
        self.outcome.echoed(sentAt, measured, len(datagram), self.clock.seconds())
        self.outcome.ready(self)  # type: ignore[arg-type]

    def connectionRefused(self) -> None:
        """
        The system says nothing listens there (an ICMP error): the datagrams
        in flight will never be answered and count as lost when they expire.
        """

    def finish(self) -> int:
        """
        The run is over: stop the timers, close the port, and return how many
        measured datagrams were still unanswered (they count as lost).
        """
        self.broken = True
        lost = 0
        for copies in self.inFlight.values():
            for _, measured, expiry in copies:
                expiry.cancel()
                lost += measured
        self.inFlight.clear()
        if self.transport is not None:
            self.transport.stopListening()
        return lost


def listenFor(reactor: Any, address: str, port: int, protocol: LoadDatagrams) -> None:
    """
    Bind C{protocol} to a port the system picks, of C{address}'s family, and
    connect it to the server, so that only the server's datagrams (and its
    ICMP errors) reach it.
    """
    interface = "::" if isIPv6Address(address) else "0.0.0.0"
    udpPort = reactor.listenUDP(0, protocol, interface=interface, maxPacketSize=65535)
    udpPort.connect(address, port)
