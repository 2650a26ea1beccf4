"""
Third-party peers nobody here wrote (OpenBSD netcat, socat) against a real
C{twistd -n nbecho}, and what the server's log shows the operator.
"""

from __future__ import annotations

import subprocess

from tests._clients import readToEnd
from tests._servers import TIMEOUT, RunningServer, ServerFactory, tool


def _nc(port: int, data: bytes) -> bytes:
    """
    Send C{data} with C{nc -N} (shut down the sending side at the end of
    input) and return everything received until the server closes.
    """
    result = subprocess.run(
        [tool("nc"), "-N", "127.0.0.1", str(port)],
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    return result.stdout


def _socat(port: int, data: bytes) -> bytes:
    """
    Send C{data} through C{socat} and return what comes back before the
    server closes; C{-t} only bounds the wait for the server after the end
    of input.
    """
    result = subprocess.run(
        [tool("socat"), "-t", str(TIMEOUT), "-", f"TCP:127.0.0.1:{port}"],
        input=data,
        capture_output=True,
        timeout=TIMEOUT + 5,
        check=True,
    )
    return result.stdout


def test_netcatHalfClosedPartialLine(server: RunningServer) -> None:
    """
    C{printf 'a\\nb' | nc -N} gets C{a\\nb} back: the partial last line is
    echoed after netcat shuts its sending side.
    """
    assert _nc(server.port, b"a\nb") == b"a\nb"
    server.waitForLog(r"Read Data 127\.0\.0\.1:\d+ b$")
    server.waitForLog(r"close .*\(client finished sending\): 2 messages, 3 bytes")


def test_socatCRLFLines(server: RunningServer) -> None:
    """
    CRLF lines from socat come back byte-for-byte, CR included, and are
    logged without the terminator.
    """
    data = b"first\r\nsecond\r\n\r\nlast\r\n"
    assert _socat(server.port, data) == data
    messages = server.waitForLog(r"Read Data 127\.0\.0\.1:\d+ (.*)$", count=4)
    assert [match.group(1) for match in messages] == ["first", "second", "", "last"]


def test_socatRawBinary(nbechoServer: ServerFactory) -> None:
    """
    With C{--framing raw}, binary data (every byte value, NULs, no newline
    at the end) comes back byte-identical.
    """
    server = nbechoServer("--framing", "raw")
    data = bytes(range(256)) * 512 + b"\x00\x00tail without newline"
    assert _socat(server.port, data) == data
    (close,) = server.waitForLog(r"close .*: \d+ messages?, (\d+) bytes? in, (\d+) ")
    assert close.groups() == (str(len(data)), str(len(data)))


def test_socatExitWordIsEchoedThenCloses(server: RunningServer) -> None:
    """
    A bare C{exit} line from a third-party client is echoed, then the server
    closes even though socat never ends its input.
    """
    # socat's stdin stays open (it is never written to after this): only the
    # server can end this session.
    peer = subprocess.Popen(
        [tool("socat"), "-", f"TCP:127.0.0.1:{server.port}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert peer.stdin is not None
    try:
        peer.stdin.write(b"one\nexit\n")
        peer.stdin.flush()
        assert peer.stdout is not None
        output = readToEnd(peer.stdout)
        assert peer.wait(TIMEOUT) == 0
    finally:
        peer.stdin.close()
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    assert output == b"one\nexit\n"
    server.waitForLog(r"close .*\(exit word\): 2 messages")


def test_logLines(server: RunningServer) -> None:
    """
    The log has the seed's lines, with addresses: Ready? with the real port,
    Accept, Read Data with the message, close with the reason and counts.
    """
    assert _nc(server.port, b"hello world\n") == b"hello world\n"
    (close,) = server.waitForLog(
        r"close (127\.0\.0\.1:\d+) \((.+)\): (\d+) messages?, (\d+) bytes? in, "
        r"(\d+) bytes? out, \d+\.\d+s$"
    )
    peer = close.group(1)
    assert close.groups()[1:] == ("client finished sending", "1", "12", "12")
    log = server.log()
    assert f"Ready? nbecho listening on 127.0.0.1:{server.port} " in log
    assert f"Accept {peer}\n" in log
    assert f"Read Data {peer} hello world\n" in log
    lines = log.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if marker in line)
        for marker in ("Ready?", f"Accept {peer}", "Read Data", f"close {peer}")
    ]
    assert order == sorted(order)


def test_logEscapesControlCharacters(server: RunningServer) -> None:
    """
    A terminal escape sequence, a NUL and invalid UTF-8 from a client show in
    the log as C{\\xNN}: no raw control byte reaches the operator's terminal.
    """
    data = b"red \x1b[31mALERT\x1b[0m \x00 \xff\xfe ok\n"
    assert _nc(server.port, data) == data
    server.waitForLog(r"close ")
    raw = server.logPath.read_bytes()
    assert b"\x1b" not in raw and b"\x00" not in raw and b"\xff" not in raw
    assert r"red \x1b[31mALERT\x1b[0m \x00 \xff\xfe ok" in server.log()
