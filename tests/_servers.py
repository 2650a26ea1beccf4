"""
Real processes for the end-to-end tests: C{twistd -n nbecho} servers and
C{nbecho-client} runs, started from the virtual environment that runs pytest.

Everything here is bounded in time: a server that does not log its C{Ready?}
line, a client that does not finish, a log line that never comes all fail the
test with the process output attached instead of hanging the suite.  Servers
listen on 127.0.0.1 port 0 unless told otherwise; their real addresses come
from their C{Ready?} log lines.

Typical use, through the fixtures in C{conftest.py}::

    def test_something(nbechoServer: ServerFactory) -> None:
        server = nbechoServer("--framing", "raw")
        result = runClient(server.port, b"hello\\n")
        assert result.stdout == b"hello\\n"
        server.waitForLog("close ")
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Callable, Optional

import attrs
import pytest

#: The directory holding C{twistd}, C{nbecho-client}, C{trial}: the scripts
#: of the environment running these tests, whatever C{PATH} says.
BIN = Path(sys.executable).parent

#: Upper bound for anything expected to happen "soon" on a loaded machine.
TIMEOUT = 30.0

#: The C{twistd nbecho} arguments used when a test gives neither C{--port}
#: nor C{--listen}: loopback only, a port the kernel picks.
LOOPBACK_ANY_PORT = ("--port", "0", "--interface", "127.0.0.1")

_READY = re.compile(r"Ready\? nbecho listening on (?P<address>\S+) \((?P<spec>.*)\)$")


def script(name: str) -> str:
    """
    The path of console script C{name} in the test environment, so that tests
    run the nbecho under test rather than one found on C{PATH}.
    """
    return str(BIN / name)


def tool(name: str) -> str:
    """
    The path of third-party program C{name} (C{nc}, C{socat}, C{openssl},
    ...); the test is skipped without it, which fails the run in CI, where
    every tool comes from C{.ci/apt-packages}.
    """
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (see .ci/apt-packages)")
    return path


def twistdCommand(*nbechoArgs: str) -> list[str]:
    """
    The command line of a foreground C{twistd nbecho} with no pid file (so
    that any number of servers can run from one directory).
    """
    return [script("twistd"), "-n", "--pidfile=", "nbecho", *nbechoArgs]


def readyAddresses(log: str) -> list[str]:
    """
    The addresses (C{host:port}, C{[host]:port}, C{unix:path}) of every
    C{Ready?} line in C{log}, in order.
    """
    found = []
    for line in log.splitlines():
        match = _READY.search(line)
        if match:
            found.append(match.group("address"))
    return found


def portOf(address: str) -> int:
    """
    The TCP port of a C{host:port} or C{[host]:port} address from a log line.
    """
    return int(address.rsplit(":", 1)[1])


def freePort() -> int:
    """
    A loopback TCP port that was free a moment ago.

    Only for programs that cannot listen on port 0 and report the port (the
    seed's C server, a client pointed at a closed port); nbecho itself always
    gets port 0.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def waitFor(
    condition: Callable[[], bool],
    what: str,
    timeout: float = TIMEOUT,
    details: Callable[[], str] = lambda: "",
) -> None:
    """
    Poll C{condition} until it holds, or fail after C{timeout} seconds saying
    C{what} did not happen, with C{details()} attached.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{details()}")
        time.sleep(0.02)


@attrs.define
class RunningServer:
    """
    A C{twistd -n nbecho} process and its log.

    @ivar process: the process; C{process.pid} is the server's own pid (no
        shell in between), for C{/proc/PID/...} reads and signals.
    @ivar logPath: the file receiving the process's stdout and stderr (twistd
        logs to stdout with C{-n}).
    @ivar addresses: the addresses from the C{Ready?} lines, one per
        listening endpoint, in the order they were logged.
    """

    process: subprocess.Popen[bytes]
    logPath: Path
    command: list[str]
    addresses: list[str] = attrs.field(factory=list)

    @property
    def pid(self) -> int:
        """
        The server's process id.
        """
        return self.process.pid

    @property
    def port(self) -> int:
        """
        The TCP port of the first listening endpoint.
        """
        return portOf(self.addresses[0])

    @property
    def host(self) -> str:
        """
        The host of the first listening endpoint, without IPv6 brackets.
        """
        return self.addresses[0].rsplit(":", 1)[0].strip("[]")

    def log(self) -> str:
        """
        Everything the server has logged so far (invalid UTF-8 replaced).
        """
        return self.logPath.read_bytes().decode("utf-8", "replace")

    def logLines(self, containing: str = "") -> list[str]:
        """
        The log lines so far that contain C{containing}.
        """
        return [line for line in self.log().splitlines() if containing in line]

    def waitForLog(
        self,
        pattern: str,
        count: int = 1,
        timeout: float = TIMEOUT,
    ) -> list[re.Match[str]]:
        """
        Wait until C{count} log lines match the regular expression C{pattern}
        and return the matches; fail if the server exits first or after
        C{timeout} seconds.
        """
        compiled = re.compile(pattern)
        found: list[re.Match[str]] = []

        def enough() -> bool:
            found[:] = [
                match
                for match in map(compiled.search, self.log().splitlines())
                if match
            ]
            if len(found) >= count:
                return True
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited ({self.process.returncode}) before logging "
                    f"{count} x {pattern!r}\n{self.log()}"
                )
            return False

        waitFor(enough, f"{count} x {pattern!r} in the server log", timeout, self.log)
        return found

    def signal(self, number: int) -> None:
        """
        Send signal C{number} (C{signal.SIGTERM}, C{signal.SIGKILL}, ...).
        """
        self.process.send_signal(number)

    def stop(self, timeout: float = TIMEOUT) -> int:
        """
        SIGTERM the server, wait for it to exit (SIGKILL after C{timeout}
        seconds) and return its exit status; safe to call more than once.

        Plain twistd ends an orderly SIGTERM shutdown by re-raising the
        signal, so that status is C{-signal.SIGTERM} rather than 0.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def startServer(
    logDir: Path,
    *nbechoArgs: str,
    listeners: int | None = None,
    timeout: float = TIMEOUT,
    env: Optional[dict[str, str]] = None,
    passFds: Sequence[int] = (),
) -> RunningServer:
    """
    Start C{twistd -n --pidfile= nbecho ARGS} in C{logDir} and wait until it
    listens.

    @param nbechoArgs: options for C{twistd nbecho}; without C{--port} or
        C{--listen} the server gets C{--port 0 --interface 127.0.0.1}.
    @param listeners: how many C{Ready?} lines to wait for; by default one
        per C{--listen} option (or one).
    @param env: the server's environment (default: this one).
    @param passFds: file descriptors the server inherits (socket activation).
    @return: the running server with its addresses filled in; the caller
        must call L{RunningServer.stop} (the fixtures do).
    """
    args = list(nbechoArgs)
    if not any(arg.startswith(("--port", "--listen", "-l", "-p")) for arg in args):
        args[:0] = LOOPBACK_ANY_PORT
    if listeners is None:
        listeners = max(1, sum(arg.startswith(("--listen", "-l")) for arg in args))
    command = twistdCommand(*args)
    logPath = logDir / f"twistd-{time.monotonic_ns()}.log"
    with logPath.open("wb") as logFile:
        process = subprocess.Popen(
            command,
            cwd=logDir,
            stdin=subprocess.DEVNULL,
            stdout=logFile,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=passFds,
        )
    server = RunningServer(process, logPath, command)
    try:
        server.waitForLog(r"Ready\? nbecho listening on ", listeners, timeout)
    except BaseException:
        server.stop()
        raise
    server.addresses = readyAddresses(server.log())
    return server


def runClient(
    port: int | None,
    stdin: bytes = b"",
    *clientArgs: str,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[bytes]:
    """
    Run C{nbecho-client --port PORT ARGS} with C{stdin} piped in and return
    its exit status, stdout and stderr; fail if it runs past C{timeout}.

    @param port: the server port on 127.0.0.1, or C{None} to pass only
        C{clientArgs} (for C{--connect} or option errors).
    """
    command = [script("nbecho-client")]
    if port is not None:
        command += ["--port", str(port)]
    command += clientArgs
    return subprocess.run(
        command, input=stdin, capture_output=True, timeout=timeout, check=False
    )


def startClient(port: int, *clientArgs: str) -> subprocess.Popen[bytes]:
    """
    Start C{nbecho-client --port PORT ARGS} with pipes on stdin, stdout and
    stderr, for tests that talk to it line by line.  The caller ends it.
    """
    return subprocess.Popen(
        [script("nbecho-client"), "--port", str(port), *clientArgs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def readLine(stream: IO[bytes], timeout: float = TIMEOUT) -> bytes:
    """
    Read one line from a pipe, failing instead of hanging after C{timeout}.
    """
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"no complete line after {timeout}s: {data!r}")
            chunk = os.read(stream.fileno(), 1)
            if not chunk:
                break
            data += chunk
    return data


def readToEnd(stream: IO[bytes], timeout: float = TIMEOUT) -> bytes:
    """
    Read a pipe until its writer closes it, failing instead of hanging after
    C{timeout}.
    """
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"pipe still open after {timeout}s: {data!r}")
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return data
            data += chunk
