"""
Endpoint strings as an operator writes them, made ready to listen on.

Twisted's parsers turn C{--listen} strings into endpoints; this module adds
what nbecho expects of every listener and what the parsers leave to the
caller:

  - a listen backlog that absorbs bursts of connections, added to the string
    as C{backlog=} unless the string gives its own (Twisted's default of 50
    makes the kernel drop connection attempts during a burst, and the
    clients retry only after a second or more);
  - the default listener of C{--port}: one dual-stack socket serving IPv4
    and IPv6 where the machine allows it;
  - a TLS context checked once, at start-up, rather than by every
    connection;
  - errors in words, naming what is wrong, instead of the parsers' own
    exceptions.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

from nbecho._extras import missingExtra
from nbecho._tls import isOpenSSLError, openSSLReasons
from nbecho._twisted import endpointArguments, serverContextFactory
from nbecho.deploy.proxy import PREFIX as PROXY_PREFIX
from nbecho.deploy.proxy import proxiedFromString

#: The smallest listen backlog nbecho asks for.
BACKLOG_MIN = 1024
#: The largest listen backlog nbecho asks for unless told otherwise.
BACKLOG_MAX = 4096
#: Where Linux says how long a listen queue it allows (longer requests are
#: cut to this).
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")

#: Endpoint types whose parser takes C{backlog=}.
_BACKLOG_KINDS = ("tcp", "tcp6", "unix", "ssl")
#: Endpoint types whose first argument is a TCP port.
_PORT_KINDS = ("tcp", "tcp6", "ssl")
#: The longest UNIX socket path the kernel accepts, in bytes.
_UNIX_PATH_MAX = 107


class EndpointError(ValueError):
    """
    An endpoint string that cannot work, with the reason in words.
    """


class TLSRefusedError(EndpointError):
    """
    OpenSSL refuses the certificate or key of a TLS endpoint: the string is
    right, the file is not.
    """


def listenBacklog(somaxconn: Path = SOMAXCONN) -> int:
    """
    The backlog for listeners without their own: the kernel's own ceiling
    (C{somaxconn}), kept from L{BACKLOG_MIN} to L{BACKLOG_MAX}.
    """
    try:
        kernel = int(somaxconn.read_text().strip())
    except (OSError, ValueError):
        kernel = BACKLOG_MIN
    return max(BACKLOG_MIN, min(kernel, BACKLOG_MAX))


def _unwrap(description: str) -> tuple[str, str]:
    """
    Split off the C{haproxy:} prefix, which wraps an endpoint string.
    """
    if description.startswith(PROXY_PREFIX):
        return PROXY_PREFIX, description[len(PROXY_PREFIX) :]
    return "", description


def _arguments(description: str) -> tuple[list[str], dict[str, str]] | None:
    """
    The positional and keyword arguments of C{description} as Twisted reads
    them, or C{None} if Twisted cannot (the parser then says why).
    """
    try:
        return endpointArguments(description)
    except Exception:  # noqa: BLE001 - a lone trailing backslash and the like
        return None


def withBacklog(description: str, backlog: int) -> str:
    """
    C{description} with C{backlog=BACKLOG} added, if its endpoint type takes
    one and it gives none of its own; otherwise unchanged.

    The result is checked by reading it back: whatever the escapes in
    C{description}, the only difference Twisted sees is the backlog.
    """
    prefix, inner = _unwrap(description)
    parsed = _arguments(inner)
    if parsed is None:
        return description
    args, kw = parsed
    if not args or args[0].lower() not in _BACKLOG_KINDS or "backlog" in kw:
        return description
    candidate = f"{inner}:backlog={backlog}"
    if _arguments(candidate) != (args, {**kw, "backlog": str(backlog)}):
        return description
    return prefix + candidate


def probeIPv6() -> bool | None:
    """
    How this machine does IPv6: C{True} if an IPv6 socket on C{::} also
    serves IPv4 (dual stack, Linux's default), C{False} if it serves IPv6
    only, C{None} if there is no IPv6.
    """
    if not socket.has_ipv6:
        return None
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::", 0))
            return not probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    except OSError:
        return None


def defaultListeners(
    port: int, interface: str, ipv6: Callable[[], bool | None] | None = None
) -> list[tuple[str, str]]:
    """
    The listeners of C{--port} and C{--interface}: pairs of an endpoint
    string and the name the C{Ready?} line gives it.

    Without an interface, "all interfaces" means IPv4 and IPv6: one
    dual-stack socket on C{::} where the kernel allows it, an IPv6 and an
    IPv4 socket where IPv6 sockets are IPv6-only, IPv4 alone where there is
    no IPv6.

    @param ipv6: how to find out what the machine does (L{probeIPv6}).
    """
    if interface:
        description = f"tcp:{port}:interface={quoteStringArgument(interface)}"
        return [(description, description)]
    stack = (ipv6 or probeIPv6)()
    if stack is None:
        return [(f"tcp:{port}", f"tcp:{port}, IPv4 only: no IPv6 on this machine")]
    if stack:
        return [(f"tcp6:{port}", f"tcp6:{port}, IPv4 and IPv6")]
    return [
        (f"tcp6:{port}", f"tcp6:{port}, IPv6"),
        (f"tcp:{port}", f"tcp:{port}, IPv4"),
    ]


def udpListeners(
    description: str, ipv6: Callable[[], bool | None] | None = None
) -> list[tuple[str, str]]:
    """
    The sockets of a C{udp:} listener: pairs of a C{udp:} description with
    its interface given, and the name the C{Ready?} line gives it.

    Without C{interface=}, C{udp:PORT} serves IPv4 and IPv6 as C{--port}
    does (L{defaultListeners}): one dual-stack socket on C{::}, or an IPv6
    and an IPv4 socket where IPv6 sockets are IPv6-only.
    """
    parsed = _arguments(description)
    if parsed is None or "interface" in parsed[1] or len(parsed[0]) != 2:
        return [(description, description)]
    port = parsed[0][1]
    stack = (ipv6 or probeIPv6)()
    if stack is None:
        return [(description, f"{description}, IPv4 only: no IPv6 on this machine")]
    anyIPv6 = f"udp:{port}:interface={quoteStringArgument('::')}"
    if stack:
        return [(anyIPv6, f"{description}, IPv4 and IPv6")]
    return [
        (anyIPv6, f"{description}, IPv6"),
        (f"udp:{port}:interface=0.0.0.0", f"{description}, IPv4"),
    ]


def _number(text: str, low: int, high: int) -> bool:
    return text.isascii() and text.isdigit() and low <= int(text) <= high


def _precheck(description: str) -> None:
    """
    Refuse in words what Twisted's parsers would refuse with a bare
    C{ValueError} or only once listening: a port or backlog that is no
    number, a UNIX socket path that cannot be created.
    """
    parsed = _arguments(_unwrap(description)[1])
    if parsed is None:
        raise EndpointError("cannot read it: a backslash must escape a character")
    args, kw = parsed
    kind = args[0].lower() if args else ""
    if kind == "ssl":
        problem = missingExtra("ssl:", "tls")
        if problem is not None:
            raise EndpointError(problem)
    if kind in _PORT_KINDS:
        if len(args) < 2:
            raise EndpointError(f"{kind}: needs a port number, as in {kind}:9999")
        if not _number(args[1], 0, 65535):
            raise EndpointError(
                f"the port must be a number from 0 to 65535, not {args[1]!r}"
            )
    if kind in _BACKLOG_KINDS and "backlog" in kw:
        if not _number(kw["backlog"], 1, 65535):
            raise EndpointError(
                f"backlog= must be a number from 1 to 65535, not {kw['backlog']!r}"
            )
    if kind == "unix":
        if len(args) < 2 or not args[1]:
            raise EndpointError("unix: needs a socket path, as in unix:/run/echo.sock")
        _checkSocketPath(args[1])


def _checkSocketPath(path: str) -> None:
    if path.startswith(("\0", "@")):
        return  # Linux's abstract namespace: no file
    if len(os.fsencode(path)) > _UNIX_PATH_MAX:
        raise EndpointError(
            f"the socket path {path} is too long (at most {_UNIX_PATH_MAX} bytes)"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(directory):
        raise EndpointError(f"the directory of {path} does not exist")
    if not os.path.isdir(directory):
        raise EndpointError(f"{directory} is not a directory, so {path} cannot be")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise EndpointError(
            f"cannot create {path}: no permission to write to {directory}"
        )
    if os.path.isdir(path):
        raise EndpointError(f"{path} is a directory, not a socket")
    if os.path.lexists(path) and not stat.S_ISSOCK(os.lstat(path).st_mode):
        # Twisted replaces a stale socket, but would fail on any other file
        # with "Address already in use".
        raise EndpointError(f"{path} exists and is not a socket")


def _inWords(description: str, error: Exception) -> str:
    """
    What a parser's exception means, in words.
    """
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return f"cannot read{where}: {error.strerror or error}"
    if isOpenSSLError(error):
        reasons = openSSLReasons(error)
        return f"not a PEM certificate and key OpenSSL can read: {reasons}"
    message = str(error)
    if message.startswith("Unknown endpoint type"):
        kind = description.split(":", 1)[0]
        return f"unknown endpoint type {kind!r} (tcp:, tcp6:, unix:, ssl:, ...)"
    if isinstance(error, TypeError) and "unexpected keyword argument" in message:
        name = message.rsplit(" ", 1)[-1].strip("'")
        kind = _unwrap(description)[1].split(":", 1)[0]
        return f"{kind}: endpoints take no option {name}="
    if isinstance(error, TypeError) and "missing" in message:
        return "an argument is missing"
    systemd = _systemdProblem(description, error)
    return systemd or message or type(error).__name__


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


def listenOn(
    reactor: Any, description: str, backlog: int | None = None
) -> IStreamServerEndpoint:
    """
    The endpoint of C{description} (a C{haproxy:} one included), with
    C{backlog} unless the string has its own, its TLS context checked.

    @raise EndpointError: C{description} cannot work; the message says why.
    """
    _precheck(description)
    if backlog is not None:
        description = withBacklog(description, backlog)
    try:
        endpoint: IStreamServerEndpoint = proxiedFromString(
            reactor, description
        ) or serverFromString(reactor, description)
    except Exception as error:  # noqa: BLE001 - parsers raise anything
        refused = TLSRefusedError if isOpenSSLError(error) else EndpointError
        raise refused(_inWords(description, error)) from None
    _checkTLS(description, endpoint)
    return endpoint


def _checkTLS(description: str, endpoint: IStreamServerEndpoint) -> None:
    """
    Build the TLS context of an C{ssl:} endpoint now: a certificate or key
    that OpenSSL refuses would otherwise fail every connection.
    """
    inner = getattr(endpoint, "wrapped", endpoint)
    contextFactory = serverContextFactory(inner)
    if contextFactory is None:
        return
    try:
        contextFactory.getContext()
    except Exception as error:
        if not isOpenSSLError(error):
            raise
        parsed = _arguments(_unwrap(description)[1])
        kw = parsed[1] if parsed else {}
        key = kw.get("privateKey", "server.pem")
        certificate = kw.get("certKey", key)
        files = (
            f"the certificate and key in {certificate}"
            if certificate == key
            else f"the certificate {certificate} with the key {key}"
        )
        raise TLSRefusedError(
            f"OpenSSL refuses {files}: {openSSLReasons(error)}"
        ) from None
