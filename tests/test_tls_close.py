"""
A TLS client that sends, then ends its side of the session (close_notify),
gets back every byte it sent, as over a TCP half-close: the real C{socat
OPENSSL:} and C{openssl s_client} against a real C{twistd -n nbecho ssl:},
TLS 1.2 and 1.3, many short lines and a mixed file, compared byte for byte;
the close line counts what was sent.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from tests._servers import RunningServer, ServerFactory, tool
from tests.test_tls import PKI, pki  # noqa: F401 - the fixture

#: The close line of one connection: reason, messages, bytes in, bytes out.
CLOSE = (
    r"close 127\.0\.0\.1:\d+ \((.*)\): (\d+) messages, (\d+) bytes in, (\d+) bytes out"
)

VERSIONS = ["TLS1.2", "TLS1.3"]


def shortLines() -> bytes:
    """
    10,000 two-byte lines: many echoes in flight when the client stops.
    """
    return b"".join(b"%d\n" % (number % 10) for number in range(10_000))


def mixedFile() -> bytes:
    """
    About 780 kB of lines from empty to 2,000 bytes, LF and CRLF, any byte
    but LF inside, the last line without its LF.
    """
    rng = random.Random(14)
    parts = []
    size = 0
    while size < 780_000:
        length = rng.choice([0, 1, 5, 77, 300, 2000])
        body = bytes(rng.randrange(256) for _ in range(length)).replace(b"\n", b"x")
        ending = b"\r\n" if rng.random() < 0.2 else b"\n"
        parts.append(body + ending)
        size += len(body) + len(ending)
    parts.append(b"the last line, no line feed")
    return b"".join(parts)


PAYLOADS = {"short-lines": shortLines, "mixed-file": mixedFile}


@pytest.fixture
def tlsServer(nbechoServer: ServerFactory, pki: PKI) -> RunningServer:  # noqa: F811
    """
    A quiet TLS echo server on 127.0.0.1 with no exit word (any line may
    come back).
    """
    return nbechoServer(
        "--quiet", "--exit-word", "",
        "--listen",
        f"ssl:0:privateKey={pki.key}:certKey={pki.certificate}:interface=127.0.0.1",
    )  # fmt: skip


def closeLine(server: RunningServer) -> tuple[str, int, int, int]:
    """
    The reason and counts of the server's first close line.
    """
    (match,) = server.waitForLog(CLOSE)
    reason, messages, bytesIn, bytesOut = match.groups()
    return reason, int(messages), int(bytesIn), int(bytesOut)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("version", VERSIONS)
def test_socatGetsEverything(
    tlsServer: RunningServer,
    pki: PKI,  # noqa: F811
    tmp_path: Path,
    version: str,
    payload: str,
) -> None:
    """
    socat, which sends close_notify at the end of its input and reads on,
    gets back exactly what it sent, and the close line says so.
    """
    data = PAYLOADS[payload]()
    address = (
        f"OPENSSL:127.0.0.1:{tlsServer.port},cafile={pki.ca},commonname=localhost,"
        f"openssl-min-proto-version={version},openssl-max-proto-version={version}"
    )
    # -t: how long socat reads on after its input ends (0.5 s by default),
    # generous for a loaded CI machine; the server's close ends it sooner.
    result = subprocess.run(
        [tool("socat", required=True), "-t", "30", "-", address],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == len(data), (len(result.stdout), len(data))
    assert result.stdout == data
    reason, _, bytesIn, bytesOut = closeLine(tlsServer)
    assert (reason, bytesIn, bytesOut) == (
        "client finished sending",
        len(data),
        len(data),
    )


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_opensslClient(tlsServer: RunningServer, pki: PKI, version: str) -> None:  # noqa: F811
    """
    openssl s_client (without -quiet) sends close_notify at the end of its
    input and then stops printing: the server still sends every echo before
    its own close_notify and counts them all, and what s_client printed is
    the start of what it sent, whole lines, nothing missing in between.
    """
    data = shortLines()
    result = subprocess.run(
        [
            tool("openssl", required=True), "s_client", version,
            "-connect", f"127.0.0.1:{tlsServer.port}",
            "-CAfile", str(pki.ca), "-verify_hostname", "localhost",
        ],
        input=data,
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    echoed = b"".join(
        line + b"\n" for line in result.stdout.split(b"\n") if len(line) == 1
    )
    assert data.startswith(echoed), echoed[:100]
    reason, messages, bytesIn, bytesOut = closeLine(tlsServer)
    assert (reason, messages, bytesIn, bytesOut) == (
        "client finished sending",
        10_000,
        len(data),
        len(data),
    )
