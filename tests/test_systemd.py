"""
systemd socket activation, run for real: C{systemd-socket-activate} holds
the listening socket, starts twistd on the first connection and hands the
socket over exactly as systemd does with the units in C{contrib/}.
"""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from tests._clients import lines, runClient, startClient
from tests._servers import (
    Ready,
    RunningServer,
    freePort,
    launch,
    runTwistd,
    script,
    tool,
    waitFor,
)

CONTRIB = Path(__file__).parent.parent / "contrib"


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(CONTRIB / name)
    return unit


def _activated(tmp_path: Path) -> tuple[RunningServer, int]:
    """
    Start the command of C{contrib/nbecho.service} under
    C{systemd-socket-activate} with the socket of C{contrib/nbecho.socket},
    moved to a free loopback port.
    """
    socketUnit = _unit("nbecho.socket")["Socket"]
    execStart = shlex.split(_unit("nbecho.service")["Service"]["ExecStart"])
    assert execStart[0].endswith("/twistd"), execStart
    assert socketUnit["ListenStream"].startswith("0.0.0.0:")
    port = freePort()
    logPath = tmp_path / "nbecho.log"
    command = [
        tool("systemd-socket-activate", required=True),
        f"--fdname={socketUnit['FileDescriptorName']}",
        "--listen",
        f"127.0.0.1:{port}",
        script("twistd"),
        f"--logfile={logPath}",
        *execStart[1:],
    ]
    server = launch(tmp_path, command, logPath, listeners=0)
    waitFor(lambda: "Listening on" in server.output(), "systemd-socket-activate")
    return server, port


def test_activation_on_first_connection(tmp_path: Path) -> None:
    """The first client starts twistd, which adopts the socket and echoes to it."""
    server, port = _activated(tmp_path)
    try:
        assert server.ready() == []  # nothing runs until a client comes
        result = runClient(port, lines(1000))
        assert (result.stdout, result.returncode) == (lines(1000), 0), result.stderr
        second = runClient(port, b"second client\nexit\n")
        assert (second.stdout, second.returncode) == (b"second client\nexit\n", 0)
        assert server.ready() == [
            Ready(f"127.0.0.1:{port}", "systemd:domain=INET:index=0")
        ]
    finally:
        server.stop()
    log = server.log()
    assert log.count("Accept 127.0.0.1:") == 2
    assert "Read Data 127.0.0.1:" in log and "second client" in log


def test_clients_queued_before_start(tmp_path: Path) -> None:
    """Clients that connect while twistd is still starting are all served."""
    server, port = _activated(tmp_path)
    try:
        clients = [startClient(port) for _ in range(3)]
        for index, client in enumerate(clients):
            data = b"client %d\n" % (index,) * 100
            out, _ = client.communicate(data, timeout=60)
            assert (out, client.returncode) == (data, 0)
    finally:
        server.stop()
    assert server.log().count("Accept 127.0.0.1:") == 3


def test_without_systemd(tmp_path: Path) -> None:
    """Started outside socket activation, the systemd endpoint is a one-line error."""
    result = runTwistd(tmp_path, "--listen", "systemd:domain=INET:index=0")
    assert result.returncode == 1
    assert result.stderr == (
        "twistd nbecho: --listen 'systemd:domain=INET:index=0': "
        "no socket 0 inherited from systemd (LISTEN_FDS, LISTEN_FDNAMES) "
        "(see: twistd nbecho --help)\n"
    )
