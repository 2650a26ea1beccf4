"""
Tests for L{nbecho._tls}: OpenSSL's errors in words, and the close line of
a connection whose TLS failed.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from nbecho._tls import isOpenSSLError, openSSLReasons, tlsFailure
from nbecho.test._helpers import LogTestCase, connect, disconnect


def _sslError() -> Exception:
    try:
        from OpenSSL import SSL
    except ImportError as error:
        raise SkipTest(f"needs nbecho[tls]: {error}") from None
    return SSL.Error([("SSL routines", "", "wrong version number")])


class _Transport:
    def __init__(self, handshakeDone: bool) -> None:
        self._handshakeDone = handshakeDone


class TLSFailureTests(SynchronousTestCase):
    """
    L{tlsFailure} names a TLS failure in words and leaves other reasons.
    """

    def test_reasons(self) -> None:
        """
        OpenSSL's reasons lose pyOpenSSL's list of tuples.
        """
        error = _sslError()
        self.assertTrue(isOpenSSLError(error))
        self.assertEqual(openSSLReasons(error), "wrong version number")
        self.assertFalse(isOpenSSLError(ValueError("x")))

    def test_handshake(self) -> None:
        """
        Before the handshake finished it is a failed handshake, after it a
        TLS error; without a TLS transport, bytes received tell them apart.
        """
        reason = Failure(_sslError())
        self.assertEqual(
            tlsFailure(reason, _Transport(False), 0),
            "TLS handshake failed: wrong version number",
        )
        self.assertEqual(
            tlsFailure(reason, _Transport(True), 0), "TLS error: wrong version number"
        )
        self.assertEqual(
            tlsFailure(reason, None, 0), "TLS handshake failed: wrong version number"
        )
        self.assertEqual(tlsFailure(reason, None, 5), "TLS error: wrong version number")

    def test_otherReasons(self) -> None:
        """
        A reason that is no TLS error is left to the caller.
        """
        self.assertIsNone(tlsFailure(Failure(ConnectionLost()), None, 0))


class CloseLineTests(LogTestCase):
    """
    A connection lost to a TLS error ends with one warning line.
    """

    def test_closeLineIsWarning(self) -> None:
        """
        The close line of a failed TLS handshake is a warning with the peer
        and OpenSSL's reason in words; other close lines stay informational.
        """
        proto, _ = connect()
        disconnect(proto, _sslError())
        proto, _ = connect()
        disconnect(proto)
        first, second = [e for e in self.events if e.get("nbecho_event") == "close"]
        self.assertEqual(first["log_level"].name, "warn")
        self.assertEqual(first["reason"], "TLS handshake failed: wrong version number")
        self.assertEqual(second["log_level"].name, "info")
