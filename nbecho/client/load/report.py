"""
What a load run shows: a live progress line on a terminal, the final table
for people, and the warning when the rate fell short of the target.
"""

from __future__ import annotations

from typing import IO, Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from nbecho._words import counted
from nbecho.client.load.connection import ERRORS
from nbecho.client.load.figures import Figures

#: From this share of a core on, the client itself is the bottleneck.
BUSY = 0.9


def shortfallWarning(figures: Figures) -> str:
    """
    The warning for a rate below the target: the figures then describe a
    lighter load than the one asked for.  It says which side could not keep
    up: a client that kept a core busy was the bottleneck itself.
    """
    if figures.cpu >= BUSY:
        why = (
            f"the client is the bottleneck (it kept {figures.cpu:.0%} of a "
            "core busy): spread it with --processes"
        )
    else:
        why = (
            f"the server or the path to it could not keep up (the client used "
            f"{figures.cpu:.0%} of a core)"
        )
    return (
        f"nbecho-client: warning: {figures.rate:.0f} messages a second "
        f"achieved, below the target of {figures.target:.0f}: {why}"
    )


def table(run: dict[str, Any], figures: Figures) -> str:
    """
    The final report, one figure a line.
    """
    loop = (
        f"open loop at {run['rate']:g} messages/s"
        if run["rate"] is not None
        else f"closed loop, pipeline {run['pipeline']}"
    )
    extent = (
        counted(run["count"], "message") if run["count"] else f"{run['duration']:g} s"
    )
    lines = [
        f"target        {run['target']} ({run['framing']} messages of "
        f"{counted(run['size'], 'byte')})",
        f"load          {counted(run['connections'], 'connection')}, {loop}, {extent}"
        f" after {run['warmup']:g} s of warm-up",
        f"messages      {figures.sent} sent, {figures.echoed} echoed and verified"
        f" in {figures.seconds:.3f} s",
        f"throughput    {figures.rate:.1f} messages/s, "
        f"{figures.bytes / figures.seconds if figures.seconds else 0:.0f} bytes/s",
        f"client CPU    {figures.cpu:.0%} of a core",
    ]
    latencies = figures.latencies()
    if latencies:
        lines.append(
            "latency (ms)  "
            + "  ".join(
                f"{name} {latencies[name]:.3f}"
                for name in ("p50", "p90", "p99", "p99.9", "max")
            )
        )
    if figures.errors:
        for kind, how in sorted(figures.errors.items()):
            lines.append(f"errors        {how} {kind}: {ERRORS[kind]}")
    else:
        lines.append("errors        none: every echo was right")
    return "\n".join(lines) + "\n"


class Progress:
    """
    The live line: rate over the last half second, p99 so far and errors,
    rewritten in place.  Shown only on a terminal.
    """

    interval = 0.5

    def __init__(self, clock: IReactorTime, figures: Figures, out: IO[str]) -> None:
        self.clock = clock
        self.figures = figures
        self.out = out
        self.loop = LoopingCall(self.show)
        self.loop.clock = clock
        self.started = clock.seconds()
        self.last = (self.started, 0)

    def start(self) -> None:
        self.loop.start(self.interval, now=False)

    def show(self) -> None:
        now = self.clock.seconds()
        since, echoed = self.last
        figures = self.figures
        rate = (figures.echoed - echoed) / (now - since) if now > since else 0.0
        self.last = (now, figures.echoed)
        p99 = figures.histogram.get_value_at_percentile(99.0) / 1000
        self.out.write(
            f"\r\x1b[K{now - self.started:6.1f} s  {rate:9.0f} messages/s  "
            f"{figures.echoed} echoed  p99 {p99:.3f} ms  "
            f"{counted(figures.failures, 'error')}"
        )
        self.out.flush()

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()
        self.out.write("\r\x1b[K")
        self.out.flush()
