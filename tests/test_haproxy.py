"""
HAProxy in front of two nbecho instances, with C{contrib/haproxy.cfg}: the
real C{haproxy} sends PROXY headers (v1 to one instance, v2 to the other),
and each instance logs the clients' own addresses.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
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

from tests._deploy import (
    Server,
    freePort,
    lines,
    runClient,
    startServer,
    tool,
    waitUntil,
)

CONTRIB = Path(__file__).parent.parent / "contrib"
CLIENTS = 6


@attrs.define
class Proxied:
    instances: list[Server]
    port: int
    process: subprocess.Popen[bytes]


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Proxied]:
    instances = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        instances.append(
            startServer(
                tmp_path / name, "--listen", "haproxy:tcp:0:interface=127.0.0.1"
            )
        )
    port = freePort()
    config = (CONTRIB / "haproxy.cfg").read_text()
    config = config.replace("bind :9999", f"bind 127.0.0.1:{port}")
    config = config.replace("127.0.0.1:10001", f"127.0.0.1:{instances[0].port()}")
    config = config.replace("127.0.0.1:10002", f"127.0.0.1:{instances[1].port()}")
    # Only for the test: a socket HAProxy creates once its listeners are bound.
    ready = tmp_path / "haproxy.sock"
    config = config.replace("global\n", f"global\n    stats socket {ready}\n", 1)
    (tmp_path / "haproxy.cfg").write_text(config)
    process = subprocess.Popen(
        [tool("haproxy"), "-db", "-f", str(tmp_path / "haproxy.cfg")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        waitUntil(
            lambda: ready.exists() or process.poll() is not None, "haproxy to start"
        )
        assert process.poll() is None, process.communicate()[0]
        yield Proxied(instances, port, process)
    finally:
        process.terminate()
        process.communicate(timeout=30)
        for instance in instances:
            instance.stop()


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
    piped = runClient("--port", str(haproxy.port), input=lines(5000))
    assert (piped.stdout, piped.returncode) == (lines(5000), 0), piped.stderr
    logs = [instance.stop() for instance in haproxy.instances]
    accepted = [set(map(int, _ACCEPT.findall(log))) for log in logs]
    assert all(accepted), "both instances served connections"
    assert set(sent) <= accepted[0] | accepted[1]
    assert sum(map(len, accepted)) == CLIENTS + 1  # and nothing but the clients
    for port in sent:
        assert any(f"Read Data 127.0.0.1:{port} client " in log for log in logs)
