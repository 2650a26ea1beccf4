"""
Running the servers and measuring one of them under load.

Every server is its own process, pinned to one core when the machine has
two or more; load generator processes are pinned to the other cores.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Callable

import attrs

from nbecho.bench.loaders import loaderCommand
from nbecho.bench.proc import cpuTimes, processTree
from nbecho.bench.specs import ServerSpec

_READY = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def cores() -> tuple[set[int], set[int], set[int]]:
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
        self.errors.seek(0)
        detail = self.errors.read().decode("utf-8", "replace").strip()[-2000:]
        self.stop()
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

    def cpuTimes(self) -> tuple[float, float]:
        """
        User and system CPU seconds used so far by the server and its
        worker processes.
        """
        times = [cpuTimes(pid) for pid in self.pids]
        return sum(t[0] for t in times), sum(t[1] for t in times)

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


@attrs.frozen
class Load:
    """
    One measurement's load: C{connections} connections keeping C{depth}
    messages of C{size} bytes in flight, driven by C{loaders} processes of
    C{program} (L{None}: the Python load generator) on C{loaderCores}; with
    C{requests}, a closed loop of C{depth}-message requests instead.
    """

    connections: int
    depth: int
    size: int
    warmup: float
    duration: float
    loaders: int
    loaderCores: set[int]
    program: Path | None
    requests: bool = False


def _startLoaders(server: RunningServer, load: Load) -> list[subprocess.Popen[str]]:
    count, loaders = load.connections, load.loaders
    shares = [count // loaders + (i < count % loaders) for i in range(loaders)]
    procs = []
    for share in shares:
        if not share:
            continue
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "connections": share,
            "size": load.size,
            "depth": load.depth,
            "requests": int(load.requests),
        }
        proc = subprocess.Popen(
            loaderCommand(load.program, config),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        os.sched_setaffinity(proc.pid, load.loaderCores)
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(
                f"bench: load generator could not reach {server.spec.name}"
            )
    return procs


def measure(
    server: RunningServer, load: Load, window: Callable[[bool], None] | None = None
) -> dict[str, Any]:
    """
    One measurement: load generators drive C{server} for C{load.warmup}
    seconds, then C{load.duration} seconds while the server's CPU time is
    taken; C{window} is called with C{True} as that window opens and with
    C{False} as it closes.
    """
    procs = _startLoaders(server, load)
    start = time.monotonic() + load.warmup
    end = start + load.duration
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"go {start} {end}\n")
        proc.stdin.flush()
    time.sleep(max(0.0, start - time.monotonic()))
    if window:
        window(True)
    cpuStart = server.cpuTimes()
    time.sleep(max(0.0, end - time.monotonic()))
    cpuEnd = server.cpuTimes()
    if window:
        window(False)
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
    requests = sum(r.get("requests", r["messages"]) for r in results)
    latencies = sorted(x for r in results for x in r["latencies"])
    loaderCpu = sum(r["cpu"] for r in results)
    serverUser = cpuEnd[0] - cpuStart[0]
    serverCpu = serverUser + cpuEnd[1] - cpuStart[1]
    per = max(messages, 1)
    duration = load.duration
    return {
        "messages": messages,
        "messagesPerSecond": messages / duration,
        "requestsPerSecond": requests / duration,
        "serverCpuUsPerMessage": serverCpu * 1e6 / per,
        "serverUserUsPerMessage": serverUser * 1e6 / per,
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
