"""
The real C{nbecho-client} against a real C{twistd -n nbecho}: pipelines, the
C{exit} word, the terminal prompt, and the exit codes a script relies on.
"""

from __future__ import annotations

import signal
import subprocess

from tests._clients import readLine, runClient, startClient
from tests._servers import TIMEOUT, RunningServer, ServerFactory, freePort, script
from tests._terminal import Terminal

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
    (close,) = server.waitForLog(r"close 127\.0\.0\.1:\d+ \((.*)\): (\d+) messages?")
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
    once the prompt is back, and return the exit status and all output.
    """
    terminal = Terminal([script("nbecho-client"), "--port", str(port)], echo=False)
    try:
        for count, key in enumerate(keys, 1):
            terminal.waitFor(PROMPT, count=count)
            terminal.type(key)
        status = terminal.wait()
    finally:
        terminal.close()
    return status, terminal.output


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
    server.waitForLog(r"close .*\(client finished sending\): 1 message,")


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


def test_emptyInputIsAnEmptySession(server: RunningServer) -> None:
    """
    C{python -m nbecho --port PORT </dev/null}: the client connects, sends nothing,
    prints nothing and exits 0, as C{nc} does; the server saw the session.
    """
    result = subprocess.run(
        [script("python"), "-m", "nbecho", "--port", str(server.port)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    server.waitForLog(r"close .*\(client finished sending\): 0 messages, 0 bytes in")


def test_emptyInputWithoutServer() -> None:
    """
    The same with nothing listening: one line naming the address, status 1,
    so C{python -m nbecho --port PORT </dev/null} checks that a server
    answers.
    """
    port = freePort()
    result = subprocess.run(
        [script("python"), "-m", "nbecho", "--port", str(port)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith(f"nbecho-client: cannot connect to 127.0.0.1:{port}: ")
