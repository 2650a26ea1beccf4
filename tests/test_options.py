"""
Option values that can never work are refused before the server starts:
numeric options take plain ASCII decimal numbers within their bounds
(timeouts 0 or at least 0.1 s, --max-line-length at most 1 GiB, counts up to
a ceiling), the exit word is at most 1024 bytes without CR or LF.  Each is one
usage line on standard error and exit status 1, never a traceback nor a
server that starts.
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

#: Far above any ceiling a count or a length can have.
HUGE = "1" + "0" * 30

#: The command lines to refuse: the option the error must name, its value.
REFUSED = [
    ("--idle-timeout", "1e-9"),
    ("--idle-timeout", "0.05"),
    ("--idle-timeout", "\u0661"),  # ARABIC-INDIC DIGIT ONE
    ("--idle-timeout", "1_0"),
    ("--shutdown-grace", "\u0665"),
    ("--max-line-length", HUGE),
    ("--max-line-length", str(2**30 + 1)),
    ("--max-line-length", "\u0663"),  # ARABIC-INDIC DIGIT THREE
    ("--max-line-length", "1_000"),
    ("--max-line-length", "\uff11\uff10"),  # FULLWIDTH 1 0
    ("--max-connections", "-1"),
    ("--max-connections", HUGE),
    ("--max-connections", "1_000"),
    ("--max-per-peer", HUGE),
    ("--max-per-peer", "\u0663"),
    ("--port", "\u0660"),  # ARABIC-INDIC DIGIT ZERO: port 0 if accepted
    ("--exit-word", "a\nb"),
    ("--exit-word", "a\rb"),
    ("--exit-word", "exit\n"),
    ("--exit-word", "x" * 100_000),
    ("--exit-word", "x" * 1025),
    ("--exit-word", "\u00e9" * 513),  # 1026 bytes in UTF-8
    ("--proxy-timeout", "1e-9"),
    ("--proxy-timeout", "-1"),
    ("--proxy-timeout", "\u0661"),
    ("--log-rate", "-1"),
    ("--log-rate", "1.5"),
    ("--log-rate", HUGE),
    ("--log-rate-total", "\u0663"),
    ("--log-rate-total", "1_000"),
]


def _ids(case: tuple[str, str]) -> str:
    option, value = case
    return f"{option}={value[:12]!r}" + (f"[{len(value)}]" if len(value) > 12 else "")


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
