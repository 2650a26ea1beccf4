"""
nbecho as a package: C{python -m nbecho} is the client, and the installed
package carries its type information and licence.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from importlib import metadata, resources
from pathlib import Path

from tests._servers import TIMEOUT, RunningServer

ROOT = Path(__file__).resolve().parent.parent


def test_pythonMinusMRunsTheClient(server: RunningServer) -> None:
    """
    C{python -m nbecho} is C{nbecho-client}: piped lines come back and
    C{exit} ends the session with status 0.
    """
    result = subprocess.run(
        [sys.executable, "-m", "nbecho", "--port", str(server.port)],
        input=b"hello\nexit\nnot sent\n",
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        b"hello\nexit\n",
        b"",
    )
    server.waitForLog(r"close .*\(exit word\): 2 messages")


def test_installedPackageIsTyped() -> None:
    """
    The installed nbecho has C{py.typed}, so type checkers read its
    annotations.
    """
    assert resources.files("nbecho").joinpath("py.typed").is_file()


def test_licenceInMetadata() -> None:
    """
    The installed distribution declares the MIT licence and carries the
    LICENSE file in its metadata.
    """
    distribution = metadata.distribution("nbecho")
    assert distribution.metadata["License"] == "MIT"
    files = [str(path) for path in distribution.files or []]
    assert any(path.endswith("LICENSE") for path in files), files


def test_sdistLeavesOutTwistedPatches(tmp_path: Path) -> None:
    """
    The source distribution carries nbecho's own files (the systemd units
    of C{contrib/}) but not C{contrib/twisted-patches}: changes proposed to
    Twisted are not part of nbecho.
    """
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "*.egg-info", "_build", "_trial_temp*"
        ),
    )
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (sdist,) = tmp_path.glob("nbecho-*.tar.gz")
    members = tarfile.open(sdist).getnames()
    assert any(name.endswith("contrib/nbecho.service") for name in members)
    assert [name for name in members if "twisted-patches" in name] == []
