"""
Several endpoints (repeated C{--listen}), IPv6 and UNIX sockets: one server
listening on all of them at once, each served to the real C{nbecho-client},
C{nc -U} and C{socat}.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests._clients import lines, runClient, startClient
from tests._servers import RunningServer, ServerFactory, portOf, tool


@pytest.fixture
def multiServer(nbechoServer: ServerFactory, tmp_path: Path) -> RunningServer:
    return nbechoServer(
        "--listen", "tcp:0:interface=127.0.0.1",
        "--listen", "tcp6:0:interface=\\:\\:1",
        "--listen", f"unix:{tmp_path / 'nbecho.sock'}",
    )  # fmt: skip


def test_severalEndpoints(nbechoServer: ServerFactory, tmp_path: Path) -> None:
    """
    Repeated C{--listen} serves every endpoint (TCP and a UNIX socket) with
    one C{Ready?} line each.
    """
    server = nbechoServer(
        "--listen", "tcp:0:interface=127.0.0.1", "--listen", "unix:echo.sock"
    )
    assert server.addresses[1].startswith("unix:")
    assert server.addresses[1].endswith("echo.sock")
    overTCP = runClient(server.port, b"over tcp\n")
    overUNIX = runClient(
        None, b"over unix\n", "--connect", f"unix:{tmp_path / 'echo.sock'}"
    )
    assert (overTCP.returncode, overTCP.stdout) == (0, b"over tcp\n")
    assert (overUNIX.returncode, overUNIX.stdout) == (0, b"over unix\n")
    server.waitForLog(r"close ", count=2)


def test_all_listeners_ready(multiServer: RunningServer, tmp_path: Path) -> None:
    """Each --listen endpoint logs its own Ready? line with its real address."""
    ready = {line.description: line.address for line in multiServer.ready()}
    assert ready["tcp:0:interface=127.0.0.1"].startswith("127.0.0.1:")
    assert ready["tcp6:0:interface=\\:\\:1"].startswith("[::1]:")
    assert ready[f"unix:{tmp_path / 'nbecho.sock'}"] == f"unix:{tmp_path}/nbecho.sock"


def test_clients_on_every_listener(multiServer: RunningServer, tmp_path: Path) -> None:
    """nbecho-client gets its lines back over IPv4, IPv6 and UNIX at once."""
    endpoints = [
        f"tcp:127.0.0.1:{portOf(multiServer.address('tcp:'))}",
        f"tcp:\\:\\:1:{portOf(multiServer.address('tcp6:'))}",
        f"unix:{tmp_path / 'nbecho.sock'}",
    ]
    running = [startClient(None, "--connect", endpoint) for endpoint in endpoints]
    for index, process in enumerate(running):
        data = b"".join(b"%d-%d\n" % (index, n) for n in range(500))
        out, _ = process.communicate(data, timeout=60)
        assert (out, process.returncode) == (data, 0), endpoints[index]
    multiServer.stop()
    log = multiServer.log()
    assert "Accept 127.0.0.1:" in log
    assert "Accept [::1]:" in log
    assert "Accept unix:-" in log
    assert log.count("(client finished sending)") == 3


def test_ipv6_only(nbechoServer: ServerFactory) -> None:
    """A tcp6 endpoint on ::1 echoes a pipe through nbecho-client --host ::1."""
    server = nbechoServer("--listen", "tcp6:0:interface=\\:\\:1")
    result = runClient(None, lines(1000), "--host", "::1", "--port", str(server.port))
    assert (result.stdout, result.returncode) == (lines(1000), 0), result.stderr
    server.stop()
    assert "Accept [::1]:" in server.log()


def test_unix_socket_nc(multiServer: RunningServer, tmp_path: Path) -> None:
    """nc -U -N gets everything back, a last unterminated line included."""
    result = subprocess.run(
        [tool("nc", required=True), "-N", "-U", str(tmp_path / "nbecho.sock")],
        input=b"over unix\nlast",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.stdout, result.returncode) == (b"over unix\nlast", 0), result.stderr


def test_unix_socket_socat(multiServer: RunningServer, tmp_path: Path) -> None:
    """socat on the UNIX socket gets its lines back until the exit word."""
    result = subprocess.run(
        [
            tool("socat", required=True),
            "-t",
            "30",
            "-",
            f"UNIX-CONNECT:{tmp_path / 'nbecho.sock'}",
        ],
        input=b"socat says hi\nexit\nnever read\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.stdout, result.returncode) == (b"socat says hi\nexit\n", 0)
    multiServer.stop()
    log = multiServer.log()
    assert "Read Data unix:- socat says hi" in log
    assert "never read" not in log
