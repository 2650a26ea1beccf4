"""
A server whose port or socket path is taken says so in words an operator
understands, in one line with status 1: the messages docs/usage.rst quotes.
Every run is in a network namespace with only loopback up, where listening
on all interfaces reaches nothing off this machine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._clients import inNamespaceOf, loopbackOnly
from tests._servers import TIMEOUT, RunningServer, freePort, launch, twistdCommand


@pytest.fixture
def first(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[RunningServer, list[str]]]:
    """
    A server holding a port (or socket path) in a loopback-only namespace,
    listening as C{request.param} says.
    """
    args = [arg.format(port=freePort(), dir=tmp_path) for arg in request.param]
    server = launch(tmp_path, loopbackOnly(twistdCommand(*args)))
    try:
        yield server, args
    finally:
        server.stop()


@pytest.mark.parametrize(
    "first, message",
    [
        (
            ["--port", "{port}"],
            "nbecho: port {port} is already in use (all interfaces, IPv4 and IPv6)",
        ),
        (
            ["--port", "{port}", "--interface", "127.0.0.1"],
            "nbecho: port {port} is already in use on 127.0.0.1",
        ),
        (
            ["--listen", "tcp:{port}"],
            "nbecho: port {port} is already in use (all interfaces, IPv4)",
        ),
        (
            ["--listen", "udp:{port}:interface=127.0.0.1"],
            "nbecho: UDP port {port} is already in use on 127.0.0.1",
        ),
        (
            ["--listen", "unix:{dir}/echo.sock"],
            "nbecho: socket {dir}/echo.sock is already in use by another running"
            " process",
        ),
    ],
    indirect=["first"],
    ids=["allInterfaces", "oneInterface", "listenTCP", "udp", "unix"],
)
def test_portInUse(
    first: tuple[RunningServer, list[str]], message: str, tmp_path: Path
) -> None:
    """
    A second server on the same port or path ends with status 1 and the one
    line that names what is taken.
    """
    server, args = first
    second = subprocess.run(
        inNamespaceOf(server.pid, twistdCommand(*args)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert second.returncode == 1
    port = 0 if args[-1].startswith("unix:") else server.port
    expected = message.format(port=port, dir=tmp_path)
    output = second.stdout + second.stderr
    assert "Traceback" not in output
    found = [line for line in output.splitlines() if "nbecho: " in line]
    assert [line.rpartition("] ")[2] for line in found] == [expected], output
