"""
Option values that can never work are refused before the server starts, as
one usage line on a real twistd's standard error and exit status 1, never a
traceback nor a server that starts; the values at the bounds start one.
(Every impossible value is checked without a process in
nbecho/test/test_values.py.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests._clients import runClient
from tests._servers import (
    LOOPBACK_ANY_PORT,
    TIMEOUT,
    ServerFactory,
    twistdCommand,
    waitFor,
)

#: One value per kind of refusal; nbecho/test/test_values.py checks every
#: impossible value without starting a process.
REFUSED = [
    ("--idle-timeout", "0.05"),
    ("--max-line-length", "\u0663"),  # ARABIC-INDIC DIGIT THREE
    ("--exit-word", "a\nb"),
]


def _ids(case: tuple[str, str]) -> str:
    option, value = case
    return f"{option}={value!r}"


def _start(directory: Path, *nbechoArgs: str) -> tuple[int | None, str, str]:
    """
    Run C{twistd nbecho ARGS} (on a free loopback port) until it exits or
    logs a Ready? line; return its exit status (L{None}: it started and was
    stopped), stdout and stderr.
    """
    out, err = directory / "out.log", directory / "err.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            twistdCommand(*LOOPBACK_ANY_PORT, *nbechoArgs),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        waitFor(
            lambda: process.poll() is not None or b"Ready?" in out.read_bytes(),
            "twistd to exit or start",
        )
    finally:
        started = process.poll() is None
        if started:
            process.terminate()
        process.wait(TIMEOUT)
    status = None if started else process.returncode
    return status, out.read_text(errors="replace"), err.read_text(errors="replace")


@pytest.mark.parametrize("case", REFUSED, ids=_ids)
def test_impossibleValueIsUsageError(tmp_path: Path, case: tuple[str, str]) -> None:
    """
    A value that can never work is one usage line naming its option, exit
    status 1, and no server.
    """
    option, value = case
    status, stdout, stderr = _start(tmp_path, option, value)
    ready = [line for line in stdout.splitlines() if "Ready?" in line]
    assert status is not None, f"{option} {value[:40]!r} was accepted: {ready}"
    assert (status, stdout) == (1, ""), stderr
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert option in stderr and "not recognized" not in stderr, stderr


def test_valuesAtTheBoundsAreAccepted(nbechoServer: ServerFactory) -> None:
    """
    The bounds themselves are valid: timeouts of 0 and 0.1 s, a 1 GiB
    --max-line-length, a 1024-byte exit word, unlimited log rates.
    """
    server = nbechoServer(
        "--idle-timeout", "0.1",
        "--shutdown-grace", "0",
        "--proxy-timeout", "0.1",
        "--max-line-length", str(2**30),
        "--exit-word", "x" * 1024,
        "--log-rate", "0",
        "--log-rate-total", "0",
    )  # fmt: skip
    result = runClient(server.port, b"hello\n" + b"x" * 1024 + b"\n")
    assert result.stdout == b"hello\n" + b"x" * 1024 + b"\n", result.stderr
