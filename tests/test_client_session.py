"""
The real C{nbecho-client} against a real C{twistd -n nbecho}: pipelines, the
C{exit} word, the terminal prompt, and the exit codes a script relies on.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import termios
import time

from tests._clients import readLine, runClient, startClient
from tests._servers import TIMEOUT, RunningServer, ServerFactory, freePort, script

#: The prompt a terminal shows, the seed's with its exit word.
PROMPT = b'send server (exit is "exit"): '


def test_pipelineEchoesEveryLine(server: RunningServer) -> None:
    """
    C{seq 1 100000 | nbecho-client} prints exactly 1 to 100000 and exits 0.
    """
    seq = subprocess.Popen(["seq", "1", "100000"], stdout=subprocess.PIPE)
    assert seq.stdout is not None
    try:
        result = subprocess.run(
            [script("nbecho-client"), "--port", str(server.port)],
            stdin=seq.stdout,
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        seq.stdout.close()
        seq.wait(TIMEOUT)
    assert result.stderr == b""
    assert result.returncode == 0
    expected = "".join(f"{n}\n" for n in range(1, 100001)).encode()
    assert result.stdout == expected
    server.waitForLog(r"close .*: 100000 messages")


def test_exitEndsTheSession(server: RunningServer) -> None:
    """
    C{exit} is echoed, ends the session with status 0, and nothing after it
    is sent; the server logs the close with its reason and counts.
    """
    result = runClient(server.port, b"hello\nexit\nnot sent\n")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        b"hello\nexit\n",
        b"",
    )
    (close,) = server.waitForLog(r"close 127\.0\.0\.1:\d+ \((.*)\): (\d+) messages")
    assert close.groups() == ("exit word", "2")
    assert not server.logLines("not sent")


def test_pipedInputPrintsOnlyEchoes(server: RunningServer) -> None:
    """
    With stdin piped there is no prompt: the output is the echoes alone, so
    the client composes in shell pipelines.
    """
    result = runClient(server.port, b"one\ntwo\nlast without newline")
    assert result.returncode == 0
    assert result.stdout == b"one\ntwo\nlast without newline"
    assert PROMPT not in result.stdout


def _runInTerminal(port: int, keys: list[bytes]) -> tuple[int, bytes]:
    """
    Run C{nbecho-client} on a pseudo-terminal with the terminal's own echo
    off (so every byte read back came from the client), type each of C{keys}
    once the previous answer arrived, and return the exit status and all
    output.
    """
    controller, terminal = pty.openpty()
    attributes = termios.tcgetattr(terminal)
    attributes[3] &= ~termios.ECHO
    termios.tcsetattr(terminal, termios.TCSANOW, attributes)
    client = subprocess.Popen(
        [script("nbecho-client"), "--port", str(port)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        pending = list(keys)
        while time.monotonic() < deadline:
            if pending and output.endswith(PROMPT):
                os.write(controller, pending.pop(0))
            ready, _, _ = select.select([controller], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the client closed the terminal
                break
            if not chunk:
                break
            output += chunk
        else:
            raise AssertionError(f"terminal session still running: {output!r}")
        status = client.wait(TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        os.close(controller)
    return status, output


def test_terminalShowsThePrompt(server: RunningServer) -> None:
    """
    On a terminal the client shows the seed's prompt before each line and
    prints each echo; C{exit} ends it with status 0.
    """
    status, output = _runInTerminal(server.port, [b"hello\n", b"exit\n"])
    assert PROMPT == b'send server (exit is "exit"): '
    assert output == PROMPT + b"hello\r\n" + PROMPT + b"exit\r\n"
    assert status == 0
    server.waitForLog(r"Read Data 127\.0\.0\.1:\d+ hello$")


def test_terminalEndOfInput(server: RunningServer) -> None:
    """
    Ctrl-D on a terminal ends the session like the end of a pipe: status 0,
    and the output ends on a new line for the shell's next prompt.
    """
    status, output = _runInTerminal(server.port, [b"typed\n", b"\x04"])
    assert output == PROMPT + b"typed\r\n" + PROMPT + b"\r\n"
    assert status == 0
    server.waitForLog(r"close .*\(client finished sending\): 1 messages")


def test_serverUnreachable() -> None:
    """
    A closed port: one line on stderr naming the address, exit status 1.
    """
    port = freePort()
    result = runClient(port, b"hello\n")
    assert result.returncode == 1
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{port}" in lines[0]
    assert lines[0].startswith("nbecho-client: ")


def test_serverKilledMidSession(server: RunningServer) -> None:
    """
    A server that dies mid-session: the client prints one line naming the
    address and exits with status 3.
    """
    client = startClient(server.port)
    assert client.stdin is not None and client.stdout is not None
    try:
        client.stdin.write(b"before\n")
        client.stdin.flush()
        assert readLine(client.stdout) == b"before\n"
        server.signal(signal.SIGKILL)
        status = client.wait(TIMEOUT)
        stderr = client.communicate(timeout=TIMEOUT)[1]
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    lines = stderr.decode().splitlines()
    assert status == 3
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{server.port}" in lines[0]
    assert "closed the connection mid-session" in lines[0]


def test_clientUsageErrors() -> None:
    """
    Bad client options: one line on stderr, exit status 2, no traceback.
    """
    for args in (["--port", "nope"], ["--port", "0"], ["--connect", "bogus:x"]):
        result = runClient(None, b"", *args)
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 2, (args, result)
        assert len(lines) == 1, (args, lines)
        assert "Traceback" not in lines[0]


def test_quietDropsMessageLines(nbechoServer: ServerFactory) -> None:
    """
    C{--quiet} drops the per-message log lines but keeps Accept and close.
    """
    server = nbechoServer("--quiet")
    result = runClient(server.port, b"secret\nexit\n")
    assert (result.returncode, result.stdout) == (0, b"secret\nexit\n")
    server.waitForLog(r"close .*\(exit word\): 2 messages")
    assert server.logLines("Accept ")
    assert not server.logLines("Read Data")
    assert "secret" not in server.log()
