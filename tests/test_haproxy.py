"""
HAProxy in front of two nbecho instances, with C{contrib/haproxy.cfg}: the
real C{haproxy} sends PROXY headers (v1 to one instance, v2 to the other),
and each instance logs the clients' own addresses; its health checks keep
clients away from an instance that stopped.
"""

from __future__ import annotations

import csv
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from tests._clients import lines, runClient, startClient
from tests._servers import (
    TIMEOUT,
    RunningServer,
    ServerFactory,
    freePort,
    tool,
    waitFor,
)

CONTRIB = Path(__file__).parent.parent / "contrib"
CLIENTS = 6


@attrs.define
class Proxied:
    """
    HAProxy and the instances behind it.

    @ivar statsSocket: HAProxy's command socket, for the servers' states.
    """

    instances: list[RunningServer]
    port: int
    process: subprocess.Popen[bytes]
    statsSocket: Path

    def states(self) -> dict[str, dict[str, str]]:
        """
        HAProxy's statistics of each backend server (C{status}: C{UP},
        C{DOWN}...; C{check_status}: C{L7OK}, C{L4CON}...), by server name.
        """
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(TIMEOUT)
            connection.connect(str(self.statsSocket))
            connection.sendall(b"show stat\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        rows = csv.DictReader(answer.decode().lstrip("# ").splitlines())
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == "nbecho_instances"
            and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def waitForState(self, name: str, field: str, value: str) -> None:
        """
        Wait until HAProxy's statistics say C{field} is C{value} for server
        C{name}.
        """
        waitFor(
            lambda: self.states()[name][field] == value,
            f"{name} {field} {value}",
            details=lambda: f"{self.states()}",
        )


@pytest.fixture
def haproxy(nbechoServer: ServerFactory, tmp_path: Path) -> Iterator[Proxied]:
    # Every connection's Accept line is logged: the tests count them.
    instances = [
        nbechoServer(
            "--listen",
            "haproxy:tcp:0:interface=127.0.0.1",
            *("--log-connection-rate", "0", "--log-connection-rate-total", "0"),
        )
        for _ in range(2)
    ]
    port = freePort()
    config = (CONTRIB / "haproxy.cfg").read_text()
    config = config.replace("bind :9999", f"bind 127.0.0.1:{port}")
    config = config.replace("127.0.0.1:10001", f"127.0.0.1:{instances[0].port}")
    config = config.replace("127.0.0.1:10002", f"127.0.0.1:{instances[1].port}")
    with haproxyRunning(config, tmp_path) as (process, ready):
        yield Proxied(instances, port, process, ready)


@contextmanager
def haproxyRunning(
    config: str, directory: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """
    Run the real C{haproxy} with C{config} (written to C{directory}) until
    the block ends; yield the process and its command socket, which exists
    once its listeners are bound.
    """
    ready = directory / "haproxy.sock"
    config = config.replace("global\n", f"global\n    stats socket {ready}\n", 1)
    (directory / "haproxy.cfg").write_text(config)
    process = subprocess.Popen(
        [tool("haproxy", required=True), "-db", "-f", str(directory / "haproxy.cfg")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        waitFor(
            lambda: ready.exists() or process.poll() is not None, "haproxy to start"
        )
        assert process.poll() is None, process.communicate()[0]
        yield process, ready
    finally:
        process.terminate()
        process.communicate(timeout=30)


class _Recorder(Protocol):
    """
    A client that sends its lines, then half-closes or sends the exit word,
    and keeps everything echoed.
    """

    def __init__(self, data: bytes, halfClose: bool) -> None:
        self.data = data
        self.halfClose = halfClose
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.data)  # type: ignore[union-attr]
        if self.halfClose:
            self.transport.loseWriteConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(self.received)


@attrs.define
class _Only(Factory):
    """
    Connect with this one client.
    """

    client: _Recorder

    def buildProtocol(self, address: IAddress | None) -> _Recorder:
        return self.client


_ACCEPT = re.compile(r"Accept 127\.0\.0\.1:(\d+)$", re.MULTILINE)
#: A health check's session: the exit word alone, echoed, then a clean close.
_CHECK = re.compile(
    r"close 127\.0\.0\.1:(\d+) \(exit word\): 1 message, 5 bytes in, 5 bytes out",
    re.MULTILINE,
)


def _clientPorts(log: str) -> set[int]:
    """
    The ports of the connections accepted in C{log}, health checks left out.
    """
    return set(map(int, _ACCEPT.findall(log))) - set(map(int, _CHECK.findall(log)))


@pytest_twisted.ensureDeferred
async def test_clients_through_haproxy(haproxy: Proxied) -> None:
    """Clients through HAProxy get their data back; both instances log their ports."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", haproxy.port)
    sent: dict[int, bytes] = {}
    recorders: dict[int, _Recorder] = {}
    for index in range(CLIENTS):
        data = b"".join(b"client %d line %d\n" % (index, n) for n in range(200))
        halfClose = index % 2 == 0
        # A last line without newline comes back only if the half-close
        # reaches nbecho through the PROXY wrapper.
        data += b"partial %d" % (index,) if halfClose else b"exit\n"
        recorder = _Recorder(data, halfClose)
        await endpoint.connect(_Only(recorder))
        port = recorder.transport.getHost().port  # type: ignore[union-attr]
        sent[port], recorders[port] = data, recorder
    for port, recorder in recorders.items():
        assert await recorder.done == sent[port]
    piped = runClient(haproxy.port, lines(5000))
    assert (piped.stdout, piped.returncode) == (lines(5000), 0), piped.stderr
    for instance in haproxy.instances:
        instance.stop()
    logs = [instance.log() for instance in haproxy.instances]
    accepted = [_clientPorts(log) for log in logs]
    assert all(accepted), "both instances served connections"
    assert set(sent) <= accepted[0] | accepted[1]
    assert sum(map(len, accepted)) == CLIENTS + 1  # and nothing but the clients
    for port in sent:
        assert any(f"Read Data 127.0.0.1:{port} client " in log for log in logs)


def test_config_valid() -> None:
    """haproxy -c accepts contrib/haproxy.cfg as shipped."""
    result = subprocess.run(
        [tool("haproxy", required=True), "-c", "-f", str(CONTRIB / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_health_checks(haproxy: Proxied) -> None:
    """Both instances pass the PROXY echo check cleanly; a stopped one goes DOWN."""
    for name in ("nbecho1", "nbecho2"):
        haproxy.waitForState(name, "check_status", "L7OK")
    haproxy.instances[1].stop()
    haproxy.waitForState("nbecho2", "status", "DOWN")
    assert haproxy.states()["nbecho1"]["status"] == "UP"
    haproxy.instances[0].stop()
    for instance in haproxy.instances:
        log = instance.log()
        checks = _CHECK.findall(log)
        assert checks, log
        # A check is a whole echo session, and nothing but one: no PROXY
        # header error, no connection lost uncleanly, no client.
        assert _ACCEPT.findall(log) == checks, log
        assert "close " not in _CHECK.sub("", log), log
        assert "No valid PROXY header" not in log, log
        assert "Traceback" not in log, log


def _serveAll(port: int, count: int, tag: int) -> None:
    """
    Run C{count} C{nbecho-client}s at once through HAProxy on C{port}, and
    check that each got all its lines back.
    """
    clients = [(startClient(port), index) for index in range(count)]
    for client, index in clients:
        data = b"".join(
            b"round %d client %d line %d\n" % (tag, index, n) for n in range(200)
        )
        out, err = client.communicate(data, timeout=TIMEOUT)
        assert (out, client.returncode) == (data, 0), err


def test_one_instance_stopped(haproxy: Proxied) -> None:
    """With one of two instances stopped, every client is served by the other."""
    stopped, running = haproxy.instances
    stopped.stop()
    # HAProxy has not noticed yet: clients sent to the stopped instance find
    # it gone, and are sent to the other one.
    _serveAll(haproxy.port, CLIENTS, 1)
    haproxy.waitForState("nbecho1", "status", "DOWN")
    _serveAll(haproxy.port, CLIENTS, 2)
    running.stop()
    assert len(_clientPorts(running.log())) == 2 * CLIENTS
