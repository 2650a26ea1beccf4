"""
Real processes for the end-to-end tests: C{twistd -n nbecho} servers and
C{nbecho-client} runs, started from the virtual environment that runs pytest.

Everything here is bounded in time: a server that does not log its C{Ready?}
line, a client that does not finish, a log line that never comes all fail the
test with the process output attached instead of hanging the suite.  Servers
listen on 127.0.0.1 port 0 unless told otherwise; their real addresses come
from their C{Ready?} log lines, in the text or the JSON log format.

Typical use, through the fixtures in C{conftest.py}::

    def test_something(nbechoServer: ServerFactory) -> None:
        server = nbechoServer("--framing", "raw")
        result = runClient(server.port, b"hello\\n")
        assert result.stdout == b"hello\\n"
        server.waitForLog("close ")
"""

from __future__ import annotations

import json
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import attrs
import pytest

#: The directory holding C{twistd}, C{nbecho-client}, C{trial}: the scripts
#: of the environment running these tests, whatever C{PATH} says.
BIN = Path(sys.executable).parent

#: Upper bound for anything expected to happen "soon" on a loaded machine.
TIMEOUT = 30.0

#: Every connection's lines logged, for tests that count the lines of many
#: connections from 127.0.0.1 in a second (the default logs ten a second
#: from one address; tests/test_log_connections.py tests that).
ALL_CONNECTION_LINES = (
    "--log-connection-rate",
    "0",
    "--log-connection-rate-total",
    "0",
)

#: The C{twistd nbecho} arguments used when a test gives neither C{--port}
#: nor C{--listen}: loopback only, a port the kernel picks.
LOOPBACK_ANY_PORT = ("--port", "0", "--interface", "127.0.0.1")

_READY = re.compile(
    r"Ready\? nbecho (?P<kind>listening on|metrics at) (?P<address>\S+) "
    r"\((?P<description>.*)\)$"
)


def copyProject(target: Path) -> Path:
    """
    Copy this source tree to C{target} without its git data, virtual
    environment and build output, for tests that install it as a user would.
    """
    root = Path(__file__).resolve().parent.parent
    shutil.copytree(
        root,
        target,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            "_trial_temp*",
        ),
    )
    return target


def script(name: str) -> str:
    """
    The path of console script C{name} in the test environment, so that tests
    run the nbecho under test rather than one found on C{PATH}.
    """
    return str(BIN / name)


def tool(name: str, required: bool = False) -> str:
    """
    The path of third-party program C{name} (C{nc}, C{socat}, C{openssl},
    ...), also looked for in the C{sbin} directories (C{haproxy}).  Without
    it the test is skipped, which fails the run in CI, where every tool comes
    from C{.ci/apt-packages}; with C{required}, it fails wherever it runs.
    """
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (see .ci/apt-packages)"
        assert not required, message
        pytest.skip(message)
    return path


def asNobody(readEverything: bool = False) -> list[str]:
    """
    The command prefix that runs a program as user nobody, as systemd runs
    a service as its dynamic user: no groups, no way back to privileges.

    @param readEverything: also let nobody read (never write) every file,
        to run the interpreter of an environment under root's home.
    """
    nobody = pwd.getpwnam("nobody")
    prefix = [
        tool("setpriv", required=True),
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
    ]
    if readEverything:
        prefix += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return prefix


def twistdCommand(*nbechoArgs: str) -> list[str]:
    """
    The command line of a foreground C{twistd nbecho} with no pid file (so
    that any number of servers can run from one directory).
    """
    return [script("twistd"), "-n", "--pidfile=", "nbecho", *nbechoArgs]


@attrs.frozen
class Ready:
    """
    One C{Ready?} line: an endpoint a server listens on, or its metrics site.

    @ivar address: C{host:port}, C{[host]:port} or C{unix:path}; the URL of
        a metrics site.
    @ivar description: the endpoint as the operator wrote it.
    """

    address: str
    description: str
    metrics: bool = False


def readyLines(log: str) -> list[Ready]:
    """
    The C{Ready?} lines of C{log}, text or JSON (C{--log-format json}), in
    order.
    """
    found = []
    for line in log.splitlines():
        try:
            event = json.loads(line) if line.startswith("{") else {}
        except ValueError:
            event = {}  # not JSON after all: a text line
        if event.get("nbecho_event") == "ready":
            found.append(Ready(event["address"], event["description"]))
            continue
        if event.get("nbecho_event") == "metrics_ready":
            found.append(Ready(event["url"], event["description"], True))
            continue
        match = _READY.search(line)
        if match:
            kind, address, description = match.group("kind", "address", "description")
            found.append(Ready(address, description, kind == "metrics at"))
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
    seed's C server, HAProxy, C{systemd-socket-activate}, a client pointed at
    a closed port); nbecho itself always gets port 0.
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

    A wait on the log reads only what is new since its last look, and only
    complete lines, so that waiting on a server that has logged a million
    lines stays cheap and never matches half a line.

    @ivar process: the process; C{process.pid} is the server's own pid (no
        shell in between), for C{/proc/PID/...} reads and signals.  Under a
        wrapper (C{systemd-socket-activate}) the wrapper's.
    @ivar logPath: the file receiving the log: the process's stdout and
        stderr (twistd logs to stdout with C{-n}), or its C{--logfile}.
    @ivar outputPath: the file receiving the process's stdout and stderr.
    @ivar addresses: the addresses from the C{Ready? nbecho listening on}
        lines, one per listening endpoint, in the order they were logged.
    @ivar timeout: the default bound of every wait on this server.
    """

    process: subprocess.Popen[bytes]
    logPath: Path
    command: list[str]
    outputPath: Path
    addresses: list[str] = attrs.field(factory=list)
    timeout: float = TIMEOUT

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

    def _linesFrom(self, offset: int) -> tuple[str, int]:
        """
        The complete log lines from byte C{offset} on, and the offset after
        them.
        """
        try:
            with self.logPath.open("rb") as logFile:
                logFile.seek(offset)
                new = logFile.read()
        except FileNotFoundError:  # a --logfile twistd has not opened yet
            return "", offset
        end = new.rfind(b"\n") + 1
        return new[:end].decode("utf-8", "replace"), offset + end

    def log(self) -> str:
        """
        Everything the server has logged so far (invalid UTF-8 replaced).
        """
        return self.logBytes().decode("utf-8", "replace")

    def logBytes(self) -> bytes:
        """
        Everything the server has logged so far, byte for byte: to check
        that no raw byte reached it, or to search a huge log cheaply.
        """
        return self.logPath.read_bytes() if self.logPath.exists() else b""

    def output(self) -> str:
        """
        The process's stdout and stderr so far: the log, or with
        C{--logfile} only what did not go there.
        """
        return self.outputPath.read_bytes().decode("utf-8", "replace")

    def logLines(self, containing: str = "") -> list[str]:
        """
        The log lines so far that contain C{containing}.
        """
        return [line for line in self.log().splitlines() if containing in line]

    def ready(self) -> list[Ready]:
        """
        The C{Ready?} lines logged so far.
        """
        return readyLines(self._linesFrom(0)[0])

    def address(self, prefix: str = "") -> str:
        """
        The address of the first listening endpoint whose description starts
        with C{prefix} (C{"ssl:"}, C{"tcp6:"}, ...).
        """
        ready = self.ready()
        for line in ready:
            if not line.metrics and line.description.startswith(prefix):
                return line.address
        raise AssertionError(f"no listener {prefix!r} in {ready}")

    def metricsURL(self) -> str:
        """
        The URL of the C{--metrics} site.
        """
        (url,) = [line.address for line in self.ready() if line.metrics]
        return url

    def waitForLog(
        self,
        pattern: str,
        count: int = 1,
        timeout: float | None = None,
    ) -> list[re.Match[str]]:
        """
        Wait until C{count} log lines match the regular expression C{pattern}
        (searched in each line, so C{$} is its end) and return the first match
        of each; fail if the server exits first or after C{timeout} seconds.
        """
        compiled = re.compile(pattern, re.MULTILINE)
        found: list[re.Match[str]] = []
        offset = 0

        def enough() -> bool:
            nonlocal offset
            exited = self.process.poll() is not None
            block, offset = self._linesFrom(offset)
            lineEnd = 0
            for match in compiled.finditer(block):
                if match.start() >= lineEnd:  # one match a line
                    found.append(match)
                    lineEnd = block.find("\n", match.start())
            if len(found) >= count:
                return True
            if exited:
                raise AssertionError(
                    f"server exited ({self.process.returncode}) before logging "
                    f"{count} x {pattern!r}\n{self.log()}"
                )
            return False

        what = f"{count} x {pattern!r} in the server log"
        waitFor(enough, what, timeout or self.timeout, self.log)
        return found

    def signal(self, number: int) -> None:
        """
        Send signal C{number} (C{signal.SIGTERM}, C{signal.SIGKILL}, ...).
        """
        self.process.send_signal(number)

    def stop(self, timeout: float | None = None) -> int:
        """
        SIGTERM the server, wait for it to exit (SIGKILL after C{timeout}
        seconds) and return its exit status; safe to call more than once.

        Plain twistd ends an orderly SIGTERM shutdown by re-raising the
        signal, so that status is C{-signal.SIGTERM} rather than 0.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout or self.timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def connect(
        self, source: str = "127.0.0.1", receiveBuffer: int = 0
    ) -> socket.socket:
        """
        A new blocking client socket from C{source} to the first listening
        endpoint (on 127.0.0.1); a small C{receiveBuffer} keeps the kernel
        from holding much of what the server sends it.
        """
        sock = socket.socket()
        try:
            if receiveBuffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
            sock.settimeout(self.timeout)
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", self.port))
        except BaseException:
            sock.close()
            raise
        return sock


def launch(
    directory: Path,
    command: Sequence[str],
    logPath: Path | None = None,
    listeners: int = 1,
    timeout: float = TIMEOUT,
    env: dict[str, str] | None = None,
    passFds: Sequence[int] = (),
    fileLimit: tuple[int, int] | None = None,
) -> RunningServer:
    """
    Run C{command}, a C{twistd nbecho} however wrapped, in C{directory} and
    wait for C{listeners} C{Ready?} lines in its log.

    @param logPath: the C{--logfile} the command gives twistd, if any; its
        stdout and stderr always go to a new file in C{directory}.
    @param listeners: how many C{Ready?} lines to wait for (0: none).
    @param timeout: the bound of the wait, and of the server's later waits.
    @param env: the server's environment (default: this one).
    @param passFds: file descriptors the server inherits (socket activation).
    @param fileLimit: the server's (soft, hard) C{RLIMIT_NOFILE}.
    @return: the running server with its addresses filled in; the caller
        must call L{RunningServer.stop} (the fixtures do).
    """

    def limitFiles() -> None:
        if fileLimit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, fileLimit)

    outputPath = directory / f"twistd-{time.monotonic_ns()}.log"
    with outputPath.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=passFds,
            preexec_fn=limitFiles if fileLimit else None,
        )
    server = RunningServer(
        process, logPath or outputPath, list(command), outputPath, timeout=timeout
    )
    if listeners:
        try:
            server.waitForLog(r"Ready\? nbecho (listening on|metrics at) ", listeners)
        except BaseException:
            server.stop()
            raise
        server.addresses = [
            ready.address for ready in server.ready() if not ready.metrics
        ]
    return server


@attrs.define
class ServerFactory:
    """
    Start C{twistd -n --pidfile= nbecho} servers in one directory, and stop
    them all at the end: the C{nbechoServer} fixture.

    @ivar directory: the servers' working directory, where their log files
        go, so that relative UNIX socket paths and certificate files work.
    """

    directory: Path
    started: list[RunningServer] = attrs.field(factory=list)

    def __call__(
        self,
        *nbechoArgs: str,
        listeners: int | None = None,
        logFile: str | None = None,
        timeout: float = TIMEOUT,
        env: dict[str, str] | None = None,
        passFds: Sequence[int] = (),
        fileLimit: tuple[int, int] | None = None,
        twistdArgs: Sequence[str] = (),
    ) -> RunningServer:
        """
        Start C{twistd -n --pidfile= nbecho ARGS} and wait until it listens.

        @param nbechoArgs: options for C{twistd nbecho}; without C{--port} or
            C{--listen} the server gets C{--port 0 --interface 127.0.0.1}.
        @param listeners: how many C{Ready?} lines to wait for; by default
            one per C{--listen} and C{--metrics} option (or one).
        @param logFile: a C{--logfile} for twistd, relative to C{directory};
            by default twistd logs to its standard output.  (twistd rotates
            log files at 1 MB: keep long runs on standard output.)
        @param timeout, env, passFds, fileLimit: see L{launch}.
        @param twistdArgs: options for twistd itself (C{--reactor epoll}),
            given before C{nbecho}.
        """
        args = list(nbechoArgs)
        if not any(arg.startswith(("--port", "--listen", "-l", "-p")) for arg in args):
            args[:0] = LOOPBACK_ANY_PORT
        if listeners is None:
            listens = ("--listen", "-l", "--metrics")
            listeners = max(1, sum(arg.startswith(listens) for arg in args))
        command = twistdCommand(*args)
        command[1:1] = twistdArgs
        logPath = None
        if logFile is not None:
            logPath = self.directory / logFile
            command.insert(1, f"--logfile={logPath}")
        server = launch(
            self.directory,
            command,
            logPath,
            listeners,
            timeout,
            env,
            passFds,
            fileLimit,
        )
        self.started.append(server)
        return server

    def stopAll(self) -> None:
        """
        Stop every server started here that is still running.
        """
        for server in self.started:
            server.stop()


def runTwistd(directory: Path, *nbechoArgs: str) -> subprocess.CompletedProcess[str]:
    """
    Run C{twistd -n --pidfile= nbecho ARGS} in C{directory} to the end, for
    the command lines that must fail, and return its status and output.
    """
    return subprocess.run(
        twistdCommand(*nbechoArgs),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
