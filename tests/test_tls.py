"""
TLS: the server on Twisted's C{ssl:} endpoint, verified by the real
C{openssl s_client} and by C{nbecho-client --ca}, with certificates made at
run time by the real C{openssl} command.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import attrs
import pytest

from tests._clients import lines, runClient
from tests._servers import RunningServer, ServerFactory, tool


@attrs.frozen
class PKI:
    """
    A throwaway certificate authority and a server certificate it signed
    for C{localhost}, plus an unrelated authority that signed nothing here.
    """

    ca: Path
    otherCA: Path
    certificate: Path
    key: Path


def _openssl(directory: Path, *arguments: str) -> None:
    subprocess.run(
        [tool("openssl", required=True), *arguments],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )


def makePKI(directory: Path) -> PKI:
    """
    Make a CA and a C{localhost} server certificate with the real C{openssl}
    command, as an operator would for a test deployment.
    """
    directory.mkdir(parents=True, exist_ok=True)
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for name in ("ca", "other-ca"):
        _openssl(
            directory,
            "req", "-x509", *curve, "-days", "1",
            "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-subj", f"/CN=nbecho test {name}",
        )  # fmt: skip
    _openssl(
        directory,
        "req", *curve, "-keyout", "key.pem", "-out", "server.csr",
        "-subj", "/CN=localhost",
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
    )
    _openssl(
        directory,
        "x509", "-req", "-in", "server.csr", "-days", "1",
        "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-extfile", "server.ext", "-out", "cert.pem",
    )  # fmt: skip
    return PKI(
        ca=directory / "ca.pem",
        otherCA=directory / "other-ca.pem",
        certificate=directory / "cert.pem",
        key=directory / "key.pem",
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return makePKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tlsServer(nbechoServer: ServerFactory, pki: PKI) -> RunningServer:
    return nbechoServer(
        "--listen",
        f"ssl:0:privateKey={pki.key}:certKey={pki.certificate}:interface=127.0.0.1",
    )


def test_openssl_s_client_echoes(tlsServer: RunningServer, pki: PKI) -> None:
    """openssl s_client, verifying chain and host name, gets its lines back."""
    result = subprocess.run(
        [
            tool("openssl", required=True),
            "s_client", "-quiet", "-verify_return_error",
            "-connect", f"127.0.0.1:{tlsServer.port}",
            "-CAfile", str(pki.ca), "-verify_hostname", "localhost",
        ],
        input=b"hello over TLS\nsecond line\nexit\n",
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.stdout == b"hello over TLS\nsecond line\nexit\n", result.stderr
    assert result.returncode == 0
    tlsServer.stop()
    log = tlsServer.log()
    assert "Read Data 127.0.0.1:" in log and "hello over TLS" in log
    assert "(exit word)" in log


def test_client_verifies_with_ca(tlsServer: RunningServer, pki: PKI) -> None:
    """nbecho-client --ca trusts the CA and prints all of a 1000-line pipe."""
    result = runClient(
        None, lines(1000),
        "--connect", f"tls:host=localhost:port={tlsServer.port}",
        "--ca", str(pki.ca),
    )  # fmt: skip
    assert result.stdout == lines(1000), result.stderr
    assert (result.returncode, result.stderr) == (0, b"")


def test_client_last_line_without_newline(tlsServer: RunningServer, pki: PKI) -> None:
    """Over TLS (no half-close) a last line without newline comes back as sent."""
    result = runClient(
        None, b"first\nno newline",
        "--connect", f"tls:host=localhost:port={tlsServer.port}",
        "--ca", str(pki.ca),
    )  # fmt: skip
    assert (result.stdout, result.returncode) == (b"first\nno newline", 0)
    tlsServer.stop()
    log = tlsServer.log()
    assert "Read Data" in log and "no newline" in log


def test_client_wrong_ca(tlsServer: RunningServer, pki: PKI) -> None:
    """A client trusting another CA refuses the server in one line, exit 1."""
    description = f"tls:host=localhost:port={tlsServer.port}"
    result = runClient(
        None, b"secret\n", "--connect", description, "--ca", str(pki.otherCA)
    )
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"nbecho-client: cannot connect to {description}: "
        "TLS handshake failed: certificate verify failed\n"
    )
    tlsServer.stop()
    assert "secret" not in tlsServer.log()


def test_client_wrong_host_name(tlsServer: RunningServer, pki: PKI) -> None:
    """A certificate the CA signed for another name fails the host name check."""
    port = tlsServer.port
    description = f"tls:host=echo.invalid:port={port}:endpoint=tcp\\:127.0.0.1\\:{port}"
    result = runClient(None, b"x\n", "--connect", description, "--ca", str(pki.ca))
    assert result.returncode == 1, result
    assert result.stderr.decode() == (
        f"nbecho-client: cannot connect to {description}: "
        "TLS handshake failed: certificate does not match the host name\n"
    )
