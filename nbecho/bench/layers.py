"""
Where a message's CPU time goes in nbecho, by layer.

    python -m nbecho.bench.layers [--servers nbecho-line-quiet,nbecho-line]

Runs C{twistd -n nbecho} (on CPython) under a sampling profiler while the
benchmark's load generator drives it, ping-pong and pipelined.  Every 0.5 ms of the
server's CPU time (C{ITIMER_PROF}: user and system time, which Linux
counts by its scheduler's tick) a sample is taken and classified by the
innermost Python frame that belongs to a known layer, so a system call's
time (C{send} and the loopback TCP it runs, C{recv}, C{epoll_wait}) counts
for the layer that made it, and a built-in's for the layer that called it.
Each layer's share of the samples, times the CPU per message measured from
C{/proc} in the same window, gives its microseconds per message; the
system CPU time is shown in total.  Unlike a tracing profiler
(C{cProfile}), sampling does not inflate layers made of many small calls;
its precision is the number of samples, shown with each table.

A sample is charged where CPython ran the signal handler, and CPython runs
it only at its next check (a function's first instruction, a loop's jump
back, the end of some calls): a tick that falls in C code or in the kernel
counts for the next Python frame that checks.  C{--where N} shows, for each
layer, the N instructions its samples were taken at most often (file,
function, line and opcode), which tells a layer's own work from time
charged to it that way.
"""

from __future__ import annotations

import argparse
import dis
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from nbecho.bench.loaders import chooseLoader
from nbecho.bench.running import Load, RunningServer, cores, measure
from nbecho.bench.specs import ServerSpec, availableServers

#: (layer, path fragment, function names or None for all), first match wins.
_RULES: list[tuple[str, str, tuple[str, ...] | None]] = [
    ("Twisted callWithLogger, log context", "/twisted/", ("logPrefix",)),
    ("nbecho _fastwrite (send at once)", "/nbecho/server/_fastwrite.py", None),
    ("nbecho lines (line framing)", "/nbecho/server/lines.py", None),
    ("nbecho protocol (echo, counting)", "/nbecho/server/protocol.py", None),
    ("nbecho connection (idle timeout)", "/nbecho/server/connection.py", None),
    ("nbecho connection (idle timeout)", "/twisted/protocols/policies.py", None),
    (
        "nbecho connection (idle timeout)",
        "/twisted/internet/base.py",
        ("reset", "seconds", "getTime", "_moveCallLaterSooner"),
    ),
    ("logging (twisted.logger, nbecho.logs)", "/twisted/logger/", None),
    ("logging (twisted.logger, nbecho.logs)", "/nbecho/logs/", None),
    ("Twisted callWithLogger, log context", "/twisted/python/log.py", None),
    ("Twisted callWithLogger, log context", "/twisted/python/context.py", None),
    ("Twisted TCP transport (doRead, write)", "/twisted/internet/tcp.py", None),
    ("Twisted TCP transport (doRead, write)", "/twisted/internet/abstract.py", None),
    ("reactor loop (epoll, timers)", "/twisted/internet/", None),
    ("sampling profiler", "/nbecho/bench/layers.py", None),
]

#: User CPU seconds between samples.
INTERVAL = 0.0005


def classify(frame: FrameType | None) -> str:
    """
    The layer of the innermost frame of C{frame}'s stack that has one.
    """
    while frame is not None:
        code = frame.f_code
        for layer, fragment, names in _RULES:
            if fragment in code.co_filename and (
                names is None or code.co_name in names
            ):
                return layer
        frame = frame.f_back
    return "other"


_opcodes: dict[CodeType, dict[int, str]] = {}


def where(frame: FrameType | None) -> str:
    """
    The instruction C{frame} is at: C{file:function:line:OPCODE}.
    """
    if frame is None:
        return "?"
    code = frame.f_code
    table = _opcodes.get(code)
    if table is None:
        table = {i.offset: i.opname for i in dis.get_instructions(code)}
        _opcodes[code] = table
    name = Path(code.co_filename).name
    opcode = table.get(frame.f_lasti, "?")
    return f"{name}:{code.co_name}:{frame.f_lineno or 0}:{opcode}"


class Sampler:
    """
    Counts samples by layer, and by layer and instruction, between two
    C{SIGUSR2}s, then writes them to C{path} as JSON.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self.places: Counter[tuple[str, str]] = Counter()
        self.running = False

    def sample(self, signum: int, frame: FrameType | None) -> None:
        layer = classify(frame)
        self.counts[layer] += 1
        self.places[layer, where(frame)] += 1

    def toggle(self, signum: int, frame: FrameType | None) -> None:
        if not self.running:
            self.counts.clear()
            self.places.clear()
            self.running = True
            signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)
            return
        signal.setitimer(signal.ITIMER_PROF, 0)
        self.running = False
        partial = self.path.with_suffix(".part")
        places = [[layer, at, n] for (layer, at), n in self.places.most_common()]
        partial.write_text(json.dumps({"layers": self.counts, "places": places}))
        partial.rename(self.path)


def serve(path: Path, twistdArgs: list[str]) -> None:
    """
    Run twistd with C{twistdArgs}, sampled between C{SIGUSR2}s.
    """
    sampler = Sampler(path)
    signal.signal(signal.SIGPROF, sampler.sample)
    signal.signal(signal.SIGUSR2, sampler.toggle)
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *twistdArgs]
    run()


def _profiled(spec: ServerSpec, out: Path) -> ServerSpec:
    """
    C{spec}'s twistd command run through L{serve}.
    """
    python, _c, _code, *rest = spec.argv
    argv = (python, "-m", "nbecho.bench.layers", "--serve", str(out), *rest)
    return ServerSpec(spec.name, argv, True, spec.cores)


def profile(server: RunningServer, load: Load, out: Path) -> dict[str, dict[str, Any]]:
    """
    Drive C{server} with C{load}; return each layer's share and
    microseconds per message.
    """
    out.unlink(missing_ok=True)

    def window(opening: bool) -> None:
        os.kill(server.process.pid, signal.SIGUSR2)

    row = measure(server, load, window)
    deadline = time.monotonic() + 30
    while not out.exists():
        if time.monotonic() > deadline:
            raise SystemExit("bench: the profiled server wrote no samples")
        time.sleep(0.05)
    written = json.loads(out.read_text())
    samples: dict[str, int] = written["layers"]
    total = row["serverCpuUsPerMessage"]
    count = sum(samples.values())
    layers: dict[str, dict[str, Any]] = {
        name: {"share": n / count, "usPerMessage": total * n / count, "where": {}}
        for name, n in sorted(samples.items(), key=lambda item: -item[1])
    }
    for layer, at, n in written["places"]:
        layers[layer]["where"][at] = n
    layers["total"] = {
        "share": 1.0,
        "usPerMessage": total,
        "systemUsPerMessage": total - row["serverUserUsPerMessage"],
        "messagesPerSecond": row["messagesPerSecond"],
        "samples": count,
    }
    return layers


def _format(
    name: str, mode: str, layers: dict[str, dict[str, Any]], places: int = 0
) -> str:
    total = layers["total"]
    lines = [
        f"\n{name}, {mode}: {total['messagesPerSecond']:.0f} msg/s, "
        f"{total['samples']:.0f} samples, of the total "
        f"{total['systemUsPerMessage']:.2f} µs/msg in the kernel",
        f"{'layer':42} {'µs/msg':>7} {'share':>6}",
    ]
    for layer, values in layers.items():
        lines.append(f"{layer:42} {values['usPerMessage']:7.2f} {values['share']:6.0%}")
        for at, n in list(values.get("where", {}).items())[:places]:
            lines.append(f"    {n:6d} samples at {at}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve"]:
        serve(Path(args[1]), args[2:])
        return 0
    p = argparse.ArgumentParser(
        prog="python -m nbecho.bench.layers",
        description="Profile nbecho's CPU per message by layer.",
    )
    p.add_argument("--servers", default="nbecho-line-quiet,nbecho-line")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--pipelined-connections", type=int, default=10)
    p.add_argument("--depth", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--json", type=Path, default=Path("layers.json"))
    p.add_argument(
        "--where",
        type=int,
        default=0,
        metavar="N",
        help="under each layer, the N instructions its samples were taken at",
    )
    options = p.parse_args(args)
    specs = availableServers(None, [1])
    names = [n for n in options.servers.split(",") if n]
    bad = [n for n in names if n not in specs or not specs[n].twistd]
    if bad:
        raise SystemExit(f"bench: not an nbecho server on CPython: {', '.join(bad)}")
    serverCores, loaderCores, _ = cores()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nbecho-layers-") as tmp:
        workdir = Path(tmp)
        program = chooseLoader("auto", workdir)
        for name in names:
            out = workdir / f"{name}.samples.json"
            server = RunningServer(_profiled(specs[name], out), workdir, serverCores)
            try:
                for mode, conns, depth in [
                    ("pingpong", options.connections, 1),
                    ("pipelined", options.pipelined_connections, options.depth),
                ]:
                    load = Load(
                        conns,
                        depth,
                        options.size,
                        1.0,
                        options.duration,
                        1,
                        loaderCores,
                        program,
                    )
                    layers = profile(server, load, out)
                    result.setdefault(name, {})[mode] = layers
                    print(_format(name, mode, layers, options.where), flush=True)
            finally:
                server.stop()
    options.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {options.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
