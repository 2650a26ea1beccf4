"""
Tests for L{nbecho.server._errors}: why an endpoint cannot be used, in words.
"""

from __future__ import annotations

import errno
import tempfile

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from nbecho.server._errors import inUse, inWords


class InWordsTests(SynchronousTestCase):
    def test_portInUse(self) -> None:
        """
        A TCP port in use gives the system's reason and the address, without
        the error number.
        """
        error = CannotListenError(
            "127.0.0.1", 9999, OSError(errno.EADDRINUSE, "Address already in use")
        )
        self.assertEqual(inWords(error), "Address already in use (127.0.0.1:9999)")

    def test_allInterfaces(self) -> None:
        """
        An empty interface is said as all interfaces.
        """
        error = CannotListenError("", 80, OSError(errno.EACCES, "Permission denied"))
        self.assertEqual(inWords(error), "Permission denied (all interfaces:80)")

    def test_unixLockFile(self) -> None:
        """
        A failure to make a UNIX socket's lock file names the socket path, not
        the lock file, the pid in it or a byte string.
        """
        error = FileNotFoundError(
            errno.ENOENT, "No such file or directory", "4242", None, b"/x/y/s.sock.lock"
        )
        self.assertEqual(inWords(error), "/x/y/s.sock: No such file or directory")
        self.assertEqual(
            inWords(error, "unix:/x/y/s.sock"), "No such file or directory"
        )

    def test_unixLockHeld(self) -> None:
        """
        A UNIX socket whose lock a live process holds is said to be in use.
        """
        error = CannotListenError(None, b"/x/s.sock", "Cannot acquire lock")
        self.assertEqual(inWords(error), "another running process is using it")

    def test_fileNamed(self) -> None:
        """
        An error about a file names it, unless the line already ends with it.
        """
        error = PermissionError(errno.EACCES, "Permission denied", "/etc/key.pem")
        self.assertEqual(inWords(error), "/etc/key.pem: Permission denied")
        self.assertEqual(
            inWords(error, "ssl:443:privateKey=/etc/key.pem"), "Permission denied"
        )

    def test_badKeyFile(self) -> None:
        """
        A TLS key file that is not one gives OpenSSL's reasons as words, not
        its error list.
        """
        directory = FilePath(tempfile.mkdtemp(prefix="nbecho-"))
        self.addCleanup(directory.remove)
        bad = directory.child("bad.pem")
        bad.setContent(b"not a key\n")
        try:
            serverFromString(reactor, f"ssl:0:privateKey={bad.path}")
        except Exception as error:  # noqa: BLE001 - whatever the parser raises
            words = inWords(error)
        else:
            self.fail("a bad key file was accepted")
        self.assertTrue(
            words.startswith("cannot read the certificate or private key: ")
        )
        self.assertIn("OpenSSL says ", words)
        self.assertNotIn("[(", words)

    def test_otherErrors(self) -> None:
        """
        Any other error gives its own message, or its type when it has none.
        """
        self.assertEqual(inWords(ValueError("bad value")), "bad value")
        self.assertEqual(inWords(KeyError()), "KeyError")


class InUseTests(SynchronousTestCase):
    """
    L{inUse}: a port or socket path in use, in an operator's words.
    """

    def inUse(self, interface: str, description: str) -> str | None:
        error = CannotListenError(
            interface, 9999, OSError(errno.EADDRINUSE, "Address already in use")
        )
        return inUse(error, description)

    def test_allInterfaces(self) -> None:
        """
        The default listeners name the families their description covers.
        """
        self.assertEqual(
            self.inUse("::", "tcp6:9999, IPv4 and IPv6"),
            "port 9999 is already in use (all interfaces, IPv4 and IPv6)",
        )
        self.assertEqual(
            self.inUse("", "tcp:9999, IPv4 only: no IPv6 on this machine"),
            "port 9999 is already in use (all interfaces, IPv4 only)",
        )
        self.assertEqual(
            self.inUse("", "tcp:9999"),
            "port 9999 is already in use (all interfaces, IPv4)",
        )
        self.assertEqual(
            self.inUse("::", "tcp6:9999"),
            "port 9999 is already in use (all interfaces, IPv6)",
        )

    def test_oneInterface(self) -> None:
        """
        A listener on one address names it.
        """
        self.assertEqual(
            self.inUse("::1", "tcp6:9999:interface=\\:\\:1"),
            "port 9999 is already in use on ::1",
        )

    def test_otherErrors(self) -> None:
        """
        Any other reason is not a port in use.
        """
        error = CannotListenError("", 80, OSError(errno.EACCES, "Permission denied"))
        self.assertIsNone(inUse(error, "tcp:80"))
        self.assertIsNone(inUse(OSError(errno.EADDRINUSE, "in use"), "tcp:80"))
        locked = CannotListenError(None, "/run/echo.sock", "Cannot acquire lock")
        self.assertEqual(
            inUse(locked, "unix:/run/echo.sock"),
            "socket /run/echo.sock is already in use by another running process",
        )
