"""
TLS: the server on Twisted's C{ssl:} endpoint, verified by the real
C{openssl s_client} and by C{nbecho-client --ca}, with certificates made at
run time by the real C{openssl} command.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._deploy import PKI, Server, lines, makePKI, runClient, startServer, tool


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return makePKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tlsServer(tmp_path: Path, pki: PKI) -> Iterator[Server]:
    server = startServer(
        tmp_path,
        "--listen",
        f"ssl:0:privateKey={pki.key}:certKey={pki.certificate}:interface=127.0.0.1",
    )
    yield server
    server.stop()


def test_openssl_s_client_echoes(tlsServer: Server, pki: PKI) -> None:
    """openssl s_client, verifying chain and host name, gets its lines back."""
    result = subprocess.run(
        [
            tool("openssl"), "s_client", "-quiet", "-verify_return_error",
            "-connect", f"127.0.0.1:{tlsServer.port('ssl:')}",
            "-CAfile", str(pki.ca), "-verify_hostname", "localhost",
        ],
        input=b"hello over TLS\nsecond line\nexit\n",
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.stdout == b"hello over TLS\nsecond line\nexit\n", result.stderr
    assert result.returncode == 0
    log = tlsServer.stop()
    assert "Read Data 127.0.0.1:" in log and "hello over TLS" in log
    assert "(exit word)" in log


def test_client_verifies_with_ca(tlsServer: Server, pki: PKI) -> None:
    """nbecho-client --ca trusts the CA and prints all of a 1000-line pipe."""
    result = runClient(
        "--connect", f"tls:host=localhost:port={tlsServer.port('ssl:')}",
        "--ca", str(pki.ca),
        input=lines(1000),
    )  # fmt: skip
    assert result.stdout == lines(1000), result.stderr
    assert (result.returncode, result.stderr) == (0, b"")


def test_client_last_line_without_newline(tlsServer: Server, pki: PKI) -> None:
    """Over TLS (no half-close) a last line without newline comes back as sent."""
    result = runClient(
        "--connect", f"tls:host=localhost:port={tlsServer.port('ssl:')}",
        "--ca", str(pki.ca),
        input=b"first\nno newline",
    )  # fmt: skip
    assert (result.stdout, result.returncode) == (b"first\nno newline", 0)
    log = tlsServer.stop()
    assert "Read Data" in log and "no newline" in log


def test_client_wrong_ca(tlsServer: Server, pki: PKI) -> None:
    """A client trusting another CA refuses the server in one line, exit 1."""
    description = f"tls:host=localhost:port={tlsServer.port('ssl:')}"
    result = runClient(
        "--connect", description, "--ca", str(pki.otherCA), input=b"secret\n"
    )
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"nbecho-client: cannot connect to {description}: "
        "TLS handshake failed: certificate verify failed\n"
    )
    assert "secret" not in tlsServer.stop()


def test_client_wrong_host_name(tlsServer: Server, pki: PKI) -> None:
    """A certificate the CA signed for another name fails the host name check."""
    port = tlsServer.port("ssl:")
    description = f"tls:host=echo.invalid:port={port}:endpoint=tcp\\:127.0.0.1\\:{port}"
    result = runClient("--connect", description, "--ca", str(pki.ca), input=b"x\n")
    assert result.returncode == 1, result
    assert result.stderr.decode() == (
        f"nbecho-client: cannot connect to {description}: "
        "TLS handshake failed: certificate does not match the host name\n"
    )
