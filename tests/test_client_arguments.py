"""
How the real C{nbecho-client} reads its host and port arguments: a lone
number is the port, C{HOST:PORT} and C{[V6ADDR]:PORT} are one argument, and a
short form of an IPv4 address (C{9999}, C{10.1}) is refused.  Every run is in
a network namespace with only loopback up, so that a client that got it wrong
can reach nothing off this machine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._clients import inNamespaceOf, loopbackOnly
from tests._servers import (
    TIMEOUT,
    RunningServer,
    freePort,
    launch,
    script,
    twistdCommand,
)


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[RunningServer]:
    """
    A server on every interface of a loopback-only network namespace.
    """
    server = launch(tmp_path, loopbackOnly(twistdCommand("--port", str(freePort()))))
    try:
        yield server
    finally:
        server.stop()


def _client(
    server: RunningServer | None, *args: str, stdin: bytes = b"hello\n"
) -> subprocess.CompletedProcess[bytes]:
    command = [script("nbecho-client"), *args]
    if server is None:
        command = loopbackOnly(command)
    else:
        command = inNamespaceOf(server.pid, command)
    return subprocess.run(
        command, input=stdin, capture_output=True, timeout=TIMEOUT, check=False
    )


@pytest.mark.parametrize(
    "form", ["{port}", "127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"]
)
def test_oneArgumentNamesTheServer(isolated: RunningServer, form: str) -> None:
    """
    C{nbecho-client 9999}, C{HOST:PORT} and C{[::1]:PORT} reach the server on
    this machine and echo.
    """
    port = isolated.port
    result = _client(isolated, form.format(port=port))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hello\n", b"")


def test_hostAndPortArguments(isolated: RunningServer) -> None:
    """
    C{HOST PORT} as two arguments, as to nc, with an IPv6 address too.
    """
    result = _client(isolated, "::1", str(isolated.port))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hello\n", b"")


@pytest.mark.parametrize(
    "args, full",
    [
        (["9999", "8888"], "0.0.39.15"),
        (["10.1", "9999"], "10.0.0.1"),
        (["127.1:9999"], "127.0.0.1"),
        (["--host", "2130706433"], "127.0.0.1"),
        (["--udp", "--host", "0x7f.1"], "127.0.0.1"),
        (["--connect", "tcp:host=127.1:port=9999"], "127.0.0.1"),
    ],
)
def test_shortAddressRefused(args: list[str], full: str) -> None:
    """
    A host that only the resolver's shorthand reads as an address is refused:
    one line naming the full address, status 2, nothing sent.
    """
    result = _client(None, *args)
    assert result.returncode == 2
    assert result.stdout == b""
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith("nbecho-client: ")
    assert f"short form of the address {full}: write {full} if you mean it" in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["localhost:"], "'localhost:' has no port after the colon"),
        (["[::1"], "write an IPv6 address as [ADDRESS]:PORT"),
        (["localhost:99", "88"], "give the port once: 'localhost:99' or '88'"),
    ],
)
def test_badTargetRefused(args: list[str], message: str) -> None:
    """
    A target that cannot be read is a usage error in one line, status 2.
    """
    result = _client(None, *args)
    assert result.returncode == 2
    (line,) = result.stderr.decode().splitlines()
    assert message in line


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_helpFlag(flag: str) -> None:
    """
    C{-h} prints the help, as for nc and curl, and exits 0; the host is
    C{--host} or an argument.
    """
    result = _client(None, flag, stdin=b"")
    assert result.returncode == 0
    assert result.stdout.startswith(b"Usage: nbecho-client ")
    assert b"-h, --help" in result.stdout
    assert b"--host=" in result.stdout
