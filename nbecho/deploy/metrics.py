"""
Prometheus metrics for C{twistd nbecho --metrics ENDPOINT}.

The counters already kept in L{EchoStats} are read only when Prometheus
scrapes, by a custom collector, so serving metrics adds nothing to the work
done per message.  The one new measurement, the histogram of message sizes,
is taken by a protocol subclass used only when metrics are on: without
C{--metrics} the protocol classes and their fast paths are untouched.

Every server gets its own L{CollectorRegistry}, so several services in one
process (or in one test run) never mix their numbers.  With C{--workers},
each scrape first asks the worker processes for their totals, so that every
scrape reports the whole server.  Beside nbecho's own metrics the registry
holds the standard C{process_*} ones (CPU, memory, open files, start time,
where C{/proc} has them; of twistd's process) and C{nbecho_build_info}, the
running version as a label, as exporters conventionally report them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from nbecho import __version__
from nbecho.deploy.metricsport import DEFAULT_CONNECTIONS, DEFAULT_TIMEOUT, MetricsSite
from nbecho.deploy.workers import WorkerPool
from nbecho.logs.logfile import LOG_WRITE_FAILURES
from nbecho.server._address import formatAddress
from nbecho.server.listening import ListeningService
from nbecho.server.protocol import EchoProtocol
from nbecho.server.service import ServerService
from nbecho.server.udp import UDPEchoService
from nbecho.settings import EchoSettings
from nbecho.stats import EchoStats

log = Logger(namespace="nbecho")

#: Upper bounds of the message size buckets, in bytes: from keystrokes to
#: 64 KiB; longer lines, up to --max-line-length, fall in the last one.
SIZE_BUCKETS = (1, 8, 64, 256, 1024, 4096, 16384, 65536, float("inf"))


@attrs.frozen(eq=False)
class StatsCollector:
    """
    The totals of one server, read at scrape time.
    """

    totals: Callable[[], EchoStats]

    def collect(self) -> Iterator[Metric]:
        stats = self.totals()
        yield GaugeMetricFamily(
            "nbecho_connections_open",
            "Client connections open now.",
            value=stats.connectionsOpen,
        )
        yield CounterMetricFamily(
            "nbecho_connections",
            "Client connections accepted since the server started.",
            value=stats.connectionsTotal,
        )
        yield _byReason(
            "nbecho_refusals",
            "Connections refused by a limit, by the limit's option name.",
            stats.refused,
        )
        yield CounterMetricFamily(
            "nbecho_messages", "Messages received (and echoed).", value=stats.messages
        )
        yield CounterMetricFamily(
            "nbecho_received_bytes", "Bytes read from clients.", value=stats.bytesIn
        )
        yield CounterMetricFamily(
            "nbecho_sent_bytes", "Bytes echoed to clients.", value=stats.bytesOut
        )
        yield CounterMetricFamily(
            "nbecho_udp_datagrams",
            "UDP datagrams echoed (counted in nbecho_messages_total too).",
            value=stats.udpDatagrams,
        )
        yield _byReason(
            "nbecho_udp_dropped",
            "UDP datagrams left unanswered, by reason.",
            stats.udpDropped,
        )
        faults = CounterMetricFamily(
            "nbecho_faults",
            "Connections a --fault-* option hit, by kind of fault.",
            labels=["kind"],
        )
        for kind, count in sorted(stats.faults.items()):
            faults.add_metric([kind], count)
        yield faults
        yield CounterMetricFamily(
            "nbecho_greetings",
            "--greeting lines sent (not counted as echoes).",
            value=stats.greetings,
        )
        yield CounterMetricFamily(
            "nbecho_log_write_errors",
            "Log lines lost because the log file could not be written.",
            value=LOG_WRITE_FAILURES.count,
        )


@attrs.frozen(eq=False)
class PortCollector:
    """
    The metrics port's own connections, read at scrape time.
    """

    site: MetricsSite

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "nbecho_metrics_connections_open",
            "Connections to the metrics port open now.",
            value=len(self.site.channels),
        )
        yield CounterMetricFamily(
            "nbecho_metrics_connections",
            "Connections to the metrics port accepted since the server started.",
            value=self.site.accepted,
        )
        yield _byReason(
            "nbecho_metrics_connections_dropped",
            "Metrics connections refused or closed by the port's limits, by "
            "reason: refused (every connection busy), evicted (the longest "
            "idle one, for a newcomer), timeout (no whole request in time).",
            self.site.dropped,
        )


def _byReason(name: str, documentation: str, counts: dict[str, int]) -> Metric:
    """
    A counter with one sample per reason, in a stable order.
    """
    family = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, count in sorted(counts.items()):
        family.add_metric([reason], count)
    return family


def _measuring(
    base: type[EchoProtocol], settings: EchoSettings, sizes: Histogram
) -> type[EchoProtocol]:
    """
    A subclass of C{base} that puts the size of every message, terminator
    removed, in C{sizes}.

    Line framing skips splitting a chunk into lines when C{--quiet} leaves
    nothing to log; the sizes need that split, so this subclass runs with
    C{quiet} off and stays quiet itself when C{settings} say so.
    """
    quiet = settings.quiet
    loud = attrs.evolve(settings, quiet=False)

    class Measuring(base):  # type: ignore[valid-type,misc]
        def connectionMade(self) -> None:
            super().connectionMade()
            self.settings = loud

        def messagesRead(self, messages: list[bytes]) -> None:
            observe = sizes.observe
            for message in messages:
                observe(len(message))
            if quiet:
                self.counted(len(messages))
            else:
                super().messagesRead(messages)

    Measuring.__name__ = Measuring.__qualname__ = "Measuring" + base.__name__
    return Measuring


def instrument(server: ServerService) -> CollectorRegistry:
    """
    Measure C{server}'s connections from now on and return the registry
    that holds its metrics.
    """
    factory = server.factory
    registry = CollectorRegistry()
    registry.register(StatsCollector(server.totals))
    ProcessCollector(registry=registry)
    Info("nbecho_build", "The nbecho version running.", registry=registry).info(
        {"version": __version__}
    )
    sizes = Histogram(
        "nbecho_message_size_bytes",
        "Size of each message received, terminator excluded.",
        buckets=SIZE_BUCKETS,
        registry=registry,
    )
    for child in server:
        if isinstance(child, UDPEchoService):
            child.echo.observe = sizes.observe
    factory.protocol = _measuring(  # type: ignore[assignment]
        factory.protocol,  # type: ignore[arg-type]
        factory.settings,
        sizes,
    )
    return registry


class MetricsPage(Resource):
    """
    C{registry} in Prometheus text format, once C{refresh} has fired: the
    worker processes' totals are fetched for every scrape.
    """

    isLeaf = True

    def __init__(
        self,
        registry: CollectorRegistry,
        refresh: Callable[[], Deferred[Any]] = lambda: succeed(None),
    ) -> None:
        super().__init__()
        self.registry = registry
        self.refresh = refresh

    def render_GET(self, request: Request) -> Any:
        if request.postpath:
            # /metrics only: not /metrics/, /metrics/x, /metrics/../metrics.
            return NoResource().render(request)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def render(_: object) -> None:
            if gone:
                return
            output = generate_latest(self.registry)
            request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
            request.write(output)
            request.finish()

        self.refresh().addCallback(render)
        return NOT_DONE_YET


def metricsSite(
    registry: CollectorRegistry,
    refresh: Callable[[], Deferred[Any]] = lambda: succeed(None),
    connectionLimit: int = DEFAULT_CONNECTIONS,
    timeout: float = DEFAULT_TIMEOUT,
) -> MetricsSite:
    """
    A web site serving C{registry} at C{/metrics} in Prometheus text format,
    within the metrics port's limits, its own connections counted in
    C{registry}.
    """
    root = Resource()
    root.putChild(b"metrics", MetricsPage(registry, refresh))
    site = MetricsSite(root, connectionLimit, timeout)
    registry.register(PortCollector(site))
    return site


class MetricsService(ListeningService):
    """
    Serve the metrics site while running, with its own Ready? line.
    """

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        address = formatAddress(port.getHost())
        log.info(
            "Ready? nbecho metrics at {url} ({description})",
            url=f"http://{address}/metrics",
            address=address,
            description=self.description,
            nbecho_event="metrics_ready",
        )
        return port


def addMetrics(
    server: ServerService,
    description: str,
    endpoint: IStreamServerEndpoint,
    workers: WorkerPool | None = None,
    connectionLimit: int = DEFAULT_CONNECTIONS,
    timeout: float = DEFAULT_TIMEOUT,
) -> MetricsService:
    """
    Serve C{server}'s metrics on C{endpoint} while it runs, counting the
    totals of C{workers} too, with at most C{connectionLimit} connections
    that each get C{timeout} seconds for a request.
    """
    refresh = workers.refresh if workers is not None else (lambda: succeed(None))
    site = metricsSite(instrument(server), refresh, connectionLimit, timeout)
    service = MetricsService(description, endpoint, site)  # type: ignore[arg-type]
    service.setServiceParent(server)
    return service
