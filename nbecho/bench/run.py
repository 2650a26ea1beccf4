"""
Benchmark nbecho against the echo servers people would otherwise run.

    python -m nbecho.bench [--duration 3] [--rounds 5] [--servers ...]

Every server runs in its own process (pinned to one core when the machine
has two or more), and stays up for the whole run; load generator processes
(L{nbecho.bench.load}, pinned to the other cores) drive it over C
connections with S-byte lines, ping-pong (one message in flight per
connection) and pipelined (C{--depth} in flight), and check every byte that
comes back.  Rounds go through the servers in turn, so that a noisy,
shared machine affects them all alike; the report gives medians over rounds.

Per server: messages per second, the server's CPU time per message (from
C{/proc/PID/stat} of the server and its worker processes), its ratio to
Twisted's C{wire.Echo} measured in the same round, latency percentiles, and
the load generator's own CPU per message to show it was not the bottleneck.
Results go to a JSON file and, with matplotlib (the C{bench} extra), a PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from nbecho.bench.proc import cpuSeconds, processTree
from nbecho.bench.report import MODES, formatTable, summarize, writeChart

_TWISTD = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)
_READY = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


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


def _hasModule(python: str, module: str) -> bool:
    try:
        check = subprocess.run(
            [python, "-c", f"import {module}"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return check.returncode == 0


def availableServers(pypy: str | None, workers: Sequence[int]) -> dict[str, ServerSpec]:
    """
    Every server this machine can run, in table order.
    """
    py = sys.executable
    specs = [
        _baseline("wire", py, "wire"),
        _baseline("linereceiver", py, "linereceiver"),
        _baseline("asyncio", py, "asyncio"),
    ]
    if _hasModule(py, "uvloop"):
        specs.append(_baseline("uvloop", py, "uvloop"))
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
            _nbecho("pypy-nbecho-line-quiet", pypy, "line", True),
            _nbecho("pypy-nbecho-line", pypy, "line", False),
        ]
    return {spec.name: spec for spec in specs}


def _findPyPy(requested: str) -> str | None:
    """
    The PyPy interpreter to run, if it can import nbecho and Twisted.
    """
    candidate = requested
    if requested == "auto":
        candidate = os.environ.get("NBECHO_BENCH_PYPY", "")
    if not candidate or requested == "none":
        return None
    path = shutil.which(candidate)
    if path and _hasModule(path, "nbecho.tap, twisted"):
        return path
    print(f"bench: no PyPy rows: {candidate} cannot import nbecho", file=sys.stderr)
    return None


def _cores() -> tuple[set[int], set[int], set[int]]:
    """
    (server core, load generator cores, all cores) for pinning.
    """
    allCores = set(os.sched_getaffinity(0))
    if len(allCores) < 2:
        return allCores, allCores, allCores
    first = min(allCores)
    return {first}, allCores - {first}, allCores


class RunningServer:
    """
    A server process started from a L{ServerSpec}, and its port.
    """

    def __init__(self, spec: ServerSpec, workdir: Path, cores: set[int]) -> None:
        self.spec = spec
        self.log = workdir / f"{spec.name}.log"
        self.errors: IO[bytes] = open(workdir / f"{spec.name}.err", "w+b")
        self.output: IO[bytes] = open(self.log, "wb")
        self.process = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=self.output if spec.twistd else subprocess.PIPE,
            stderr=self.errors,
            cwd=workdir,
        )
        os.sched_setaffinity(self.process.pid, cores)
        self.port = self._waitForPort()
        self.pids = processTree(self.process.pid)

    def _failed(self, why: str) -> SystemExit:
        self.stop()
        self.errors.seek(0)
        detail = self.errors.read().decode("utf-8", "replace").strip()[-2000:]
        return SystemExit(f"bench: server {self.spec.name} {why}\n{detail}")

    def _waitForPort(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failed(f"exited with {self.process.returncode}")
            if self.spec.twistd:
                if self.log.exists():
                    found = _READY.search(self.log.read_text("utf-8", "replace"))
                    if found:
                        # Workers start after the parent listens: let them.
                        time.sleep(1.0 if self.spec.cores == "all" else 0.1)
                        return int(found.group(1))
                time.sleep(0.05)
            else:
                assert self.process.stdout is not None
                line = self.process.stdout.readline().decode()
                if line.startswith("PORT "):
                    return int(line.split()[1])
        raise self._failed("did not start listening within 60s")

    def cpu(self) -> float:
        """
        CPU seconds used so far by the server and its worker processes.
        """
        return sum(cpuSeconds(pid) for pid in self.pids)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.errors.close()
        self.output.close()


def measure(
    server: RunningServer,
    connections: int,
    depth: int,
    size: int,
    warmup: float,
    duration: float,
    loaders: int,
    loaderCores: set[int],
) -> dict[str, Any]:
    """
    One measurement: load generators drive C{server} for C{warmup} seconds,
    then C{duration} seconds while the server's CPU time is taken.
    """
    shares = [
        connections // loaders + (i < connections % loaders) for i in range(loaders)
    ]
    procs = []
    for share in shares:
        if not share:
            continue
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "connections": share,
            "size": size,
            "depth": depth,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbecho.bench.load", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        os.sched_setaffinity(proc.pid, loaderCores)
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(
                f"bench: load generator could not reach {server.spec.name}"
            )
    start = time.monotonic() + warmup
    end = start + duration
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"go {start} {end}\n")
        proc.stdin.flush()
    time.sleep(max(0.0, start - time.monotonic()))
    cpuStart = server.cpu()
    time.sleep(max(0.0, end - time.monotonic()))
    cpuEnd = server.cpu()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise SystemExit(
                f"bench: load generator failed against {server.spec.name} "
                f"(exit {proc.returncode})"
            )
        results.append(json.loads(out.strip().splitlines()[-1]))
    messages = sum(r["messages"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    loaderCpu = sum(r["cpu"] for r in results)
    serverCpu = cpuEnd - cpuStart
    per = max(messages, 1)
    return {
        "messages": messages,
        "messagesPerSecond": messages / duration,
        "serverCpuUsPerMessage": serverCpu * 1e6 / per,
        "serverCores": serverCpu / duration,
        "loaderCpuUsPerMessage": loaderCpu * 1e6 / per,
        "loaderCores": loaderCpu / duration,
        "messagesChecked": sum(r["messagesChecked"] for r in results),
        "bytesChecked": sum(r["bytesChecked"] for r in results),
        "latencyUs": {
            "p50": _percentile(latencies, 50),
            "p99": _percentile(latencies, 99),
            "p99.9": _percentile(latencies, 99.9),
        },
    }


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, int(len(values) * pct / 100))
    return values[index]


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
    p = argparse.ArgumentParser(
        prog="python -m nbecho.bench", description=__doc__.split("\n\n")[0].strip()
    )
    p.add_argument(
        "--connections",
        type=_positive(int),
        default=50,
        help="connections in ping-pong mode (default 50)",
    )
    p.add_argument(
        "--pipelined-connections",
        type=_positive(int),
        default=10,
        help="connections in pipelined mode (default 10)",
    )
    p.add_argument(
        "--depth",
        type=_positive(int),
        default=32,
        help="messages in flight per connection when pipelined (32)",
    )
    p.add_argument(
        "--size",
        type=_positive(int),
        default=64,
        help="message size in bytes, LF included (default 64)",
    )
    p.add_argument(
        "--duration",
        type=_positive(float),
        default=3.0,
        help="measured seconds per server per round (default 3)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="unmeasured seconds before each measurement (default 1)",
    )
    p.add_argument(
        "--rounds",
        type=_positive(int),
        default=5,
        help="rounds through all servers; medians reported (5)",
    )
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help="pingpong, pipelined or both (default both)",
    )
    p.add_argument(
        "--servers",
        default="",
        help="comma-separated rows to run (default: all available)",
    )
    p.add_argument(
        "--workers",
        type=_intList,
        default=[1, 2],
        help="nbecho --workers counts to compare (default 1,2)",
    )
    p.add_argument(
        "--loaders",
        type=_positive(int),
        default=1,
        help="load generator processes (default 1)",
    )
    p.add_argument(
        "--pypy",
        default="auto",
        help="PyPy interpreter with nbecho installed, for the PyPy rows "
        "(default: $NBECHO_BENCH_PYPY; 'none' to skip)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=Path("bench.json"),
        help="where to write the results (default bench.json)",
    )
    p.add_argument(
        "--chart",
        type=Path,
        default=Path("bench.png"),
        help="where to write the chart (default bench.png)",
    )
    p.add_argument("--list", action="store_true", help="list the servers and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.size < 2:
        raise SystemExit("bench: --size must be at least 2 (a digit and LF)")
    if args.size > 65537:
        raise SystemExit("bench: --size at most 65537 (nbecho's longest line)")
    modes = [m for m in args.modes.split(",") if m]
    if not modes or set(modes) - set(MODES):
        raise SystemExit(f"bench: --modes takes {', '.join(MODES)}")
    specs = availableServers(_findPyPy(args.pypy), args.workers)
    if args.list:
        print("\n".join(specs))
        return 0
    if args.servers:
        wanted = [s for s in args.servers.split(",") if s]
        unknown = [s for s in wanted if s not in specs]
        if unknown:
            raise SystemExit(
                f"bench: unknown server {', '.join(unknown)}; "
                f"available: {', '.join(specs)}"
            )
        specs = {name: specs[name] for name in wanted}
    serverCores, loaderCores, allCores = _cores()
    depths = {"pingpong": 1, "pipelined": args.depth}
    conns = {"pingpong": args.connections, "pipelined": args.pipelined_connections}
    names = list(specs)
    rounds: dict[str, list[dict[str, dict[str, Any]]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="nbecho-bench-") as tmp:
        running: dict[str, RunningServer] = {}
        try:
            for name in names:
                cores = allCores if specs[name].cores == "all" else serverCores
                running[name] = RunningServer(specs[name], Path(tmp), cores)
            for r in range(args.rounds):
                for mode in modes:
                    results: dict[str, dict[str, Any]] = {}
                    order = names[r % len(names) :] + names[: r % len(names)]
                    for name in order:
                        results[name] = measure(
                            running[name],
                            conns[mode],
                            depths[mode],
                            args.size,
                            args.warmup,
                            args.duration,
                            args.loaders,
                            loaderCores,
                        )
                        print(
                            f"round {r + 1}/{args.rounds} {mode:9} {name:26} "
                            f"{results[name]['messagesPerSecond']:9.0f} msg/s "
                            f"{results[name]['serverCpuUsPerMessage']:7.2f} µs/msg",
                            flush=True,
                        )
                    rounds[mode].append({n: results[n] for n in names})
        finally:
            for server in running.values():
                server.stop()
    summary = {mode: summarize(rounds[mode]) for mode in modes}
    result = {
        "config": {
            "connections": args.connections,
            "pipelinedConnections": args.pipelined_connections,
            "depth": args.depth,
            "size": args.size,
            "duration": args.duration,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "loaders": args.loaders,
            "servers": {n: list(specs[n].argv) for n in names},
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
    for mode in modes:
        print(
            f"\n{mode}: median of {args.rounds} rounds, ratio = server CPU per "
            f"message / wire.Echo's in the same round"
        )
        print(formatTable(summary[mode]))
    print(f"\nwrote {args.json}")
    if writeChart(result, args.chart):
        print(f"wrote {args.chart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
