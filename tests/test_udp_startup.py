"""
The UDP listener starts like the stream listeners: bound before twistd
forks (a taken port is one line and status 1, daemon or C{-n}, no pid file,
no C{Ready?} line first), dual-stack without an interface as C{--port} is,
and served beside C{--port} when both are given.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._daemons import Daemons
from tests._servers import ServerFactory, portOf, runTwistd, tool, waitFor
from tests.test_daemon_startup import assertFailedStart
from tests.test_udp import talk

#: How long a failed start may take, twistd's own start-up included: "within
#: a second" on an idle machine, with room for the shared 2-core CI machine.
FAILED_START = 5.0


@pytest.fixture
def takenUDP() -> Iterator[int]:
    """
    A UDP port on 127.0.0.1 held by a Python socket for the test.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_daemonPortTaken(daemons: Daemons, takenUDP: int) -> None:
    """
    A daemon whose UDP port is taken returns 1 at once with one line naming
    the listener and the reason, and leaves no pid file or process.
    """
    description = f"udp:{takenUDP}:interface=127.0.0.1"
    result = daemons.start("--listen", description)
    assertFailedStart(
        daemons, result, f"UDP port {takenUDP} is already in use on 127.0.0.1"
    )
    assert result.seconds < FAILED_START, result
    assert "Ready?" not in daemons.log()


def test_daemonPortTakenBySocat(daemons: Daemons) -> None:
    """
    A daemon whose dual-stack C{udp:PORT} collides with socat's IPv4 socket
    on that port fails its start the same way.
    """
    port = _freeUDPPort()
    socat = subprocess.Popen(
        [tool("socat", required=True), "-u", f"UDP-RECV:{port},bind=127.0.0.1", "-"],
        stdout=subprocess.DEVNULL,
    )
    try:
        waitFor(lambda: _taken(port), "socat to bind its UDP port")
        result = daemons.start("--listen", f"udp:{port}")
        assertFailedStart(
            daemons,
            result,
            f"UDP port {port} is already in use (all interfaces, IPv4 and IPv6)",
        )
    finally:
        socat.kill()
        socat.wait()


def _freeUDPPort() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def test_foregroundPortTaken(tmp_path: Path, takenUDP: int) -> None:
    """
    With C{-n}, a taken UDP port is one line on the terminal and status 1,
    not the start-up lines of a server that then gives up.
    """
    description = f"udp:{takenUDP}:interface=127.0.0.1"
    result = runTwistd(tmp_path, "--listen", description)
    assert result.returncode == 1, result
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, lines
    assert f"UDP port {takenUDP} is already in use on 127.0.0.1" in lines[0]


def test_samePortTwice(tmp_path: Path) -> None:
    """
    Two UDP listeners on one port fail the start before either says
    C{Ready?}.
    """
    description = f"udp:{_freeUDPPort()}:interface=127.0.0.1"
    result = runTwistd(tmp_path, "--listen", description, "--listen", description)
    assert result.returncode == 1, result
    output = result.stdout + result.stderr
    assert "Ready?" not in output, output
    assert "is already in use on 127.0.0.1" in output, output


def test_dualStack(nbechoServer: ServerFactory) -> None:
    """
    C{udp:0} without an interface echoes socat's datagrams over 127.0.0.1
    and over ::1, on one port, as C{--port} serves TCP.
    """
    server = nbechoServer("--listen", "udp:0")
    (ready,) = server.ready()
    assert "IPv4 and IPv6" in ready.description, ready
    socat = tool("socat", required=True)
    four = [socat, "-", f"UDP4:127.0.0.1:{server.port}"]
    six = [socat, "-", f"UDP6:[::1]:{server.port}"]
    assert talk(four, [b"over IPv4\n"]) == [b"over IPv4\n"]
    assert talk(six, [b"over IPv6\n"]) == [b"over IPv6\n"]
    server.waitForLog(r"Read Data 127\.0\.0\.1:\d+ over IPv4$")
    server.waitForLog(r"Read Data \[::1\]:\d+ over IPv6$")


def test_portWithListen(nbechoServer: ServerFactory) -> None:
    """
    C{--port} given with C{--listen udp:} serves TCP on its port as well as
    UDP: neither option is dropped.
    """
    server = nbechoServer(
        "--port", "0", "--interface", "127.0.0.1",
        "--listen", "udp:0:interface=127.0.0.1",
        listeners=2,
    )  # fmt: skip
    tcpPort = portOf(server.address("tcp:"))
    udpPort = portOf(server.address("udp:"))
    nc = tool("nc", required=True)
    assert talk([nc, "127.0.0.1", str(tcpPort)], [b"tcp\n"]) == [b"tcp\n"]
    assert talk([nc, "-u", "127.0.0.1", str(udpPort)], [b"udp\n"]) == [b"udp\n"]
