"""
Why an endpoint could not be used, in words an operator reads on one line.

Twisted's and Python's own messages are written for programmers: C{[Errno
98]}, a UNIX socket's C{b'...'} lock file path with C{->} in it, OpenSSL's
error stack as a list of tuples.  The operator needs the reason, and the
file or address it concerns.
"""

from __future__ import annotations

import errno
import os

from twisted.internet.error import CannotListenError

from nbecho._tls import isOpenSSLError, openSSLReasons


def inWords(error: BaseException, shown: str = "") -> str:
    """
    The reason C{error} gives, without error numbers, byte strings or
    OpenSSL's error list.

    @param shown: what the line already says before the reason: a file
        name it ends with (C{unix:/run/echo.sock}) is not said twice.
    """
    if isinstance(error, CannotListenError):
        return _cannotListen(error, shown)
    if isinstance(error, OSError):
        return _osError(error, shown)
    if isOpenSSLError(error):
        return (
            "cannot read the certificate or private key: OpenSSL says "
            + openSSLReasons(error, libraries=True)
        )
    return str(error) or type(error).__name__


def inUse(error: BaseException, description: str, kind: str = "port") -> str | None:
    """
    The whole reason, in an operator's words, when C{error} says that the
    port or socket path of C{description} is taken: C{port 9999 is already
    in use (all interfaces, IPv4 and IPv6)}; L{None} for any other error.

    @param description: the listener as the C{Ready?} line names it: the
        default listeners say which families they cover after a comma
        (C{tcp6:9999, IPv4 and IPv6}).
    @param kind: C{"port"}, or C{"UDP port"}.
    """
    if not isinstance(error, CannotListenError):
        return None
    reason = error.socketError
    if error.port is None or isinstance(error.port, (bytes, str)):
        if reason == "Cannot acquire lock":
            path = os.fsdecode(error.port or description.partition(":")[2])
            return f"socket {path} is already in use by another running process"
        return None
    if not isinstance(reason, OSError) or reason.errno != errno.EADDRINUSE:
        return None
    families = description.partition(", ")[2].partition(":")[0]
    if error.interface in ("", "::", "0.0.0.0"):
        where = "all interfaces, " + (
            families or ("IPv6" if error.interface == "::" else "IPv4")
        )
        return f"{kind} {error.port} is already in use ({where})"
    return f"{kind} {error.port} is already in use on {error.interface}"


def _cannotListen(error: CannotListenError, shown: str) -> str:
    reason = error.socketError
    if isinstance(reason, BaseException):
        words = inWords(reason, shown)
    elif reason == "Cannot acquire lock":
        # twisted.internet.unix: the socket path's lock file names a live
        # process.
        words = "another running process is using it"
    else:
        words = str(reason)
    if error.port is None or isinstance(error.port, (bytes, str)):
        # A UNIX socket: the path is the "port".
        return words
    where = f"{error.interface or 'all interfaces'}:{error.port}"
    return f"{words} ({where})"


def _osError(error: OSError, shown: str) -> str:
    """
    The system's reason for C{error} (C{"No such file or directory"}), and
    the file it concerns unless that is a lock file of Twisted's own.
    """
    reason = error.strerror or str(error)
    for name in (error.filename2, error.filename):
        if name is None or isinstance(name, int):
            continue
        path = os.fsdecode(name)
        if path.endswith(".lock"):
            # twisted.internet.unix's lock file for the socket path, made
            # first: the socket path it guards names the problem better.
            path = path[: -len(".lock")]
        return reason if shown.endswith(path) else f"{path}: {reason}"
    return reason
