"""
The benchmark's report: medians over rounds, the text table, the chart.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

#: Ping-pong keeps one message in flight per connection; pipelined, --depth.
MODES = ("pingpong", "pipelined")


#: Ratio keys and the row each divides by, within the same round.
REFERENCES = {
    "ratioToWire": "wire",
    "ratioToAsyncio": "asyncio",
    "ratioToReadline": "asyncio-readline",
    "ratioToUvloop": "uvloop",
}


def _cpu(row: dict[str, Any]) -> float:
    value: float = row["serverCpuUsPerMessage"]
    return value


def _ratios(
    rounds: list[dict[str, dict[str, Any]]], name: str, reference: str
) -> float | None:
    """
    The median over rounds of C{name}'s CPU per message over
    C{reference}'s in the same round.
    """
    ratios = [
        _cpu(r[name]) / _cpu(r[reference])
        for r in rounds
        if name in r and reference in r and _cpu(r[reference]) > 0
    ]
    return statistics.median(ratios) if ratios else None


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """
    Medians over rounds per server, ratios taken within each round.

    Besides the ratios to the baselines, a logging nbecho row has
    C{ratioToQuiet}: its CPU per message over its C{--quiet} twin's; and an
    C{other-} row (run by C{--other-python}) has C{ratioToSame}: its CPU per
    message over the same server's on the benchmark's own interpreter, so
    that what the other environment changes (a patched Twisted, say) is read
    within each round too.
    """
    names = list(rounds[0])
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        rows = [r[name] for r in rounds if name in r]
        summary[name] = {
            "messagesPerSecond": statistics.median(
                r["messagesPerSecond"] for r in rows
            ),
            "requestsPerSecond": statistics.median(
                r.get("requestsPerSecond", r["messagesPerSecond"]) for r in rows
            ),
            "serverCpuUsPerMessage": statistics.median(_cpu(r) for r in rows),
            **{key: _ratios(rounds, name, ref) for key, ref in REFERENCES.items()},
            "ratioToQuiet": _ratios(rounds, name, f"{name}-quiet"),
            "ratioToSame": _ratios(rounds, name, name.removeprefix("other-"))
            if name.startswith("other-")
            else None,
            "ratioOfMedians": _ratioOfMedians(
                rows, [r["wire"] for r in rounds if "wire" in r]
            ),
            "serverCores": statistics.median(r["serverCores"] for r in rows),
            "loaderCpuUsPerMessage": statistics.median(
                r["loaderCpuUsPerMessage"] for r in rows
            ),
            "loaderCores": statistics.median(r["loaderCores"] for r in rows),
            "latencyUs": {
                key: statistics.median(r["latencyUs"][key] for r in rows)
                for key in ("p50", "p99", "p99.9")
            },
            "messagesChecked": sum(r["messagesChecked"] for r in rows),
            "bytesChecked": sum(r["bytesChecked"] for r in rows),
        }
    return summary


def _ratioOfMedians(
    rows: list[dict[str, Any]], wire: list[dict[str, Any]]
) -> float | None:
    """
    Median CPU per message over wire.Echo's median: steadier than the
    per-round ratio when single measurements jump between load regimes.
    """
    if not wire:
        return None
    reference = statistics.median(_cpu(r) for r in wire)
    if reference <= 0:
        return None
    return statistics.median(_cpu(r) for r in rows) / reference


def formatTable(summary: dict[str, dict[str, Any]], requests: bool = False) -> str:
    """
    One mode's summary as a plain-text table; C{requests} puts requests a
    second first (the size scenarios' latencies are per request).
    """
    rate = "req/s" if requests else "msg/s"
    head = (
        f"{'server':26} {rate:>9} {'µs/msg':>7} {'÷wire':>6} {'÷async':>6} "
        f"{'÷rdln':>6} {'÷uvl':>6} {'÷quiet':>6} {'÷same':>6} "
        f"{'p50 µs':>7} {'p99 µs':>7} "
        f"{'srv cpu':>7} {'load µs/msg':>11} {'load cpu':>8}"
    )
    lines = [head, "-" * len(head)]
    for name, row in summary.items():
        lat = row["latencyUs"]
        ratios = " ".join(
            f"{_num(row.get(key)):>6}"
            for key in [*REFERENCES, "ratioToQuiet", "ratioToSame"]
        )
        perSecond = row["requestsPerSecond" if requests else "messagesPerSecond"]
        lines.append(
            f"{name:26} {perSecond:9.0f} "
            f"{row['serverCpuUsPerMessage']:7.2f} {ratios} "
            f"{lat['p50']:7.0f} {lat['p99']:7.0f} "
            f"{row['serverCores']:7.0%} "
            f"{row['loaderCpuUsPerMessage']:11.2f} {row['loaderCores']:7.0%}"
        )
    return "\n".join(lines)


def writeChart(result: dict[str, Any], path: Path) -> bool:
    """
    A bar chart of CPU per message relative to wire.Echo, per mode.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: no chart: matplotlib is not installed", file=sys.stderr)
        return False
    modes = [m for m in MODES if m in result["summary"]]
    if not modes:
        return False
    names = list(result["summary"][modes[0]])
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=80)
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        values = [
            result["summary"][mode].get(n, {}).get("ratioToWire") or 0 for n in names
        ]
        xs = [x + i * width for x in range(len(names))]
        ax.bar(xs, values, width, label=mode)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width * (len(modes) - 1) / 2 for x in range(len(names))])
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("server CPU per message / wire.Echo")
    config = result["config"]
    ax.set_title(
        f"{config['connections']} conns ping-pong, {config['pipelinedConnections']} "
        f"conns x {config['depth']} pipelined, {config['size']} B lines "
        f"(median of {config['rounds']} rounds)",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
