"""
nbecho as a package: C{python -m nbecho} is the client, and the installed
package carries its type information and licence.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata, resources

from tests._servers import TIMEOUT, RunningServer


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
