"""
The two load generators and how to start them.

C{c} is C{loadgen.c}, compiled with C{gcc -O2} once per run into the run's
temporary directory: it costs a fraction of a Python loop's CPU per message,
so the server, not the load generator, is what a run measures.  C{python} is
L{nbecho.bench.load} (plain sockets and C{epoll}), for machines without a C
compiler.  Both speak the same protocol to the benchmark, send the same
numbered lines and check every byte that comes back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The choices of C{--loader}.
LOADERS = ("auto", "c", "python")

_SOURCE = Path(__file__).with_name("loadgen.c")


class LoaderUnavailableError(Exception):
    """
    The C load generator cannot be built here.
    """


def compileLoader(workdir: Path) -> Path:
    """
    Build C{loadgen.c} into C{workdir}; return the program's path.
    """
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise LoaderUnavailableError("no C compiler (gcc or cc) on PATH")
    program = workdir / "nbecho-loadgen"
    try:
        built = subprocess.run(
            [compiler, "-O2", "-o", str(program), str(_SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LoaderUnavailableError(f"{compiler} failed: {error}") from None
    if built.returncode != 0:
        detail = built.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise LoaderUnavailableError(f"{compiler} failed: {detail[0]}")
    return program


def chooseLoader(requested: str, workdir: Path) -> Path | None:
    """
    The C load generator's path, or L{None} for the Python one.

    C{auto} takes the C one when it builds and says so when it does not.
    """
    if requested == "python":
        return None
    try:
        return compileLoader(workdir)
    except LoaderUnavailableError as error:
        if requested == "c":
            raise SystemExit(f"bench: --loader c: {error}") from None
        print(f"bench: Python load generator: {error}", file=sys.stderr)
        return None


def loaderCommand(program: Path | None, config: dict[str, Any]) -> list[str]:
    """
    The command that drives the server described by C{config} (C{host},
    C{port}, C{connections}, C{size}, C{depth}, and C{requests}: 1 for a
    closed loop of C{depth}-message requests).
    """
    if program is None:
        return [sys.executable, "-m", "nbecho.bench.load", json.dumps(config)]
    keys = ("host", "port", "connections", "size", "depth")
    args = [str(config[key]) for key in keys]
    return [str(program), *args, str(int(config.get("requests", 0)))]
