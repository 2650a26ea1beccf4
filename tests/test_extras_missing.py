"""
nbecho installed with a plain C{pip install .}, no extras, in a virtual
environment of its own: every feature that needs an extra says which to
install, in one line, with a non-zero status and no traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests._servers import (
    LOOPBACK_ANY_PORT,
    TIMEOUT,
    copyProject,
    freePort,
    launch,
)

#: It builds a virtual environment with pip: C{-m "not venv"} leaves it out
#: of a quick local run; CI runs it like every other test.
pytestmark = pytest.mark.venv

#: How long pip may take to build and install nbecho and Twisted from its
#: cache (about 15 s on the CI machine; the first run downloads).
INSTALL_TIMEOUT = 600


@pytest.fixture(scope="module")
def plainBin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    The C{bin} directory of a new virtual environment with nbecho installed
    by C{pip install .}: no C{tls}, no C{metrics}.  pip's cache is kept, so
    only the first run on a machine downloads.
    """
    base = tmp_path_factory.mktemp("plain")
    project = copyProject(base / "project")
    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], check=True, timeout=TIMEOUT
    )
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(project)],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
    )
    missing = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import OpenSSL"],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert missing.returncode != 0, "pyOpenSSL came with a plain install"
    return venv / "bin"


def _oneLine(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if line.strip()]
    return line


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--connect", "tls:host=localhost:port={port}"],
            "nbecho-client: --connect tls: needs pyOpenSSL: pip install 'nbecho[tls]'",
        ),
        (
            ["--connect", "tls:host=localhost:port={port}", "--ca", "ca.pem"],
            "nbecho-client: --connect tls: needs pyOpenSSL: pip install 'nbecho[tls]'",
        ),
    ],
    ids=["connectTLS", "ca"],
)
def test_clientSaysWhichExtra(plainBin: Path, args: list[str], message: str) -> None:
    """
    The client's TLS options without the C{tls} extra: status 2 and one
    line naming the extra.
    """
    port = str(freePort())
    result = subprocess.run(
        [str(plainBin / "nbecho-client"), *(a.format(port=port) for a in args)],
        input="",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert _oneLine(result) == f"{message} (see: nbecho-client --help)"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--listen", "ssl:{port}:interface=127.0.0.1:privateKey=k.pem"],
            "--listen 'ssl:{port}:interface=127.0.0.1:privateKey=k.pem': "
            "ssl: needs pyOpenSSL: pip install 'nbecho[tls]'",
        ),
        (
            [
                "--port",
                "{port}",
                "--interface",
                "127.0.0.1",
                "--metrics",
                "tcp:{port}:interface=127.0.0.1",
            ],
            "--metrics needs prometheus_client: pip install 'nbecho[metrics]'",
        ),
    ],
    ids=["sslListener", "metrics"],
)
def test_serverSaysWhichExtra(
    plainBin: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    """
    The server's C{ssl:} listeners and C{--metrics} without their extras:
    status 1 and one line naming the extra, before anything listens.
    """
    port = str(freePort())
    result = subprocess.run(
        [
            *(str(plainBin / "twistd"), "-n", "--pidfile=", "nbecho"),
            *(a.format(port=port) for a in args),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    expected = message.format(port=port)
    assert _oneLine(result) == f"twistd nbecho: {expected} (see: twistd nbecho --help)"


def test_plainInstallStillEchoes(plainBin: Path, tmp_path: Path) -> None:
    """
    The same installation serves and echoes over TCP: only the features
    that need an extra are refused.
    """
    command = [str(plainBin / "twistd"), "-n", "--pidfile=", "nbecho"]
    server = launch(tmp_path, [*command, *LOOPBACK_ANY_PORT])
    try:
        result = subprocess.run(
            [str(plainBin / "nbecho-client"), "--port", str(server.port)],
            input=b"plain\n",
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        server.stop()
    assert (result.returncode, result.stdout, result.stderr) == (0, b"plain\n", b"")
