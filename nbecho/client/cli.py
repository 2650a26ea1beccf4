"""
The interactive client: the seed's C{send server} loop, on Twisted.

Lines typed (or piped) on standard input go to the server; each echoed line
is printed on standard output.  Reading stdin stops while the socket is
backed up and reading the socket stops while stdout is, so C{seq 1 100000 |
nbecho-client} runs in bounded memory and prints every line.

With C{--udp} each line goes out as one datagram and its echo is awaited,
sent again after C{--timeout} seconds up to C{--retries} times (see
C{nbecho.client.datagram}).

Exit status: 0 after the exit word or the end of input once every echo is
printed; 1 when the server cannot be reached (over UDP: no echo ever came
back); 2 for a usage error; 3 when the connection is lost or the server
closes it before the session ends or before every line sent is echoed (over
UDP: a line stayed unanswered).

Interrupted, it ends at once and silently: Ctrl-C (SIGINT) with status 130
after starting a new line on the terminal; SIGTERM and SIGHUP kill it as
they would C{cat} or C{nc} (status 143 and 129 in a shell); a closed standard
output (the reader of a pipe quit, as C{head} does) ends it as SIGPIPE ends
C{seq} (status 141 in a shell, nothing printed).  Before it ends it puts
standard input and output back in blocking mode: Twisted makes them
non-blocking, and a terminal left so would break the programs run after it.
"""

from __future__ import annotations

import getopt
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    clientFromString,
    quoteStringArgument,
)
from twisted.internet.interfaces import (
    IReactorCore,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.python import usage

from nbecho import __version__
from nbecho._extras import missingExtra
from nbecho._tls import isOpenSSLError, openSSLReasons
from nbecho.client._udpoptions import udpOptions, udpSession
from nbecho.client.datagram import ServerUnreachableError
from nbecho.client.stream import Console, EchoClient, overTLS
from nbecho.client.target import checkHost, connectHost, splitTarget
from nbecho.client.terminal import (
    OutputClosedError,
    SessionLostError,
    StdioModes,
    endBySignal,
    endingSignals,
    endOnSignals,
    prompt,
)

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
EXIT_LOST = 3


class Options(usage.Options):
    synopsis = "Usage: nbecho-client [options] [HOST [PORT] | HOST:PORT | PORT]"
    longdesc = (
        "Send each line of standard input to an nbecho server and print each "
        "echoed line; the exit word or the end of input ends the session.  "
        "HOST and PORT may be given as arguments, as to nc; a number alone is "
        "the port on 127.0.0.1, and an IPv6 address with a port is written "
        "[ADDRESS]:PORT."
    )
    optFlags = [
        [
            "udp",
            "u",
            "Send each line as one UDP datagram and wait for its echo, "
            "instead of over a TCP connection.",
        ],
    ]
    optParameters = [
        ["host", None, None, "Server host name or address (default: 127.0.0.1)."],
        ["port", "p", None, "Server port (default: 9999)."],
        [
            "connect",
            "c",
            None,
            "Twisted client endpoint string (tcp:, unix:, "
            "tls:, ...) instead of a host and port; udp:host=HOST:port=PORT "
            "for UDP.",
        ],
        [
            "ca",
            None,
            None,
            "PEM file of the certificate authority to trust for a tls: "
            "endpoint instead of the system's; the host name is still checked.",
        ],
        [
            "exit-word",
            None,
            "exit",
            "The server's exit word: sending it ends the session, and the "
            "prompt names it; '' for a server without one.",
        ],
        [
            "timeout",
            None,
            None,
            "Over UDP, the seconds to wait for each echo before sending the "
            "line again (default: 1).",
        ],
        [
            "retries",
            None,
            None,
            "Over UDP, how many times an unanswered line is sent again "
            "before the client gives up (default: 3).",
        ],
    ]

    #: The server's host and port over UDP, or C{None} for a stream.
    udpAddress: tuple[str, int] | None = None

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """
        Parse options wherever they are, as nc does: C{nbecho-client HOST
        PORT --exit-word bye} too.  Twisted stops at the first argument.
        """
        if options is None:
            options = sys.argv[1:]
        try:
            found, arguments = getopt.gnu_getopt(options, self.shortOpt, self.longOpt)
        except getopt.GetoptError as error:
            raise usage.UsageError(str(error)) from None
        ordered: list[str] = []
        for option, value in found:
            if option.startswith("--"):
                takesValue = f"{option[2:]}=" in self.longOpt
                ordered.append(f"{option}={value}" if takesValue else option)
            else:
                takesValue = f"{option[1]}:" in self.shortOpt
                ordered += [option, value] if takesValue else [option]
        super().parseOptions([*ordered, "--", *arguments])

    def opt_version(self) -> None:
        """
        Print nbecho's version and exit.
        """
        sys.stdout.write(f"nbecho-client (nbecho) {__version__}\n")
        sys.stdout.flush()
        sys.exit(0)

    def opt_help(self) -> None:
        """
        Print this help and exit.
        """
        super().opt_help()

    #: C{-h} prints help, as for nc and curl; the host is C{--host}.
    opt_h = opt_help

    def parseArgs(self, host: str | None = None, port: str | None = None) -> None:
        if port is None and host is not None:
            host, port = splitTarget(host)
        elif host is not None and not host.isdigit() and splitTarget(host)[1]:
            raise usage.UsageError(f"give the port once: {host!r} or {port!r}")
        for name, value in (("host", host), ("port", port)):
            if value is None:
                continue
            if self[name] is not None:
                raise usage.UsageError(f"give the {name} once: {value!r} or --{name}")
            self[name] = value

    def postOptions(self) -> None:
        if self["connect"] is not None:
            given = [f"--{name}" for name in ("host", "port") if self[name] is not None]
            if given:
                raise usage.UsageError(
                    f"--connect replaces the host and port: drop {' and '.join(given)}"
                )
        if self["host"] is None:
            self["host"] = "127.0.0.1"
        self["host"] = checkHost(self["host"])
        connectHost(self["connect"])
        try:
            port = int(self["port"] or "9999")
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise usage.UsageError(
                f"--port takes a number from 1 to 65535, not {self['port']!r}"
            )
        self["port"] = port
        if self["ca"] is not None and not (self["connect"] or "").startswith("tls:"):
            raise usage.UsageError("--ca needs --connect tls:host=HOST:port=PORT")
        if (self["connect"] or "").startswith("tls:"):
            problem = missingExtra("--connect tls:", "tls")
            if problem is not None:
                raise usage.UsageError(problem)
        self["exit-word"] = os.fsencode(self["exit-word"])
        if b"\n" in self["exit-word"]:
            raise usage.UsageError("--exit-word cannot hold a newline")
        self.udpAddress = udpOptions(self)

    def usableEndpoint(
        self, reactor: IReactorCore
    ) -> tuple[str, IStreamClientEndpoint]:
        """
        L{endpoint}, or a usage error (exit status 2) saying why it cannot
        be used.
        """
        try:
            return self.endpoint(reactor)
        except Exception as error:  # noqa: BLE001 - any parse error is a usage error
            raise _fatal(
                EXIT_USAGE, f"cannot use endpoint {self['connect']!r}: {error}"
            ) from None

    def endpoint(self, reactor: IReactorCore) -> tuple[str, IStreamClientEndpoint]:
        """
        The endpoint to connect to and how to name it in an error.
        """
        if self["ca"] is not None:
            return self["connect"], _trusting(reactor, self["connect"], self["ca"])
        if self["connect"]:
            return self["connect"], clientFromString(reactor, self["connect"])
        name = _name(self["host"], self["port"])
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            reactor, self["host"], self["port"]
        )
        return name, endpoint


def _name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _trusting(
    reactor: IReactorCore, description: str, caFile: str
) -> IStreamClientEndpoint:
    """
    The C{tls:} endpoint C{description}, trusting only the certificates in
    C{caFile}.

    The endpoint's own C{trustRoots=} takes a directory of C{.pem} files and
    loads it while parsing; a directory holding just C{caFile} keeps the
    parsing (and the host name check) Twisted's own.
    """
    if ":trustRoots=" in description:
        raise ValueError("give either --ca or trustRoots=, not both")
    with open(caFile, "rb") as pem:
        certificates = pem.read()
    if b"-----BEGIN CERTIFICATE-----" not in certificates:
        raise ValueError(f"--ca {caFile}: no PEM certificate in it")
    directory = tempfile.mkdtemp(prefix="nbecho-ca-")
    try:
        with open(os.path.join(directory, "ca.pem"), "wb") as copy:
            copy.write(certificates)
        return clientFromString(
            reactor, f"{description}:trustRoots={quoteStringArgument(directory)}"
        )
    finally:
        shutil.rmtree(directory)


async def session(reactor: IReactorCore, options: Options) -> None:
    """
    Connect, then relay standard input to the server until the session ends.
    """
    modes = StdioModes.save()
    reactor.callWhenRunning(endOnSignals, modes, endingSignals())
    if options.udpAddress is not None:
        return await _udp(reactor, options, modes)
    name, endpoint = options.usableEndpoint(reactor)
    try:
        client = await endpoint.connect(Factory.forProtocol(EchoClient))
    except Exception as error:  # noqa: BLE001 - every failure ends the same way
        raise _fatal(
            EXIT_UNREACHABLE, f"cannot connect to {name}: {_describe(error)}"
        ) from None
    assert isinstance(client, EchoClient)
    if overTLS(client.transport):
        try:
            await client.secured
        except Exception as error:  # noqa: BLE001 - any TLS failure
            raise _fatal(
                EXIT_UNREACHABLE, f"cannot connect to {name}: {_tlsProblem(error)}"
            ) from None
    # Nothing is read from the socket before this coroutine resumes: the
    # console is in place before the first echo can arrive.
    done: Deferred[None] = Deferred()
    exitWord = options["exit-word"]
    shown = prompt(exitWord) if os.isatty(0) else b""
    client.console = Console(client, done, shown, exitWord)
    StandardIO(client.console, reactor=reactor)
    with _ending(name, modes):
        await done


async def _udp(reactor: IReactorCore, options: Options, modes: StdioModes) -> None:
    """
    The session over UDP: the same prompt, exit word and endings.
    """
    assert options.udpAddress is not None
    host, port = options.udpAddress
    name = options["connect"] or f"{_name(host, port)} over UDP"
    exitWord = options["exit-word"]
    shown = prompt(exitWord) if os.isatty(0) else b""
    with _ending(name, modes):
        try:
            await udpSession(
                reactor,
                host,
                port,
                shown,
                exitWord,
                options["timeout"],
                options["retries"],
            )
        except ServerUnreachableError as error:
            raise _fatal(EXIT_UNREACHABLE, f"cannot reach {name}: {error}") from None


@contextmanager
def _ending(name: str, modes: StdioModes) -> Iterator[None]:
    """
    How a session ends, stream or datagram: the connection lost mid-session
    is exit status 3 with its reason, a closed standard output ends the
    client as SIGPIPE ends a filter, and stdio is put back either way.
    """
    try:
        yield
    except SessionLostError as error:
        raise _fatal(EXIT_LOST, f"{name}: {error}") from None
    except OutputClosedError:
        endBySignal(signal.SIGPIPE, modes)
    finally:
        modes.restore()


def _tlsProblem(error: Exception) -> str:
    """
    One line for a failed TLS handshake: OpenSSL's reason, not its tuple.
    """
    if type(error).__name__ == "VerificationError":  # service_identity's
        return "TLS handshake failed: certificate does not match the host name"
    if isOpenSSLError(error):
        return f"TLS handshake failed: {openSSLReasons(error)}"
    return f"TLS handshake failed: {_describe(error)}"


def _describe(error: Exception) -> str:
    return str(error).rstrip(".") or error.__class__.__name__


def _fatal(code: int, message: str) -> SystemExit:
    sys.stderr.write(f"nbecho-client: {message}\n")
    return SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """
    The C{nbecho-client} console script.
    """
    options = Options()
    try:
        options.parseOptions(argv)
    except BrokenPipeError:  # --help or --version into a closed pipe
        endBySignal(signal.SIGPIPE, StdioModes({}))
    except usage.UsageError as error:
        raise _fatal(EXIT_USAGE, f"{error} (see: nbecho-client --help)") from None
    # Until the session handles it, Ctrl-C kills the client quietly, without
    # Python's KeyboardInterrupt traceback; Twisted leaves such a SIGINT alone.
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    react(lambda reactor: Deferred.fromCoroutine(session(reactor, options)))


if __name__ == "__main__":
    main()
