"""
IPv6 and UNIX sockets: one server listening on several endpoints at once,
each served to the real C{nbecho-client}, C{nc -U} and C{socat}.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._deploy import CLIENT, Server, lines, runClient, startServer, tool


@pytest.fixture
def multiServer(tmp_path: Path) -> Iterator[Server]:
    server = startServer(
        tmp_path,
        "--listen", "tcp:0:interface=127.0.0.1",
        "--listen", "tcp6:0:interface=\\:\\:1",
        "--listen", f"unix:{tmp_path / 'nbecho.sock'}",
    )  # fmt: skip
    yield server
    server.stop()


def test_all_listeners_ready(multiServer: Server, tmp_path: Path) -> None:
    """Each --listen endpoint logs its own Ready? line with its real address."""
    ready = multiServer.ready()
    assert ready["tcp:0:interface=127.0.0.1"].startswith("127.0.0.1:")
    assert ready["tcp6:0:interface=\\:\\:1"].startswith("[::1]:")
    assert ready[f"unix:{tmp_path / 'nbecho.sock'}"] == f"unix:{tmp_path}/nbecho.sock"


def test_clients_on_every_listener(multiServer: Server, tmp_path: Path) -> None:
    """nbecho-client gets its lines back over IPv4, IPv6 and UNIX at once."""
    endpoints = [
        f"tcp:127.0.0.1:{multiServer.port('tcp:')}",
        f"tcp:\\:\\:1:{multiServer.port('tcp6:')}",
        f"unix:{tmp_path / 'nbecho.sock'}",
    ]
    running = [
        subprocess.Popen(
            [CLIENT, "--connect", endpoint],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for endpoint in endpoints
    ]
    for index, process in enumerate(running):
        data = b"".join(b"%d-%d\n" % (index, n) for n in range(500))
        out, _ = process.communicate(data, timeout=60)
        assert (out, process.returncode) == (data, 0), endpoints[index]
    log = multiServer.stop()
    assert "Accept 127.0.0.1:" in log
    assert "Accept [::1]:" in log
    assert "Accept unix:-" in log
    assert log.count("(client finished sending)") == 3


def test_ipv6_only(tmp_path: Path) -> None:
    """A tcp6 endpoint on ::1 echoes a pipe through nbecho-client --host ::1."""
    server = startServer(tmp_path, "--listen", "tcp6:0:interface=\\:\\:1")
    try:
        result = runClient(
            "--host", "::1", "--port", str(server.port()), input=lines(1000)
        )
        assert (result.stdout, result.returncode) == (lines(1000), 0), result.stderr
    finally:
        log = server.stop()
    assert "Accept [::1]:" in log


def test_unix_socket_nc(multiServer: Server, tmp_path: Path) -> None:
    """nc -U -N gets everything back, a last unterminated line included."""
    result = subprocess.run(
        [tool("nc"), "-N", "-U", str(tmp_path / "nbecho.sock")],
        input=b"over unix\nlast",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.stdout, result.returncode) == (b"over unix\nlast", 0), result.stderr


def test_unix_socket_socat(multiServer: Server, tmp_path: Path) -> None:
    """socat on the UNIX socket gets its lines back until the exit word."""
    result = subprocess.run(
        [tool("socat"), "-t", "30", "-", f"UNIX-CONNECT:{tmp_path / 'nbecho.sock'}"],
        input=b"socat says hi\nexit\nnever read\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.stdout, result.returncode) == (b"socat says hi\nexit\n", 0)
    log = multiServer.stop()
    assert "Read Data unix:- socat says hi" in log
    assert "never read" not in log
