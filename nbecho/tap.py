"""
The C{twistd nbecho} command line: options in, a running service out.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.python import usage

from nbecho._errors import inWords
from nbecho.deploy.proxy import proxiedFromString
from nbecho.deploy.udp import (
    DEFAULT_RATE,
    DEFAULT_RATE_TOTAL,
    UDPLimits,
    addUDP,
    isUDP,
    parseUDP,
)
from nbecho.deploy.workers import addWorkers, checkWorkers, shareLimits
from nbecho.listening import listenBeforeStart
from nbecho.logs.jsonlog import (
    LOG_FORMATS,
    JSONLinesObserver,
    JSONLoggingService,
)
from nbecho.logs.textlog import logDestination, useFastTextLog
from nbecho.service import buildServer
from nbecho.settings import (
    FRAMINGS,
    LOG_RATE_CEILING,
    MAX_LINE_LENGTH_CEILING,
    EchoSettings,
)

DEFAULT_PORT = 9999


def _number(option: str, text: str, low: int, high: int | None = None) -> int:
    # Plain ASCII digits only: int() would also take "1_000" and other
    # scripts' digits.
    value = int(text) if text.isascii() and text.isdigit() else None
    if value is None or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise usage.UsageError(f"--{option} takes a number {span}, not {text!r}")
    return value


def _seconds(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise usage.UsageError(f"--{option} takes a number of seconds, not {text!r}")
    return value


def _timeout(option: str, text: str) -> float:
    # Below a tenth of a second, a timeout would close connections at once.
    value = _seconds(option, text)
    if 0 < value < 0.1:
        raise usage.UsageError(
            f"--{option} takes 0 or at least 0.1 seconds, not {text!r}"
        )
    return value


#: The limits' options (L{nbecho.factory}, L{nbecho.connection},
#: L{nbecho.service}), in one block.
_LIMIT_PARAMETERS = [
    [
        "idle-timeout",
        None,
        "300",
        "Close a connection that sent nothing for this many seconds; 0: never.",
    ],
    [
        "max-connections",
        None,
        "10000",
        "Refuse connections beyond this many open ones; 0: no limit.",
    ],
    [
        "max-per-peer",
        None,
        "0",
        "Refuse connections beyond this many open ones from one client IP; "
        "0: no limit.",
    ],
    [
        "log-rate",
        None,
        "100",
        "Log at most this many messages a second per connection, and "
        "summarise the rest; 0: no limit.",
    ],
    [
        "log-rate-total",
        None,
        "1000",
        "Log at most this many messages a second from all connections "
        "together, and summarise the rest; 0: no limit.",
    ],
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
        "proxy-timeout",
        None,
        "5",
        "Close a haproxy: connection that has not sent its whole PROXY header "
        "this many seconds after connecting; 0: only --idle-timeout applies.",
    ],
    [
        "shutdown-grace",
        None,
        "5",
        "On SIGTERM/SIGINT, seconds open connections get to receive their "
        "echoes before they are cut.",
    ],
]


class Options(usage.Options):
    """
    Options of C{twistd nbecho}.

    Errors end twistd with one line on standard error: twistd itself would
    print its whole help text above the message and bury it.
    """

    synopsis = "[options]"
    longdesc = (
        "An event-driven TCP echo server: every message a client sends comes "
        "back to it. Listens on --port (all interfaces) unless --listen gives "
        "endpoint strings."
    )
    optFlags = [
        ["quiet", "q", "Leave out the per-message log lines."],
    ]
    optParameters = [
        ["port", "p", str(DEFAULT_PORT), "TCP port to listen on; 0 picks a free one."],
        ["interface", "i", "", "Address to listen on with --port (default: all)."],
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
            "exit",
            "A message equal to this is echoed, then the "
            "connection closes; '' turns it off.",
        ],
        [
            "max-line-length",
            None,
            "65536",
            "Longest line (terminator excluded) in "
            "line framing; a longer one closes the connection.",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics over HTTP on this endpoint "
            "(e.g. tcp:9100:interface=127.0.0.1); off by default.",
        ],
        [
            "log-format",
            None,
            "text",
            "text, or json: one JSON object per line, to twistd's --logfile "
            "or stdout (twistd's own --logger takes precedence).",
        ],
        *_LIMIT_PARAMETERS,
        [
            "workers",
            None,
            "1",
            "Processes serving the same listening sockets (tcp:, tcp6:, unix:, "
            "systemd:), to use that many cores.",
        ],
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
        Listen on endpoint (tcp:, udp:, unix:, ssl:...) instead of --port; repeatable.
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        self["argv"] = list(options) if options is not None else sys.argv[1:]
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            raise SystemExit(
                f"twistd nbecho: {error} (see: twistd nbecho --help)"
            ) from None

    def postOptions(self) -> None:
        port = _number("port", self["port"], 0, 65535)
        if self["framing"] not in FRAMINGS:
            raise usage.UsageError(
                f"--framing takes one of {', '.join(sorted(FRAMINGS))}, "
                f"not {self['framing']!r}"
            )
        self["settings"] = EchoSettings(
            framing=self["framing"],
            # The bytes given on the command line, UTF-8 or not.
            exitWord=os.fsencode(self["exit-word"]),
            quiet=bool(self["quiet"]),
            maxLineLength=_number(
                "max-line-length", self["max-line-length"], 1, MAX_LINE_LENGTH_CEILING
            ),
            idleTimeout=_seconds("idle-timeout", self["idle-timeout"]),
            maxConnections=_number("max-connections", self["max-connections"], 0),
            maxPerPeer=_number("max-per-peer", self["max-per-peer"], 0),
            shutdownGrace=_seconds("shutdown-grace", self["shutdown-grace"]),
            logRate=_number("log-rate", self["log-rate"], 0, LOG_RATE_CEILING),
            logRateTotal=_number(
                "log-rate-total", self["log-rate-total"], 0, LOG_RATE_CEILING
            ),
            proxyTimeout=_timeout("proxy-timeout", self["proxy-timeout"]),
        )
        useFastTextLog(self)
        self["udp"] = _udpListeners(self)
        self["workers"] = checkWorkers(self["workers"], self["listen"])
        self["settings"] = shareLimits(self["settings"], self["workers"])
        if not self["listen"]:
            description = f"tcp:{port}"
            if self["interface"]:
                description += ":interface=" + quoteStringArgument(self["interface"])
            self["listen"] = [description]
        from twisted.internet import reactor

        self["endpoints"] = []
        for description in self["listen"]:
            if isUDP(description):
                continue
            try:
                endpoint = proxiedFromString(reactor, description) or serverFromString(
                    reactor, description
                )
            except Exception as error:  # noqa: BLE001 - parsers raise anything
                why = _systemdProblem(description, error) or inWords(error, description)
                raise usage.UsageError(
                    f"cannot use endpoint {description!r}: {why}"
                ) from None
            self["endpoints"].append((description, endpoint))
        if self["log-format"] not in LOG_FORMATS:
            raise usage.UsageError(
                f"--log-format takes one of {', '.join(LOG_FORMATS)}, "
                f"not {self['log-format']!r}"
            )
        if self["metrics"] is not None:
            self["metricsEndpoint"] = _metricsEndpoint(reactor, self["metrics"])


def _udpListeners(options: Options) -> list[str]:
    """
    The C{udp:} descriptions among C{--listen}, checked, with their limits
    in C{options["udpLimits"]}.  Worker processes would each keep limits of
    their own, so C{--workers} refuses them.
    """
    options["udpLimits"] = UDPLimits(
        perSource=_number("udp-rate", options["udp-rate"], 0),
        total=_number("udp-rate-total", options["udp-rate-total"], 0),
    )
    found = [description for description in options["listen"] if isUDP(description)]
    for description in found:
        parseUDP(description)
    if found and checkWorkers(options["workers"], []) > 1:
        raise usage.UsageError(
            f"--workers cannot share {found[0]!r}: serve UDP with one process"
        )
    return found


def _systemdProblem(description: str, error: Exception) -> str | None:
    """
    Name what is missing when a C{systemd:} endpoint finds no socket: the
    parser's own error is a bare C{IndexError} or C{KeyError}.
    """
    if description.startswith("systemd:") and isinstance(error, (IndexError, KeyError)):
        which = str(error) if isinstance(error, KeyError) else "0"
        for argument in description.split(":")[1:]:
            if argument.startswith("index="):
                which = argument[len("index=") :]
        return f"no socket {which} inherited from systemd (LISTEN_FDS, LISTEN_FDNAMES)"
    return None


def _metricsEndpoint(reactor: object, description: str) -> IStreamServerEndpoint:
    try:
        import nbecho.deploy.metrics  # noqa: F401 - needs the optional prometheus_client
    except ImportError as error:
        raise usage.UsageError(
            f"--metrics needs {error.name}: pip install 'nbecho[metrics]'"
        ) from None
    try:
        return serverFromString(reactor, description)
    except Exception as error:  # noqa: BLE001 - parsers raise anything
        raise usage.UsageError(
            f"cannot use --metrics endpoint {description!r}: {error}"
        ) from None


def makeService(options: Options) -> IService:
    """
    The echo server on every endpoint, with the metrics, the JSON log and
    the worker processes the options ask for.
    """
    server = buildServer(options["settings"], options["endpoints"])
    server.handleSignals = True
    service: MultiService = server
    if options["log-format"] == "json":
        destination = logDestination(getattr(options, "parent", None))
        service = JSONLoggingService(JSONLinesObserver(destination))
        server.setServiceParent(service)
    addUDP(server, options["udp"], options["udpLimits"])
    pool = addWorkers(server, options["workers"])
    if options["metrics"] is not None:
        from nbecho.deploy.metrics import addMetrics

        addMetrics(server, options["metrics"], options["metricsEndpoint"], pool)
    # Before twistd forks a daemon: a failure must reach the terminal.
    listenBeforeStart([service])
    return service
