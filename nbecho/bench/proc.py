"""
Process accounting for the benchmark, read from Linux's C{/proc}.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """
    The fields of C{/proc/PID/stat} after the command name, or L{None} once
    the process is gone.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces.
    return text[text.rindex(")") + 2 :].split()


def cpuTimes(pid: int) -> tuple[float, float]:
    """
    User and system CPU seconds used by every thread of process C{pid}.
    """
    fields = _stat(pid)
    if fields is None:
        return 0.0, 0.0
    # utime and stime are fields 14 and 15 of stat(5); here 12 and 13.
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def processTree(pid: int) -> list[int]:
    """
    C{pid} and all its descendants, such as C{--workers} processes.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree
