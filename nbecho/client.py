"""
The interactive client: the seed's C{send server} loop, on Twisted.

Lines typed (or piped) on standard input go to the server; each echoed line
is printed on standard output.  Reading stdin stops while the socket is
backed up and reading the socket stops while stdout is, so C{seq 1 100000 |
nbecho-client} runs in bounded memory and prints every line.

Exit status: 0 after C{exit} or the end of input once every echo is printed;
1 when the server cannot be reached; 2 for a usage error; 3 when the
connection is lost or the server closes it before the session ends.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    clientFromString,
    quoteStringArgument,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IHandshakeListener,
    IReactorCore,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.stdio import StandardIO
from twisted.internet.task import react
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from nbecho._typing import IStreamTransport

PROMPT = b'send server (exit is "exit"): '

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
EXIT_LOST = 3


class SessionLostError(Exception):
    """
    The connection ended before the session did.
    """


@implementer(IHandshakeListener)
class EchoClient(LineReceiver):
    """
    The connection to the server: hand each echoed line to the console.

    Over TLS the session starts only once the handshake has verified the
    server, so that a wrong certificate is reported as such, before any
    input is read.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024
    console: Console | None = None
    transport: IStreamTransport

    def __init__(self) -> None:
        self.secured: Deferred[None] = Deferred()

    def handshakeCompleted(self) -> None:
        self.secured.callback(None)

    def lineReceived(self, line: bytes) -> None:
        assert self.console is not None
        self.console.echoed(line + b"\n")

    def lineLengthExceeded(self, line: bytes) -> None:
        assert self.console is not None
        self.console.fail(f"echoed line longer than {self.MAX_LENGTH} bytes")
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.console is None:
            if not self.secured.called:
                self.secured.errback(reason)
            return
        rest = self.clearLineBuffer()
        if rest:
            self.console.echoed(rest)
        self.console.serverGone(reason)


@implementer(IHalfCloseableProtocol)
class Console(LineReceiver):
    """
    Standard input and output: send each input line, print each echo.

    The session ends after C{exit} is sent or input ends; the client then
    stops sending, half-closes the socket and waits for the server to echo
    the rest and close.
    """

    delimiter = b"\n"
    MAX_LENGTH = 16 * 1024 * 1024

    transport: IStreamTransport

    def __init__(self, server: EchoClient, done: Deferred[None], prompt: bool) -> None:
        self.server = server
        self.done = done
        self.prompt = prompt
        self.sending = True
        self.pending = 0
        self.error: str | None = None
        # TLS in Twisted cannot half-close: the client's close_notify ends
        # the session for the server.  So over TLS the client closes once
        # every line it sent has been echoed, and a last unterminated line is
        # sent with a newline that is then left out of its echo.
        self.tls = _overTLS(server.transport)
        self.unterminated = False

    def connectionMade(self) -> None:
        server = self.server.transport
        server.registerProducer(self.transport, True)
        self.transport.registerProducer(server, True)
        self.showPrompt()

    def showPrompt(self) -> None:
        if self.prompt and self.sending and not self.pending:
            self.transport.write(PROMPT)

    def lineReceived(self, line: bytes) -> None:
        if not self.sending:
            return
        self.pending += 1
        self.server.sendLine(line)
        if line.rstrip(b"\r") == b"exit":
            self.finishSending()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.fail(f"input line longer than {self.MAX_LENGTH} bytes")
        self.server.transport.abortConnection()

    def readConnectionLost(self) -> None:
        """
        End of input: a last line without a newline is still sent.
        """
        rest = self.clearLineBuffer()
        if rest and self.sending:
            if self.tls:
                self.unterminated = True
                self.pending += 1
                rest += b"\n"
            self.server.transport.write(rest)
        self.finishSending()

    def writeConnectionLost(self) -> None:
        self.server.transport.abortConnection()

    def finishSending(self) -> None:
        if not self.sending:
            return
        self.sending = False
        self.transport.pauseProducing()
        server = self.server.transport
        server.unregisterProducer()
        if not self.tls:
            server.loseWriteConnection()
        elif not self.pending:
            server.loseConnection()

    def echoed(self, data: bytes) -> None:
        self.pending = max(0, self.pending - 1)
        if self.tls and not self.sending and not self.pending:
            # Every line sent has come back: only now may TLS close_notify go
            # out, as the server stops reading when it arrives.
            if self.unterminated and data.endswith(b"\n"):
                data = data[:-1]
            self.server.transport.loseConnection()
        self.transport.write(data)
        self.showPrompt()

    def fail(self, error: str) -> None:
        if self.error is None:
            self.error = error

    def serverGone(self, reason: Failure) -> None:
        if self.error is None:
            if not reason.check(ConnectionDone):
                self.error = f"connection lost: {reason.getErrorMessage()}"
            elif self.sending:
                # Twisted calls this "closed cleanly"; to the user the server
                # went away in the middle of the session.
                self.error = "the server closed the connection mid-session"
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.error is None:
            self.done.callback(None)
        else:
            self.done.errback(SessionLostError(self.error))


class Options(usage.Options):
    synopsis = "[--host H] [--port P] [--connect ENDPOINT]"
    longdesc = (
        "Send each line of standard input to an nbecho server and print each "
        'echoed line; "exit" or the end of input ends the session.'
    )
    optParameters = [
        ["host", "h", "127.0.0.1", "Server host name or address."],
        ["port", "p", "9999", "Server TCP port."],
        [
            "connect",
            "c",
            None,
            "Twisted client endpoint string (tcp:, unix:, "
            "tls:, ...); replaces --host and --port.",
        ],
        [
            "ca",
            None,
            None,
            "PEM file of the certificate authority to trust for a tls: "
            "endpoint instead of the system's; the host name is still checked.",
        ],
    ]

    def postOptions(self) -> None:
        try:
            port = int(self["port"])
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise usage.UsageError(
                f"--port takes a number from 1 to 65535, not {self['port']!r}"
            )
        self["port"] = port
        if self["ca"] is not None and not (self["connect"] or "").startswith("tls:"):
            raise usage.UsageError("--ca needs --connect tls:host=HOST:port=PORT")

    def endpoint(self, reactor: IReactorCore) -> tuple[str, IStreamClientEndpoint]:
        """
        The endpoint to connect to and how to name it in an error.
        """
        if self["ca"] is not None:
            return self["connect"], _trusting(reactor, self["connect"], self["ca"])
        if self["connect"]:
            return self["connect"], clientFromString(reactor, self["connect"])
        host, port = self["host"], self["port"]
        name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, host, port)
        return name, endpoint


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
    try:
        name, endpoint = options.endpoint(reactor)
    except Exception as error:  # noqa: BLE001 - any parse error is a usage error
        raise _fatal(
            EXIT_USAGE, f"cannot use endpoint {options['connect']!r}: {error}"
        ) from None
    try:
        client = await endpoint.connect(Factory.forProtocol(EchoClient))
    except Exception as error:  # noqa: BLE001 - every failure ends the same way
        raise _fatal(
            EXIT_UNREACHABLE, f"cannot connect to {name}: {_describe(error)}"
        ) from None
    assert isinstance(client, EchoClient)
    if _overTLS(client.transport):
        try:
            await client.secured
        except Exception as error:  # noqa: BLE001 - any TLS failure
            raise _fatal(
                EXIT_UNREACHABLE, f"cannot connect to {name}: {_tlsProblem(error)}"
            ) from None
    # Nothing is read from the socket before this coroutine resumes: the
    # console is in place before the first echo can arrive.
    done: Deferred[None] = Deferred()
    client.console = Console(client, done, os.isatty(0))
    StandardIO(client.console, reactor=reactor)
    try:
        await done
    except SessionLostError as error:
        raise _fatal(EXIT_LOST, f"{name}: {error}") from None


def _overTLS(transport: object) -> bool:
    """
    Whether C{transport} is Twisted's TLS layer.

    Imported here rather than at the top: L{twisted.protocols.tls} needs
    pyOpenSSL, which only the C{tls} extra installs, and a plain C{pip
    install .} must give a client that works over TCP and UNIX sockets.
    """
    try:
        from twisted.protocols.tls import TLSMemoryBIOProtocol
    except ImportError:
        return False
    return isinstance(transport, TLSMemoryBIOProtocol)


def _tlsProblem(error: Exception) -> str:
    """
    One line for a failed TLS handshake: OpenSSL's reason, not its tuple.
    """
    if type(error).__name__ == "VerificationError":  # service_identity's
        return "TLS handshake failed: certificate does not match the host name"
    args = error.args[0] if error.args else None
    if isinstance(args, list) and args and isinstance(args[0], tuple):
        reasons = ", ".join(str(entry[-1]) for entry in args)
        return f"TLS handshake failed: {reasons}"
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
    except usage.UsageError as error:
        raise _fatal(EXIT_USAGE, f"{error} (see: nbecho-client --help)") from None
    react(lambda reactor: Deferred.fromCoroutine(session(reactor, options)))


if __name__ == "__main__":
    main()
