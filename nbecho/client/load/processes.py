"""
C{--processes N}: one client process drives only so many messages a second
(one core, one reactor); N child processes of the same command each take a
share of the connections, the rate and the count, and their figures, the
latency histograms included, are added up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from nbecho.client.load.figures import Figures


def shares(total: int, parts: int) -> list[int]:
    """
    C{total} split into C{parts} whole shares that differ by one at most.
    """
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def childArguments(
    argv: Sequence[str],
    part: int,
    parts: int,
    connections: int,
    rate: float | None,
    count: int | None,
) -> list[str]:
    """
    The command line of child C{part}: the parent's, then the options that
    give it its share (the last value of an option is the one used).
    """
    arguments = [
        *argv,
        f"--connections={shares(connections, parts)[part]}",
        "--processes=1",
        "--json",
        "--no-progress",
    ]
    if rate is not None:
        arguments.append(f"--rate={rate / parts!r}")
    if count is not None:
        arguments.append(f"--count={shares(count, parts)[part]}")
    return arguments


def spread(
    argv: Sequence[str],
    processes: int,
    connections: int,
    rate: float | None,
    count: int | None,
) -> tuple[Figures, list[str]]:
    """
    Run the load in C{processes} children and add up their figures.

    @return: the sum, and the error output of children that failed
        without figures (could not connect, say); their connections are
        counted as failed C{connect}s.
    """
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nbecho.client.load.run",
                *childArguments(argv, part, processes, connections, rate, count),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for part in range(processes)
    ]
    total = Figures()
    problems: list[str] = []
    for child, share in zip(children, shares(connections, processes)):
        out, err = child.communicate()
        try:
            total.add(Figures.fromJSON(json.loads(out)))
        except ValueError:
            problems.append(err.decode(errors="replace").strip())
            total.count("connect", share)
    return total, problems
