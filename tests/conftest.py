"""
Fixtures shared by every end-to-end test, and the CI rule that a skipped
end-to-end test fails the run.

Fixtures:

  - C{nbechoServer}: a factory; C{nbechoServer(*nbechoArgs, listeners=N,
    logFile=NAME, timeout=S, env=E, passFds=F, fileLimit=L, twistdArgs=T)}
    (a L{tests._servers.ServerFactory}) starts a real C{twistd -n --pidfile=
    nbecho} (loopback, port 0 unless the arguments say otherwise), waits for
    its C{Ready?} lines and returns a L{tests._servers.RunningServer}
    (C{.port}, C{.addresses}, C{.address(prefix)}, C{.pid}, C{.log()},
    C{.waitForLog()}, C{.connect()}, C{.signal()}, C{.stop()}).  Every
    server it started is stopped when the test ends, whatever happened.
  - C{server}: one server with default options, for tests that need nothing
    special.
  - C{daemons}: a L{tests._daemons.Daemons} to start real C{twistd nbecho}
    daemons (without C{-n}) in the test's directory; whatever still runs is
    stopped after the test.

Helpers to find console scripts (C{script}) and Debian tools (C{tool}) and
to wait for a condition (C{waitFor}) live in L{tests._servers}; those to run
C{nbecho-client} (C{runClient}, C{startClient}), to read a pipe
(C{readLine}) and to talk over a plain socket (C{recvAll}, C{assertEchoes})
in L{tests._clients}.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._daemons import Daemons
from tests._servers import RunningServer, ServerFactory


@pytest.fixture
def nbechoServer(tmp_path: Path) -> Iterator[ServerFactory]:
    """
    Start real nbecho servers on demand; stop them all after the test.

    Each server runs in C{tmp_path} (its log file lives there too), so a test
    can also give it relative UNIX socket paths or certificate files.
    """
    servers = ServerFactory(tmp_path)
    try:
        yield servers
    finally:
        servers.stopAll()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """
    Start real daemons in C{tmp_path}; stop whatever still runs there after
    the test.
    """
    started = Daemons(tmp_path)
    try:
        yield started
    finally:
        started.stopAll()


@pytest.fixture
def server(nbechoServer: ServerFactory) -> RunningServer:
    """
    A real nbecho server with default options on 127.0.0.1, a free port.
    """
    return nbechoServer()


def _ciIsSet() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class _SkipsFailInCI:
    """
    Remember every skipped test and collector; with C{CI} set, turn a
    passing run with skips into a failing one and list them.

    A skip in CI means a dependency is missing from the CI machine
    (C{.ci/apt-packages}) and a behaviour went untested while the run looked
    green.
    """

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        reason = report.longrepr
        if isinstance(reason, tuple):
            reason = reason[2]
        self.skipped.append(f"{report.nodeid}: {reason}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _ciIsSet() and self.skipped and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> None:
        if _ciIsSet() and self.skipped:
            terminalreporter.section(
                "skipped tests fail the run when CI is set", red=True
            )
            for line in self.skipped:
                terminalreporter.line(f"SKIPPED {line}", red=True)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_SkipsFailInCI(), "nbecho-skips-fail-in-ci")
