"""
Benchmark nbecho against the echo servers people would otherwise run.

    python -m nbecho.bench [--duration 3] [--rounds 5] [--servers ...]

Every server runs in its own process (pinned to one core when the machine
has two or more), and stays up for the whole run; load generator processes
(L{nbecho.bench.loaders}: a small C program built at run time, or a Python
one, pinned to the other cores) drive it over C connections with S-byte
lines, ping-pong (one message in flight per connection) and pipelined
(C{--depth} in flight), and check every byte that comes back.  Rounds go
through the servers in turn, so that a noisy, shared machine affects them
all alike; the report gives medians over rounds.

Per server: messages per second, the server's CPU time per message (from
C{/proc/PID/stat} of the server and its worker processes), its ratios to
Twisted's C{wire.Echo}, stdlib asyncio and uvloop measured in the same
round, latency percentiles, and the load generator's own CPU per message to
show it was not the bottleneck.  Results go to a JSON file and, with
matplotlib (the C{bench} extra), a PNG.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbecho.bench.loaders import chooseLoader
from nbecho.bench.options import parser
from nbecho.bench.report import MODES, formatTable, summarize, writeChart
from nbecho.bench.running import Load, RunningServer, cores, measure
from nbecho.bench.specs import ServerSpec, availableServers, findPyPy


def _selected(wanted: str, specs: dict[str, ServerSpec]) -> dict[str, ServerSpec]:
    if not wanted:
        return specs
    names = [s for s in wanted.split(",") if s]
    unknown = [s for s in names if s not in specs]
    if unknown:
        raise SystemExit(
            f"bench: unknown server {', '.join(unknown)}; available: {', '.join(specs)}"
        )
    return {name: specs[name] for name in names}


def _loads(args: Any, program: Path | None) -> dict[str, Load]:
    """
    Each mode's load: ping-pong, pipelined, and one closed loop of requests
    per message size (C{requests-SIZE}).
    """
    _, loaderCores, _ = cores()

    def load(conns: int, depth: int, size: int, requests: bool = False) -> Load:
        return Load(
            connections=conns,
            depth=depth,
            size=size,
            warmup=args.warmup,
            duration=args.duration,
            loaders=args.loaders,
            loaderCores=loaderCores,
            program=program,
            requests=requests,
        )

    loads = {
        "pingpong": load(args.connections, 1, args.size),
        "pipelined": load(args.pipelined_connections, args.depth, args.size),
    }
    for size in args.sizes:
        loads[f"requests-{size}"] = load(
            args.request_connections, args.per_request, size, True
        )
    return loads


def _runRounds(
    args: Any,
    specs: dict[str, ServerSpec],
    modes: list[str],
    workdir: Path,
    program: Path | None,
) -> dict[str, list[dict[str, dict[str, Any]]]]:
    """
    Start every server, run C{args.rounds} rounds through them in each mode,
    and stop them; return each mode's rounds.
    """
    serverCores, _, allCores = cores()
    names = list(specs)
    loads = _loads(args, program)
    rounds: dict[str, list[dict[str, dict[str, Any]]]] = {m: [] for m in modes}
    running: dict[str, RunningServer] = {}
    try:
        for name in names:
            where = allCores if specs[name].cores == "all" else serverCores
            running[name] = RunningServer(specs[name], workdir, where)
        for r in range(args.rounds):
            for mode in modes:
                results: dict[str, dict[str, Any]] = {}
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    results[name] = row = measure(running[name], loads[mode])
                    print(
                        f"round {r + 1}/{args.rounds} {mode:14} {name:26} "
                        f"{row['messagesPerSecond']:9.0f} msg/s "
                        f"{row['serverCpuUsPerMessage']:7.2f} µs/msg",
                        flush=True,
                    )
                rounds[mode].append({n: results[n] for n in names})
    finally:
        for server in running.values():
            server.stop()
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    longest = max([args.size, *args.sizes])
    if longest > 131073 or min([args.size, *args.sizes]) < 2:
        raise SystemExit(
            "bench: sizes from 2 (a digit and LF) to 131073 (nbecho's longest "
            "line by default, and its LF)"
        )
    modes = [m for m in args.modes.split(",") if m]
    if set(modes) - set(MODES) or not (modes or args.sizes):
        raise SystemExit(f"bench: --modes takes {', '.join(MODES)}")
    modes += [f"requests-{size}" for size in args.sizes]
    specs = availableServers(
        findPyPy(args.pypy), args.workers, args.other_python or None
    )
    if args.list:
        print("\n".join(specs))
        return 0
    specs = _selected(args.servers, specs)
    with tempfile.TemporaryDirectory(prefix="nbecho-bench-") as tmp:
        program = chooseLoader(args.loader, Path(tmp))
        rounds = _runRounds(args, specs, modes, Path(tmp), program)
    serverCores, loaderCores, _ = cores()
    summary = {mode: summarize(rounds[mode]) for mode in modes}
    result = {
        "config": {
            "connections": args.connections,
            "pipelinedConnections": args.pipelined_connections,
            "depth": args.depth,
            "size": args.size,
            "sizes": args.sizes,
            "perRequest": args.per_request,
            "requestConnections": args.request_connections,
            "duration": args.duration,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "loader": "python" if program is None else "c",
            "loaders": args.loaders,
            "servers": {n: list(spec.argv) for n, spec in specs.items()},
            "serverCores": sorted(serverCores),
            "loaderCores": sorted(loaderCores),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "summary": summary,
        "rounds": rounds,
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    loader = "Python" if program is None else "C"
    for mode in modes:
        requests = mode.startswith("requests-")
        what = (
            f"{args.request_connections} connections, {args.per_request} "
            f"messages of {mode.split('-')[1]} B a request, p50/p99 per request"
            if requests
            else mode
        )
        print(
            f"\n{what}: median of {args.rounds} rounds ({loader} load generator); "
            "÷X = server CPU per message / X's in the same round"
        )
        print(formatTable(summary[mode], requests))
    print(f"\nwrote {args.json}")
    if writeChart(result, args.chart):
        print(f"wrote {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
