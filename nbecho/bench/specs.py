"""
The servers of the benchmark's table and how to start each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence

import attrs

_TWISTD = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)


@attrs.frozen
class ServerSpec:
    """
    How to start one server of the table.

    @ivar name: its row in the table.
    @ivar argv: the command.
    @ivar twistd: C{True} when it logs its port in a twistd log (its standard
        output, a file) rather than printing C{PORT n}.
    @ivar cores: C{"one"} to pin to the server core, C{"all"} for workers.
    """

    name: str
    argv: tuple[str, ...]
    twistd: bool = False
    cores: str = "one"


def _nbecho(
    name: str, python: str, framing: str, quiet: bool, workers: int = 1
) -> ServerSpec:
    # The log goes to standard output, which is the log file: twistd's own
    # --logfile would rotate it every megabyte, renaming every older file each
    # time, and measure that instead of the logging.
    argv = [python, "-c", _TWISTD, "-n", "--pidfile=", "nbecho"]
    argv += ["--listen", "tcp:0:interface=127.0.0.1", "--framing", framing]
    if quiet:
        argv.append("--quiet")
    if workers > 1:
        argv += ["--workers", str(workers)]
    return ServerSpec(name, tuple(argv), True, "all" if workers > 1 else "one")


def _baseline(name: str, python: str, which: str) -> ServerSpec:
    return ServerSpec(name, (python, "-m", "nbecho.bench.servers", which))


def hasModule(python: str, module: str) -> bool:
    """
    Whether C{python} can import C{module}.
    """
    try:
        check = subprocess.run(
            [python, "-c", f"import {module}"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return check.returncode == 0


def availableServers(
    pypy: str | None, workers: Sequence[int], other: str | None = None
) -> dict[str, ServerSpec]:
    """
    Every server this machine can run, in table order; C{other} is a
    second CPython environment (another Twisted, say) for C{other-} rows.
    """
    py = sys.executable
    specs = [
        _baseline("wire", py, "wire"),
        _baseline("linereceiver", py, "linereceiver"),
        _baseline("asyncio", py, "asyncio"),
        _baseline("asyncio-readline", py, "asyncio-readline"),
    ]
    if hasModule(py, "uvloop"):
        specs.append(_baseline("uvloop", py, "uvloop"))
        specs.append(_baseline("uvloop-readline", py, "uvloop-readline"))
    specs += [
        _nbecho("nbecho-line-quiet", py, "line", True),
        _nbecho("nbecho-line", py, "line", False),
        _nbecho("nbecho-raw-quiet", py, "raw", True),
        _nbecho("nbecho-raw", py, "raw", False),
    ]
    for count in workers:
        if count > 1:
            specs.append(
                _nbecho(f"nbecho-line-quiet-{count}w", py, "line", True, count)
            )
    if pypy:
        specs += [
            _baseline("pypy-wire", pypy, "wire"),
            _baseline("pypy-asyncio", pypy, "asyncio"),
            _nbecho("pypy-nbecho-line-quiet", pypy, "line", True),
            _nbecho("pypy-nbecho-line", pypy, "line", False),
            _nbecho("pypy-nbecho-raw-quiet", pypy, "raw", True),
        ]
    if other:
        # Twisted's own echo on the other environment too: what a change to
        # Twisted (a patched checkout, say) gives any Twisted server, beside
        # what it gives nbecho, in the same run.
        specs.append(_baseline("other-wire", other, "wire"))
        # An older nbecho's default line limit may be below the size
        # scenarios' 100 KiB: give it today's.
        limit = ("--max-line-length", "131072")
        for spec in (
            _nbecho("other-nbecho-line-quiet", other, "line", True),
            _nbecho("other-nbecho-line", other, "line", False),
        ):
            specs.append(attrs.evolve(spec, argv=spec.argv + limit))
    return {spec.name: spec for spec in specs}


def findPyPy(requested: str) -> str | None:
    """
    The PyPy interpreter to run, if it can import nbecho and Twisted.
    """
    candidate = requested
    if requested == "auto":
        candidate = os.environ.get("NBECHO_BENCH_PYPY", "")
    if not candidate or requested == "none":
        return None
    path = shutil.which(os.path.expanduser(candidate))
    if path and hasModule(path, "nbecho.tap, twisted"):
        return path
    print(f"bench: no PyPy rows: {candidate} cannot import nbecho", file=sys.stderr)
    return None
