"""
What a newcomer meets in the first hour with C{twistd nbecho} (issue 9):
the version in the start-up log, honest byte counts after an error line,
raw framing's rule for the exit word, and plain error messages.

Raw framing's rule: it has no exit word unless C{--exit-word} is given on
the command line; then a chunk equal to the word, a trailing LF or CRLF
allowed, is echoed and ends the connection.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from nbecho import __version__
from tests._clients import assertEchoes, recvAll
from tests._servers import TIMEOUT, ServerFactory, runTwistd, script


def test_startupLogNamesVersion(nbechoServer: ServerFactory) -> None:
    """
    twistd's start-up log names nbecho and its version, next to twistd's own.
    """
    server = nbechoServer()
    assert f"nbecho {__version__}" in server.log(), server.log()


def test_closeLineCountsErrorLine(nbechoServer: ServerFactory) -> None:
    """
    After C{error: line too long}, the close line and the totals count the
    bytes of the error line the client received as bytes out.
    """
    server = nbechoServer("--max-line-length", "10")
    with server.connect() as sock:
        sock.sendall(b"x" * 20 + b"\n")
        received = recvAll(sock)
    assert received.startswith(b"error: line too long"), received
    (close,) = server.waitForLog(r"close .*\b(\d+) bytes? out\b")
    assert int(close.group(1)) == len(received), close.group(0)
    server.stop()
    totals = re.search(r"nbecho stopped: .*\b(\d+) bytes? out\b", server.log())
    assert totals is not None, server.log()
    assert int(totals.group(1)) == len(received), totals.group(0)


def test_rawHasNoDefaultExitWord(nbechoServer: ServerFactory) -> None:
    """
    In raw framing without C{--exit-word}, C{exit} is data like any other:
    echoed, and the connection stays open.
    """
    server = nbechoServer("--framing", "raw")
    with server.connect() as sock:
        assertEchoes(sock, b"exit")
        assertEchoes(sock, b"exit\n")
        assertEchoes(sock, b"still open\n")
    assert "exit word" not in server.log()


def test_rawExplicitExitWord(nbechoServer: ServerFactory) -> None:
    """
    In raw framing with C{--exit-word bye}, a chunk C{bye}, C{bye\\n} or
    C{bye\\r\\n} is echoed and ends the connection; C{exit} does not.
    """
    server = nbechoServer("--framing", "raw", "--exit-word", "bye")
    for word in (b"bye", b"bye\n", b"bye\r\n"):
        with server.connect() as sock:
            assertEchoes(sock, b"exit\n")
            sock.sendall(word)
            assert recvAll(sock) == word


def test_rawExplicitDefaultExitWord(nbechoServer: ServerFactory) -> None:
    """
    In raw framing, C{--exit-word exit} given explicitly makes C{exit\\n} end
    the connection: explicit, not different from the default, is what counts.
    """
    server = nbechoServer("--framing", "raw", "--exit-word", "exit")
    with server.connect() as sock:
        sock.sendall(b"exit\n")
        assert recvAll(sock) == b"exit\n"


def test_listenPortNotANumber(tmp_path: Path) -> None:
    """
    C{--listen tcp:notaport} gives one usage line naming C{--listen}, the
    value and that the port is not a number, in words.
    """
    result = runTwistd(tmp_path, "--listen", "tcp:notaport")
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert "--listen" in line and "notaport" in line, line
    assert "port" in line.lower() and "number" in line.lower(), line
    assert "invalid literal" not in line, line
    assert "Traceback" not in result.stdout + result.stderr


def test_unusableUnixSocketPathForeground(tmp_path: Path) -> None:
    """
    A UNIX socket path in a missing directory ends C{twistd -n nbecho} with
    status 1 and one line naming the path and the reason in words.
    """
    path = tmp_path / "no-such-directory" / "echo.sock"
    result = runTwistd(tmp_path, "--listen", f"unix:{path}")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    reasons = [
        line
        for line in output.splitlines()
        if "No such file or directory" in line or "does not exist" in line
    ]
    assert len(reasons) == 1, output
    assert str(path) in reasons[0], reasons[0]
    for jargon in ("Errno", ".lock", "->", "b'", "Traceback"):
        assert jargon not in output, (jargon, output)


def test_helpSpeaksOfNbechoItself(tmp_path: Path) -> None:
    """
    C{twistd --help} and C{twistd nbecho --help} describe nbecho without
    project jargon: no "seed".
    """
    twistdHelp = subprocess.run(
        [script("twistd"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    nbechoHelp = runTwistd(tmp_path, "--help")
    assert twistdHelp.returncode == 0 and nbechoHelp.returncode == 0
    assert re.search(r"^ +nbecho +\S", twistdHelp.stdout, re.M), twistdHelp.stdout
    for text in (twistdHelp.stdout, nbechoHelp.stdout):
        # --fault-seed seeds the random draws of the faults: not jargon.
        text = text.replace("--fault-seed=", "").replace("Seed the fault draws", "")
        assert "seed" not in text.lower(), text
