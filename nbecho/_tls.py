"""
OpenSSL's errors in words: pyOpenSSL raises them as lists of
C{(library, function, reason)} tuples, which read badly in a log line.

Nothing here imports OpenSSL: TLS support is optional.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

from nbecho._twisted import handshakeDone


def isOpenSSLError(error: BaseException) -> bool:
    """
    Whether C{error} comes from pyOpenSSL (C{OpenSSL.SSL.Error},
    C{OpenSSL.crypto.Error}).
    """
    return type(error).__module__.startswith("OpenSSL")


def openSSLReasons(error: BaseException, libraries: bool = False) -> str:
    """
    OpenSSL's reasons for C{error}, without pyOpenSSL's wrapping: the
    reasons of its error stack joined by C{"; "}, each followed by its
    library in parentheses if C{libraries} (C{"ee key too small (SSL
    routines)"}); for an error without a stack, its own text.
    """
    details = error.args[0] if error.args else None
    if isinstance(details, list):
        reasons = [
            f"{entry[-1]} ({entry[0]})" if libraries and entry[0] else str(entry[-1])
            for entry in details
            if isinstance(entry, tuple) and entry and entry[-1]
        ]
        if reasons:
            return "; ".join(reasons)
    return str(error) or type(error).__name__


def tlsFailure(reason: Failure, transport: Any, received: int) -> str | None:
    """
    Why a TLS connection failed, in words, if C{reason} is a TLS error:
    C{TLS handshake failed: ...} while the handshake was under way (a client
    speaking plain text or an old protocol, a client refusing the
    certificate), C{TLS error: ...} after it.

    @param transport: the connection's transport, Twisted's TLS protocol
        when the connection is TLS.
    @param received: bytes the connection received: none means the
        handshake never finished where the transport does not say.
    """
    error = reason.value
    if error is None or not isOpenSSLError(error):
        return None
    handshook = handshakeDone(transport, received > 0)
    what = "TLS error" if handshook else "TLS handshake failed"
    return f"{what}: {openSSLReasons(error)}"
