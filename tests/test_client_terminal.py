"""
The real C{nbecho-client} the way people end it: Ctrl-C and Ctrl-D on a real
terminal (a pseudo-terminal whose line discipline turns C{^C} into SIGINT),
signals sent with C{kill}, a pipeline into C{head}; and its exit word,
positional C{HOST [PORT]} and C{--version}.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from nbecho import __version__
from tests._clients import readLine, runClient, startClient
from tests._servers import TIMEOUT, RunningServer, ServerFactory, script, tool
from tests._terminal import Terminal


def client(server: RunningServer, *args: str) -> list[str]:
    """
    The command line of an C{nbecho-client} for C{server}.
    """
    return [script("nbecho-client"), "--port", str(server.port), *args]


def test_ctrlCOnTerminal(server: RunningServer) -> None:
    """
    Ctrl-C on a terminal ends the client at once with status 130, without a
    message, on a new line, and leaves the terminal in blocking mode.
    """
    terminal = Terminal(client(server))
    try:
        terminal.waitFor(b'send server (exit is "exit"): ')
        terminal.type(b"\x03")
        assert terminal.wait() == 130
        assert terminal.output == b'send server (exit is "exit"): ^C\r\n'
        assert terminal.blockingAfter
    finally:
        terminal.close()


def test_ctrlCInShell(server: RunningServer) -> None:
    """
    In an interactive shell, Ctrl-C in the client gives status 130 and the
    shell's next prompt starts on a new line.
    """
    env = dict(os.environ, PS1="$ ", TERM="dumb")
    shell = Terminal([tool("bash", required=True), "--norc", "--noprofile", "-i"], env)
    try:
        shell.waitFor(b"$ ")
        shell.type(" ".join(client(server)).encode() + b"\n")
        shell.waitFor(b"): ")
        shell.type(b"\x03")
        shell.waitFor(b"^C\r\n$ ")
        shell.type(b'echo "status=$?"\n')
        shell.waitFor(b"status=130\r\n$ ")
        assert b"Traceback" not in shell.output
        assert b"nbecho-client:" not in shell.output
        shell.type(b"exit\n")
        shell.wait()
    finally:
        shell.close()


def test_ctrlDOnTerminal(server: RunningServer) -> None:
    """
    Ctrl-D at the prompt ends the session with status 0, and the output
    ends with a newline so the shell's prompt starts a line.
    """
    terminal = Terminal(client(server))
    try:
        terminal.waitFor(b"): ")
        terminal.type(b"hello\n")
        terminal.waitFor(b"hello\r\nhello\r\nsend server")
        terminal.waitFor(b'"): ')
        terminal.type(b"\x04")
        assert terminal.wait() == 0
        assert terminal.output.endswith(b'send server (exit is "exit"): \r\n')
    finally:
        terminal.close()


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_partialLineThenCtrlD(nbechoServer: ServerFactory, transport: str) -> None:
    """
    A last line typed without Enter, then Ctrl-D twice: its echo is shown on
    a line of its own, not run together with the typed text, over TCP and
    UDP.
    """
    if transport == "udp":
        server = nbechoServer("--listen", "udp:0:interface=127.0.0.1")
        terminal = Terminal(client(server, "--udp"))
    else:
        server = nbechoServer()
        terminal = Terminal(client(server))
    try:
        terminal.waitFor(b'"): ')
        terminal.type(b"partial\x04\x04")
        assert terminal.wait() == 0
        assert terminal.output == (
            b'send server (exit is "exit"): partial\r\npartial\r\n'
        )
    finally:
        terminal.close()
    server.waitForLog(r"Read Data 127\.0\.0\.1:\d+ partial$")


def test_killSignals(server: RunningServer) -> None:
    """
    SIGINT and SIGTERM sent with kill end a running session at once (status
    130 for SIGINT, killed by SIGTERM), with nothing on stdout or stderr.
    """
    for number, status in ((signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)):
        process = startClient(server.port)
        assert process.stdin is not None
        process.stdin.write(b"one\n")
        process.stdin.flush()
        assert process.stdout is not None
        assert readLine(process.stdout) == b"one\n"
        process.send_signal(number)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
        assert (process.returncode, stdout, stderr) == (status, b"", b"")


def test_pipelineIntoHead(server: RunningServer) -> None:
    """
    C{seq 1 100000 | nbecho-client | head -1} prints 1 and ends; the client
    ends as C{seq} would, by SIGPIPE (status 141), quietly.
    """
    pipeline = (
        f"seq 1 100000 | {script('nbecho-client')} --port {server.port} | head -1;"
        ' echo "${PIPESTATUS[1]} ${PIPESTATUS[2]}" >&2'
    )
    result = subprocess.run(
        [tool("bash", required=True), "-c", pipeline],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, b"1\n")
    assert result.stderr == b"141 0\n"


def test_exitWord(nbechoServer: ServerFactory) -> None:
    """
    Against C{twistd nbecho --exit-word bye}, C{--exit-word bye} names it in
    the prompt and typing it ends the session with status 0.
    """
    server = nbechoServer("--exit-word", "bye")
    terminal = Terminal(client(server, "--exit-word", "bye"))
    try:
        terminal.waitFor(b'send server (exit is "bye"): ')
        terminal.type(b"exit\n")
        terminal.waitFor(b'exit\r\nexit\r\nsend server (exit is "bye"): ')
        terminal.type(b"bye\n")
        assert terminal.wait() == 0
        assert terminal.output.endswith(b"bye\r\nbye\r\n")
    finally:
        terminal.close()
    piped = runClient(server.port, b"a\nbye\nb\n", "--exit-word", "bye")
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, b"a\nbye\n", b"")


def test_noExitWord(nbechoServer: ServerFactory) -> None:
    """
    With C{--exit-word ''} on both sides C{exit} is a line like any other and
    the prompt has no parenthesis.
    """
    server = nbechoServer("--exit-word", "")
    terminal = Terminal(client(server, "--exit-word", ""))
    try:
        terminal.waitFor(b"send server: ")
        terminal.type(b"exit\n")
        terminal.waitFor(b"exit\r\nexit\r\nsend server: ")
        terminal.type(b"\x04")
        assert terminal.wait() == 0
    finally:
        terminal.close()


def test_positionalHostPort(server: RunningServer) -> None:
    """
    C{nbecho-client HOST PORT} connects there, options may follow.
    """
    result = runClient(None, b"x\nbye\ny\n", "127.0.0.1", str(server.port))
    assert (result.returncode, result.stdout) == (0, b"x\nbye\ny\n")
    result = runClient(
        None, b"x\n", "127.0.0.1", str(server.port), "--exit-word", "bye"
    )
    assert (result.returncode, result.stdout) == (0, b"x\n")


def test_usageConflicts() -> None:
    """
    A host or port given twice or beside C{--connect}, or a third argument:
    one line on stderr, status 2, no traceback.
    """
    for args in (
        ["127.0.0.1", "--connect", "tcp:127.0.0.1:1"],
        ["127.0.0.1", "--host", "::1"],
        ["127.0.0.1", "1", "2"],
    ):
        result = runClient(None, b"", *args)
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 2, (args, result)
        assert len(lines) == 1 and "Traceback" not in lines[0], (args, lines)


def test_version() -> None:
    """
    C{nbecho-client --version} prints nbecho's version.
    """
    result = runClient(None, b"", "--version")
    assert result.returncode == 0
    assert result.stdout == f"nbecho-client (nbecho) {__version__}\n".encode()
