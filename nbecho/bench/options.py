"""
The benchmark's command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nbecho.bench.loaders import LOADERS
from nbecho.bench.report import MODES

_DESCRIPTION = "Benchmark nbecho against the echo servers people would otherwise run."


def _intList(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need numbers of at least 1: {text!r}")
    return values


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a number above 0: {text!r}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nbecho.bench", description=_DESCRIPTION)
    add = p.add_argument
    add(
        "--connections",
        type=_positive(int),
        default=50,
        help="connections in ping-pong mode (default 50)",
    )
    add(
        "--pipelined-connections",
        type=_positive(int),
        default=10,
        help="connections in pipelined mode (default 10)",
    )
    add(
        "--depth",
        type=_positive(int),
        default=32,
        help="messages in flight per connection when pipelined (32)",
    )
    add(
        "--size",
        type=_positive(int),
        default=64,
        help="message size in bytes, LF included (default 64)",
    )
    add(
        "--sizes",
        type=_intList,
        default=[],
        help="message sizes in bytes, LF included, for the size scenarios "
        "(vmbench's closed loop: each connection sends --per-request messages, "
        "waits for their echoes, sends again); e.g. 64,1024,10240,102400 "
        "(default: none)",
    )
    add(
        "--per-request",
        type=_positive(int),
        default=5,
        help="messages a request in the size scenarios (default 5, as vmbench "
        "sends for line framing)",
    )
    add(
        "--request-connections",
        type=_positive(int),
        default=10,
        help="connections in the size scenarios (default 10, vmbench's --concurrency)",
    )
    add(
        "--duration",
        type=_positive(float),
        default=3.0,
        help="measured seconds per server per round (default 3)",
    )
    add(
        "--warmup",
        type=float,
        default=1.0,
        help="unmeasured seconds before each measurement (default 1)",
    )
    add(
        "--rounds",
        type=_positive(int),
        default=5,
        help="rounds through all servers; medians reported (5)",
    )
    add(
        "--modes",
        default=",".join(MODES),
        help="pingpong, pipelined, both (default) or none ('') with --sizes",
    )
    add(
        "--servers",
        default="",
        help="comma-separated rows to run (default: all available)",
    )
    add(
        "--workers",
        type=_intList,
        default=[1, 2],
        help="nbecho --workers counts to compare (default 1,2)",
    )
    add(
        "--loader",
        choices=LOADERS,
        default="auto",
        help="load generator: c (built with gcc at run time), python, or "
        "auto: c when it builds (default)",
    )
    add(
        "--loaders",
        type=_positive(int),
        default=1,
        help="load generator processes (default 1)",
    )
    add(
        "--pypy",
        default="auto",
        help="PyPy interpreter with nbecho installed, for the PyPy rows "
        "(default: $NBECHO_BENCH_PYPY; 'none' to skip)",
    )
    add(
        "--other-python",
        default="",
        help="a second Python environment with nbecho installed (another "
        "Twisted, say): adds other-wire and other-nbecho rows run by it",
    )
    add(
        "--json",
        type=Path,
        default=Path("bench.json"),
        help="where to write the results (default bench.json)",
    )
    add(
        "--chart",
        type=Path,
        default=Path("bench.png"),
        help="where to write the chart (default bench.png)",
    )
    add("--list", action="store_true", help="list the servers and exit")
    return p
