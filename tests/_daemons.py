"""
Real daemons for the end-to-end tests: C{twistd nbecho} without C{-n}, as an
operator starts it from a terminal, in a temporary directory.

The parent twistd forks, the daemon detaches, and the parent returns once
the daemon has started (or failed to).  Everything here is bounded: a parent
that does not return fails the test, and every process still running in the
test's directory when it ends is stopped, whether or not it left a pid file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from tests._servers import TIMEOUT, script, waitFor

#: How long the twistd parent may take to return, start-up failure or not:
#: "a few seconds", with room for a loaded machine.
DAEMON_START = 10.0

#: The pid file and log file every daemon here uses, in its directory.
PIDFILE = "twistd.pid"
LOGFILE = "twistd.log"


@attrs.frozen
class DaemonStart:
    """
    What the user saw when the twistd parent returned.

    @ivar returncode: the parent's exit status.
    @ivar terminal: the parent's stdout and stderr, as the terminal shows them.
    @ivar seconds: how long the parent took to return.
    """

    returncode: int
    terminal: str
    seconds: float

    def lines(self) -> list[str]:
        """
        The non-blank lines the user saw.
        """
        return [line for line in self.terminal.splitlines() if line.strip()]


def _processState(pid: int) -> str | None:
    """
    The state letter of process C{pid} (C{"Z"} for a zombie), or C{None}
    once it is gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


@attrs.define
class Daemons:
    """
    Start C{twistd --pidfile=twistd.pid nbecho} daemons in C{directory} and
    stop every process left running there at the end.

    @ivar directory: the daemons' working directory (twistd's C{--rundir}
        default), where their pid file and log file go.
    """

    directory: Path

    def start(
        self,
        *nbechoArgs: str,
        twistdArgs: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> DaemonStart:
        """
        Run C{twistd --pidfile=twistd.pid TWISTDARGS nbecho NBECHOARGS}
        without C{-n} and wait for the parent to return; fail if it has not
        after L{DAEMON_START} seconds.
        """
        command = [
            script("twistd"),
            f"--pidfile={PIDFILE}",
            *twistdArgs,
            "nbecho",
            *nbechoArgs,
        ]
        terminalPath = self.directory / f"terminal-{time.monotonic_ns()}.txt"
        began = time.monotonic()
        with terminalPath.open("wb") as terminal:
            parent = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=terminal,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            returncode = parent.wait(DAEMON_START)
        except subprocess.TimeoutExpired:
            parent.kill()
            parent.wait()
            raise AssertionError(
                f"the twistd parent did not return within {DAEMON_START}s\n"
                f"terminal: {terminalPath.read_text(errors='replace')!r}\n"
                f"files: {sorted(p.name for p in self.directory.iterdir())}\n"
                f"log:\n{self.log()}"
            ) from None
        seconds = time.monotonic() - began
        text = terminalPath.read_bytes().decode("utf-8", "replace")
        return DaemonStart(returncode, text, seconds)

    def running(
        self,
        *nbechoArgs: str,
        twistdArgs: Sequence[str] = (),
    ) -> DaemonStart:
        """
        L{start} a daemon that must start (on 127.0.0.1, a free port, unless
        C{nbechoArgs} say otherwise): fail unless the parent returns 0, the
        pid file exists and the log has a C{Ready?} line.
        """
        args = nbechoArgs or ("--port", "0", "--interface", "127.0.0.1")
        result = self.start(*args, twistdArgs=twistdArgs)
        assert result.returncode == 0, (result, self.log())
        assert (self.directory / PIDFILE).exists(), result
        self.waitForLog(r"Ready\? nbecho listening on ")
        return result

    def pid(self) -> int:
        """
        The daemon's pid, from its pid file.
        """
        return int((self.directory / PIDFILE).read_text().strip())

    def port(self) -> int:
        """
        The TCP port of the daemon's first C{Ready?} line.
        """
        match = re.search(r"Ready\? nbecho listening on \S*?:(\d+)\b", self.log())
        assert match is not None, self.log()
        return int(match.group(1))

    def alive(self, pid: int) -> bool:
        """
        Whether process C{pid} is still running (a zombie is not).
        """
        return _processState(pid) not in (None, "Z")

    def log(self, name: str = LOGFILE) -> str:
        """
        The daemon's log file C{name} so far, or C{""}.
        """
        path = self.directory / name
        return path.read_bytes().decode("utf-8", "replace") if path.exists() else ""

    def waitForLog(
        self,
        pattern: str,
        names: Sequence[str] = (LOGFILE,),
        timeout: float = TIMEOUT,
    ) -> str:
        """
        Wait until a line of the log files C{names} matches the regular
        expression C{pattern}, and return the first such line.
        """
        compiled = re.compile(pattern)
        found: list[str] = []

        def matched() -> bool:
            for name in names:
                for line in self.log(name).splitlines():
                    if compiled.search(line):
                        found.append(line)
                        return True
            return False

        waitFor(
            matched,
            f"{pattern!r} in {list(names)}",
            timeout,
            lambda: "\n".join(f"--- {name}\n{self.log(name)}" for name in names),
        )
        return found[0]

    def processes(self) -> list[int]:
        """
        The live processes (zombies excluded) whose working directory is
        this one: the daemons started here, with or without a pid file.
        """
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if Path(cwd) == self.directory and self.alive(int(entry.name)):
                found.append(int(entry.name))
        return found

    def stopAll(self) -> None:
        """
        SIGTERM every process running in this directory, SIGKILL what is
        still there after L{TIMEOUT} seconds.
        """
        for number in (signal.SIGTERM, signal.SIGKILL):
            pids = self.processes()
            for pid in pids:
                try:
                    os.kill(pid, number)
                except ProcessLookupError:
                    pass
            try:
                waitFor(lambda: not self.processes(), "the daemons to stop")
            except AssertionError:
                continue
            return
