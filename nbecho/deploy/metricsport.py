"""
The metrics port's HTTP side, bounded like the echo listeners.

The metrics port is a second server open to whoever can reach it, so it
gets limits of its own, which echo clients never share:

  - at most C{connectionLimit} connections
    (C{--metrics-max-connections}, at most 32, so that they fit in the
    descriptors the server keeps beside C{--max-connections}: they never
    take an echo client's); a connection beyond it closes the one idle
    longest (no request in progress), or is refused when every one is
    busy;
  - a connection must send a whole request within C{timeout}
    seconds (C{--metrics-timeout}) of connecting or of its previous answer,
    or it is closed: slow and idle clients alike;
  - no further request is read while an answer waits in the send buffer,
    so pipelined requests that are never read cost a send buffer, not an
    answer each;
  - only C{/metrics} is served; every other path is a 404.

Every metrics connection is counted: open now, accepted, and closed early
by reason (C{refused}, C{evicted}, C{timeout}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Site

#: Default of C{--metrics-max-connections}: Prometheus needs one per server
#: scraping; a few more leave room for an operator's curl.
DEFAULT_CONNECTIONS = 10

#: Default of C{--metrics-timeout}, in seconds: a scrape interval of 15 s
#: keeps Prometheus's connection open only if it is longer, and a client
#: that holds a connection without a request gives it back this soon.
DEFAULT_TIMEOUT = 10.0

#: Seconds a timed-out connection whose peer does not read gets to drain
#: before it is aborted.
ABORT_AFTER = 5


class MetricsChannel(HTTPChannel):
    """
    An HTTP connection of the metrics port: timed from its start or its last
    answer (data that trickles in does not extend it), and paused, request
    parsing included, while its answers wait in the send buffer.
    """

    abortTimeout = ABORT_AFTER
    site: MetricsSite

    def connectionMade(self) -> None:
        super().connectionMade()
        self.lastAnswered = self.site.clock.seconds()
        self.site.channelOpened(self)

    def resetTimeout(self) -> None:
        """
        Not on every byte received: a client that sends one byte every few
        seconds must still be gone after the timeout.
        """

    def requestDone(self, request: Any) -> None:
        self.lastAnswered = self.site.clock.seconds()
        super().requestDone(request)

    def pauseProducing(self) -> None:
        """
        The send buffer is full: stop parsing the requests already read too
        (C{LineReceiver.paused}), not only reading more, so that they
        do not each add an answer to the buffer.
        """
        super().pauseProducing()
        self.paused = True
        # HTTPChannel leaves reading on when the buffer fills in the middle
        # of an answer; what it reads then would pile up unparsed.
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        super().resumeProducing()
        self.paused = False
        if not getattr(self.transport, "disconnecting", True):
            self.dataReceived(b"")

    def timeoutConnection(self) -> None:
        self.site.dropped["timeout"] += 1
        super().timeoutConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.channelClosed(self)
        super().connectionLost(reason)

    @property
    def idle(self) -> bool:
        """
        Whether no request is in progress on this connection.
        """
        return not self.requests


class MetricsSite(Site):
    """
    A site that keeps no access log (Prometheus scrapes every few seconds,
    which would drown the echo service's own lines) and bounds its
    connections.
    """

    protocol = MetricsChannel  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        resource: Resource,
        connectionLimit: int = DEFAULT_CONNECTIONS,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Any = None,
    ) -> None:
        super().__init__(resource, timeout=timeout)
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.connectionLimit = connectionLimit
        self.channels: list[MetricsChannel] = []
        self.accepted = 0
        self.dropped = {"refused": 0, "evicted": 0, "timeout": 0}

    def log(self, request: object) -> None:
        pass

    def buildProtocol(self, addr: IAddress | None) -> Any:
        if len(self.channels) >= self.connectionLimit:
            idle = [channel for channel in self.channels if channel.idle]
            if not idle:
                self.dropped["refused"] += 1
                return None
            oldest = min(idle, key=lambda channel: channel.lastAnswered)
            self.dropped["evicted"] += 1
            self.channels.remove(oldest)
            oldest.transport.abortConnection()  # type: ignore[union-attr]
        self.accepted += 1
        return super().buildProtocol(addr)

    def channelOpened(self, channel: MetricsChannel) -> None:
        self.channels.append(channel)

    def channelClosed(self, channel: MetricsChannel) -> None:
        if channel in self.channels:
            self.channels.remove(channel)
