"""
TLS at the edges: a certificate or key OpenSSL refuses stops the server at
start-up with one line naming the file and OpenSSL's reason, and a client
whose handshake fails costs one warning line with its address, never a
traceback.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests._clients import peerOf, recvAll
from tests._servers import ServerFactory, portOf, tool, twistdCommand, waitFor
from tests.test_jsonlog import jsonEvents
from tests.test_tls import PKI, _openssl, makePKI

#: How long a server that must refuse to start may take to exit.
START_UP = 20.0


def _weakKey(directory: Path) -> tuple[Path, Path]:
    """
    A 1024-bit RSA key and its self-signed certificate, which OpenSSL's
    default security level (2 and up) refuses, in separate files.
    """
    _openssl(
        directory,
        "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-days", "1",
        "-keyout", "weak.key", "-out", "weak.crt", "-subj", "/CN=localhost",
    )  # fmt: skip
    return directory / "weak.key", directory / "weak.crt"


def _refusesToStart(directory: Path, description: str) -> str:
    """
    Run twistd nbecho listening on C{description}; fail unless it exits 1
    within L{START_UP} seconds without a traceback or a Ready? line, and
    return its output.
    """
    outputPath = directory / "refused.log"
    with outputPath.open("wb") as output:
        process = subprocess.Popen(
            twistdCommand("--listen", description),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        waitFor(
            lambda: process.poll() is not None or b"Ready?" in outputPath.read_bytes(),
            "twistd to exit",
            timeout=START_UP,
            details=lambda: outputPath.read_text(errors="replace"),
        )
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(START_UP)
    text = outputPath.read_text(errors="replace")
    ready = [line for line in text.splitlines() if "Ready?" in line]
    if ready:
        pytest.fail(f"the server started: {ready[0]}")
    assert process.returncode == 1, text
    assert "Traceback" not in text and "Unhandled" not in text, text
    return text


def test_weakKeyStopsStartUp(tmp_path: Path) -> None:
    """
    A 1024-bit RSA key and certificate in one file end twistd at start-up
    with one line naming the file and OpenSSL's reason.
    """
    key, certificate = _weakKey(tmp_path)
    (tmp_path / "weak.pem").write_bytes(key.read_bytes() + certificate.read_bytes())
    output = _refusesToStart(tmp_path, "ssl:0:privateKey=weak.pem:interface=127.0.0.1")
    errors = [line for line in output.splitlines() if "weak.pem" in line]
    assert len(errors) == 1, output
    assert "key too small" in errors[0], output


def test_weakKeyInItsOwnFileStopsStartUp(tmp_path: Path) -> None:
    """
    A 1024-bit RSA key and its certificate in two files end twistd at
    start-up with one line naming one of them and OpenSSL's reason.
    """
    _weakKey(tmp_path)
    output = _refusesToStart(
        tmp_path,
        "ssl:0:privateKey=weak.key:certKey=weak.crt:interface=127.0.0.1",
    )
    errors = [line for line in output.splitlines() if "weak." in line]
    assert len(errors) == 1, output
    assert "key too small" in errors[0], output


def _plainText(port: int) -> str:
    """
    A client that speaks plain text to a TLS listener; its peer.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        peer = peerOf(sock)
        sock.sendall(b"hello, no TLS here\n")
        recvAll(sock)
    return peer


def _oldTLS(port: int, pki: PKI) -> str:
    """
    openssl s_client offering only TLS 1.0, which the server refuses; its
    peer, from the handshake's own report.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        peer = peerOf(probe)
    result = subprocess.run(
        [
            tool("openssl", required=True),
            "s_client", "-tls1", "-connect", f"127.0.0.1:{port}",
            "-bind", peer, "-CAfile", str(pki.ca),
        ],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    return peer


def test_clientHandshakeFailureIsOneWarning(
    nbechoServer: ServerFactory, tmp_path: Path
) -> None:
    """
    A client whose TLS handshake fails is one warning line with its address
    and no traceback, and the server keeps serving TLS clients.
    """
    pki = makePKI(tmp_path / "pki")
    server = nbechoServer(
        "--log-format", "json",
        "--listen",
        f"ssl:0:privateKey={pki.key}:certKey={pki.certificate}:interface=127.0.0.1",
    )  # fmt: skip
    port = portOf(server.address("ssl:"))
    peers = [_plainText(port), _oldTLS(port, pki)]

    def warnings(peer: str) -> list[object]:
        return [
            event.get("log_text")
            for event in jsonEvents(server.log())
            if peer in str(event.get("log_text"))
            and isinstance(level := event.get("log_level"), dict)
            and level.get("name") == "warn"
        ]

    try:
        waitFor(lambda: all(map(warnings, peers)), "a warning per client", 10)
    except AssertionError:
        pass  # the checks below say which
    events = jsonEvents(server.log())
    problems = [
        f"warning lines about {peer}: {warnings(peer)}; all lines about it: "
        f"{[e.get('log_text') for e in events if peer in str(e)]}"
        for peer in peers
        if len(warnings(peer)) != 1
    ]
    assert not problems, "\n".join(problems)
    log = server.log()
    assert "Traceback" not in log and "Unhandled" not in log
    result = subprocess.run(
        [
            tool("openssl", required=True),
            "s_client", "-quiet", "-verify_return_error",
            "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca),
        ],
        input=b"still served\nexit\n",
        capture_output=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert result.stdout == b"still served\nexit\n", result.stderr
