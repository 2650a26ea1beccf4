"""
The C{twistd nbecho} command line: options in, a running service out.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.testing import MemoryReactor
from twisted.logger import Logger
from twisted.python import usage

from nbecho import __version__
from nbecho._extras import missingExtra
from nbecho._twisted import installEchoReactor
from nbecho._values import LIMIT_PARAMETERS, exitWord, number, seconds, shown
from nbecho.deploy.endpoints import (
    EndpointError,
    TLSRefusedError,
    defaultListeners,
    listenBacklog,
    listenOn,
    udpListeners,
)
from nbecho.deploy.workers import addWorkers, checkWorkers, shareLimits
from nbecho.logs.connlimit import TwistedAcceptLines
from nbecho.logs.jsonlog import (
    LOG_FORMATS,
    JSONLinesObserver,
    JSONLoggingService,
)
from nbecho.logs.textlog import checkLogDestination, logDestination, useFastTextLog
from nbecho.server._faultoptions import FAULT_PARAMETERS, faultPlan
from nbecho.server.faults import installFaults
from nbecho.server.listening import listenBeforeStart
from nbecho.server.service import buildServer
from nbecho.server.udp import (
    DEFAULT_RATE,
    DEFAULT_RATE_TOTAL,
    UDPLimits,
    addUDP,
    isUDP,
    parseUDPListener,
)
from nbecho.settings import (
    FRAMINGS,
    LOG_RATE_CEILING,
    MAX_LINE_LENGTH,
    EchoSettings,
)

log = Logger(namespace="nbecho")

DEFAULT_PORT = 9999


class Options(usage.Options):
    """
    Options of C{twistd nbecho}.

    Errors end twistd with one line on standard error: twistd itself would
    print its whole help text above the message and bury it.
    """

    synopsis = "[options]"
    longdesc = (
        "An event-driven echo server (TCP, UNIX sockets, TLS, UDP): every "
        "message a client sends comes back to it. Listens on --port on all "
        "interfaces, IPv4 and IPv6, unless "
        "--listen gives endpoint strings (with --listen, --port or --interface "
        "given as well adds that TCP listener). Listeners get a listen backlog of "
        "1024 to 4096 (the kernel's somaxconn) unless their endpoint string "
        "gives its own backlog=."
    )
    optFlags = [
        ["quiet", "q", "Leave out the per-message log lines."],
    ]
    optParameters = [
        [
            "port",
            "p",
            None,
            f"TCP port to listen on, IPv4 and IPv6; 0 picks a free one "
            f"(default: {DEFAULT_PORT}, unless --listen is given).",
        ],
        [
            "interface",
            "i",
            None,
            "Address to listen on with --port (default: all, IPv4 and IPv6; "
            "0.0.0.0: all IPv4 ones only).",
        ],
        [
            "framing",
            None,
            "line",
            "line: messages end in LF or CRLF; raw: each "
            "chunk read is a message (binary-safe).",
        ],
        [
            "exit-word",
            None,
            None,
            "A message equal to this is echoed, then the connection closes "
            "(at most 1024 bytes, no line break; '' turns it off). "
            "Default: exit in line framing, none in raw framing.",
        ],
        [
            "max-line-length",
            None,
            "131072",
            "Longest line (terminator excluded) in line framing, at most "
            "1073741824 (1 GiB); a longer one closes the connection.",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics over HTTP on this endpoint "
            "(e.g. tcp:9100:interface=127.0.0.1); off by default.",
        ],
        [
            "metrics-max-connections",
            None,
            "10",
            "Most connections the metrics port holds at once (1-32: within "
            "the descriptors kept beside --max-connections); past it a "
            "newcomer closes the longest idle one, or is refused.",
        ],
        [
            "metrics-timeout",
            None,
            "10",
            "Seconds a metrics connection gets to send a whole request, "
            "from its start or its previous answer (1-3600).",
        ],
        [
            "log-format",
            None,
            "text",
            "text, or json: one JSON object per line, to twistd's --logfile "
            "or stdout (twistd's own --logger takes precedence).",
        ],
        *LIMIT_PARAMETERS,
        [
            "udp-rate",
            None,
            str(DEFAULT_RATE),
            "UDP echo: replies per second to one source address; 0: no limit.",
        ],
        [
            "udp-rate-total",
            None,
            str(DEFAULT_RATE_TOTAL),
            "UDP echo: replies per second in all; 0: no limit.",
        ],
        [
            "workers",
            None,
            "1",
            "Processes serving the same listening sockets (tcp:, tcp6:, unix:, "
            "systemd:), to use that many cores (1 to 256).",
        ],
        *FAULT_PARAMETERS,
    ]
    compData = usage.Completions(
        optActions={
            "framing": usage.CompleteList(sorted(FRAMINGS)),
            "log-format": usage.CompleteList(LOG_FORMATS),
        }
    )

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        Listen on endpoint (tcp:, udp:, unix:, ssl:...) and --port if given; repeatable.
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_version(self) -> None:
        """
        Display nbecho's version (and Twisted's) and exit.
        """
        import twisted

        print(f"nbecho {__version__} (Twisted {twisted.__version__})")
        sys.exit(0)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        self["argv"] = list(options) if options is not None else sys.argv[1:]
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            raise SystemExit(
                f"twistd nbecho: {error} (see: twistd nbecho --help)"
            ) from None

    def postOptions(self) -> None:
        # --port or --interface given with --listen adds the TCP listener
        # they name: nothing on the command line is ignored.
        tcp = not self["listen"] or self["port"] is not None or self["interface"]
        port = number(
            "port",
            self["port"] if self["port"] is not None else str(DEFAULT_PORT),
            0,
            65535,
        )
        self["interface"] = self["interface"] or ""
        if self["framing"] not in FRAMINGS:
            raise usage.UsageError(
                f"--framing takes one of {', '.join(sorted(FRAMINGS))}, "
                f"not {self['framing']!r}"
            )
        maxLineLength = number(
            "max-line-length", self["max-line-length"], 1, MAX_LINE_LENGTH
        )
        self["settings"] = EchoSettings(
            framing=self["framing"],
            exitWord=exitWord(self["exit-word"], self["framing"], maxLineLength),
            quiet=bool(self["quiet"]),
            maxLineLength=maxLineLength,
            idleTimeout=seconds("idle-timeout", self["idle-timeout"]),
            maxConnections=number("max-connections", self["max-connections"], 0),
            maxPerPeer=number("max-per-peer", self["max-per-peer"], 0),
            shutdownGrace=seconds("shutdown-grace", self["shutdown-grace"]),
            logRate=number("log-rate", self["log-rate"], 0, LOG_RATE_CEILING),
            logRateTotal=number(
                "log-rate-total", self["log-rate-total"], 0, LOG_RATE_CEILING
            ),
            logConnectionRate=number(
                "log-connection-rate",
                self["log-connection-rate"],
                0,
                LOG_RATE_CEILING,
            ),
            logConnectionRateTotal=number(
                "log-connection-rate-total",
                self["log-connection-rate-total"],
                0,
                LOG_RATE_CEILING,
            ),
            proxyTimeout=seconds("proxy-timeout", self["proxy-timeout"]),
        )
        useFastTextLog(self)
        checkLogDestination(self)
        self["udp"] = _udpListeners(self)
        self["workers"] = checkWorkers(self["workers"], self["listen"])
        self["settings"] = shareLimits(self["settings"], self["workers"])
        self["faults"] = faultPlan(self, self["workers"])
        # (option, name for the Ready? line and the log, endpoint string).
        listeners = [("--listen", each, each) for each in self["listen"]]
        if tcp:
            listeners[:0] = [
                ("--port", name, description)
                for description, name in defaultListeners(port, self["interface"])
            ]
            self["listen"] = [description for _, _, description in listeners]
        self["listeners"] = [
            listener for listener in listeners if not isUDP(listener[2])
        ]
        # Every endpoint string checked now, on a reactor that never
        # listens: makeService builds them again on the real one.
        buildEndpoints(self, MemoryReactor())
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(
                f"--log-format takes one of {', '.join(LOG_FORMATS)}, "
                f"not {self['log-format']!r}"
            )
        self["metricsLimits"] = (
            number("metrics-max-connections", self["metrics-max-connections"], 1, 32),
            _metricsTimeout(self["metrics-timeout"]),
        )
        if self["metrics"] is not None:
            _requireMetrics()
            _metricsEndpoint(MemoryReactor(), self["metrics"])


def buildEndpoints(
    options: Options, reactor: object
) -> list[tuple[str, IStreamServerEndpoint]]:
    """
    The stream endpoints the options name, each with its name for the
    C{Ready?} line, made ready to listen on (TLS contexts built, backlogs
    added).

    @raise twisted.python.usage.UsageError: for an endpoint string that
        cannot work.
    @raise SystemExit: with one line, for a TLS file OpenSSL refuses.
    """
    backlog = listenBacklog()
    endpoints = []
    for option, name, description in options["listeners"]:
        where = f"{option} {shown(description, 200)}"
        try:
            endpoint = listenOn(reactor, description, backlog)
        except TLSRefusedError as error:
            # Not a usage error: the option is right, the file is not.
            raise SystemExit(f"twistd nbecho: {where}: {error}") from None
        except EndpointError as error:
            raise usage.UsageError(f"{where}: {error}") from None
        endpoints.append((name, endpoint))
    return endpoints


def _udpListeners(options: Options) -> list[str]:
    """
    The C{udp:} descriptions among C{--listen}, checked, with their limits
    in C{options["udpLimits"]}.  Worker processes would each keep limits of
    their own, so C{--workers} refuses them.
    """
    options["udpLimits"] = UDPLimits(
        perSource=number("udp-rate", options["udp-rate"], 0),
        total=number("udp-rate-total", options["udp-rate-total"], 0),
    )
    found = [description for description in options["listen"] if isUDP(description)]
    for description in found:
        parseUDPListener(description)
    if found and checkWorkers(options["workers"], []) > 1:
        raise usage.UsageError(
            f"--workers cannot share {found[0]!r}: serve UDP with one process"
        )
    return found


def _metricsTimeout(text: str) -> float:
    value = seconds("metrics-timeout", text)
    if not 1 <= value <= 3600:
        raise usage.UsageError(
            f"--metrics-timeout takes a number of seconds from 1 to 3600, "
            f"not {shown(text)}"
        )
    return value


def _requireMetrics() -> None:
    problem = missingExtra("--metrics", "metrics")
    if problem is not None:
        raise usage.UsageError(problem)


def _metricsEndpoint(reactor: object, description: str) -> IStreamServerEndpoint:
    try:
        # Twisted's default backlog: a scraper connects now and then.
        return listenOn(reactor, description, backlog=None)
    except EndpointError as error:
        raise usage.UsageError(
            f"--metrics {shown(description, 200)}: {error}"
        ) from None


def makeService(options: Options) -> IService:
    """
    The echo server on every endpoint, with the metrics, the JSON log and
    the worker processes the options ask for.

    Unless twistd was given C{--reactor}, the reactor is Twisted's epoll
    reactor with cheaper event dispatch (C{installEchoReactor}).
    """
    installEchoReactor()
    from twisted.internet import reactor

    endpoints = buildEndpoints(options, reactor)
    log.info("nbecho {version} starting up", version=__version__)
    server = buildServer(options["settings"], endpoints)
    server.handleSignals = True
    installFaults(server.factory, options["faults"])
    service: MultiService = server
    if options["log-format"] == "json":
        destination = logDestination(getattr(options, "parent", None))
        settings = options["settings"]
        limited = bool(settings.logConnectionRate or settings.logConnectionRateTotal)
        observer = TwistedAcceptLines(JSONLinesObserver(destination), limited, reactor)
        service = JSONLoggingService(observer)
        server.setServiceParent(service)
    udp = [pair for each in options["udp"] for pair in udpListeners(each)]
    addUDP(server, udp, options["udpLimits"])
    pool = addWorkers(server, options["workers"])
    if options["metrics"] is not None:
        from nbecho.deploy.metrics import addMetrics

        endpoint = _metricsEndpoint(reactor, options["metrics"])
        addMetrics(
            server, options["metrics"], endpoint, pool, *options["metricsLimits"]
        )
    # Before twistd forks a daemon: a failure must reach the terminal.
    listenBeforeStart([service])
    return service
