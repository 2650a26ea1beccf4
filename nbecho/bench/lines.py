"""
What one long line costs the server: C{python -m nbecho.bench.lines}.

For each size (1, 4, 16 and 64 MiB by default) it measures two things:

  - B{full speed}: a real C{twistd -n nbecho} process (with
    C{--max-line-length} raised) and, side by side, the plain asyncio echo
    server of L{nbecho.bench.servers} as the baseline; a client sends the
    line over loopback TCP in one go and reads the echo; the figure is the
    server's CPU time (user + system, from C{/proc}) for that.
  - B{16-byte reads}: line framing itself, fed the line 16 bytes a read in
    this process, the way a client trickling its line would deliver it; the
    figure is the CPU time of those reads and the echo.  A real socket
    cannot be made to deliver exactly 16 bytes a read; the reactor's own
    work per read (a few microseconds) comes on top in a real server.

Each measurement runs C{--repeat} times (3 by default) and the least CPU
time counts: on a shared machine the others include other processes'
interference.  The cost of receiving a line is linear when each 4x longer
line costs about 4x more.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from nbecho.bench.running import RunningServer
from nbecho.bench.specs import ServerSpec, _baseline, _nbecho
from nbecho.server.factory import EchoFactory
from nbecho.settings import EchoSettings

MiB = 1 << 20


def line(size: int) -> bytes:
    """
    A line of C{size} bytes, its LF included.
    """
    text = bytes(range(ord("a"), ord("z") + 1)) * (size // 26 + 1)
    return text[: size - 1] + b"\n"


def fullSpeed(server: RunningServer, data: bytes) -> float:
    """
    Send C{data} to C{server} in one go, read its echo, and return the
    server CPU seconds that cost.
    """

    def cpu() -> float:
        return sum(server.cpuTimes())

    received = 0
    with socket.create_connection(("127.0.0.1", server.port), 60) as sock:
        before = cpu()
        sender = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
        sender.start()
        while received < len(data):
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise SystemExit(f"bench: only {received} of {len(data)} echoed")
            received += len(chunk)
        sender.join()
    # Let the server finish the close, then read its CPU time.
    time.sleep(0.2)
    return cpu() - before


class _Discard(StringTransport):
    """
    A transport that throws echoes away: only the protocol is measured.
    """

    def write(self, data: bytes) -> None:
        pass


def smallReads(data: bytes, readSize: int) -> float:
    """
    The CPU seconds line framing spends on C{data} delivered C{readSize}
    bytes a read, and on echoing it.
    """
    settings = EchoSettings(maxLineLength=len(data), quiet=False)
    factory = EchoFactory(settings, Clock())
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(_Discard())
    receive = protocol.dataReceived
    chunks = [data[at : at + readSize] for at in range(0, len(data), readSize)]
    started = time.process_time()
    for chunk in chunks:
        receive(chunk)
    spent = time.process_time() - started
    if protocol.bytesOut != len(data):  # type: ignore[attr-defined]
        raise SystemExit("bench: the line was not echoed")
    protocol.transport.loseConnection()
    return spent


def _growth(costs: list[float]) -> list[str]:
    out = [""]
    for before, after in zip(costs, costs[1:]):
        out.append(f"x{after / before:.1f}" if before > 0 else "")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nbecho.bench.lines",
        description="Server CPU time for one long line, by length.",
    )
    parser.add_argument(
        "--sizes",
        default="1,4,16,64",
        help="line lengths in MiB, comma-separated (default: 1,4,16,64)",
    )
    parser.add_argument(
        "--read-size", type=int, default=16, help="bytes a read (default: 16)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each measurement; the least CPU time counts (default: 3)",
    )
    args = parser.parse_args(argv)
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes takes numbers, not {args.sizes!r}")
    if not sizes or min(sizes) < 1 or min(args.read_size, args.repeat) < 1:
        parser.error("sizes, --read-size and --repeat must be at least 1")
    runs = range(args.repeat)
    python = sys.executable
    limit = str(max(sizes) * MiB)
    nbecho = _nbecho("nbecho", python, "line", False)
    nbecho = ServerSpec(nbecho.name, (*nbecho.argv, "--max-line-length", limit), True)
    specs = [nbecho, _baseline("asyncio", python, "asyncio")]
    rows: dict[str, list[float]] = {spec.name: [] for spec in specs}
    rows[f"{args.read_size}-byte reads"] = []
    cores = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="nbecho-bench-lines-") as work:
        servers = [RunningServer(spec, Path(work), cores) for spec in specs]
        try:
            for size in sizes:
                data = line(size * MiB)
                for server in servers:
                    cost = min(fullSpeed(server, data) for _ in runs)
                    rows[server.spec.name].append(cost)
                rows[f"{args.read_size}-byte reads"].append(
                    min(smallReads(data, args.read_size) for _ in runs)
                )
                print(f"bench: {size} MiB done", file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
    header = ["CPU seconds"] + [f"{size} MiB" for size in sizes]
    print(" | ".join(f"{cell:>18}" for cell in header))
    titles = {
        "nbecho": "nbecho, full speed",
        "asyncio": "asyncio echo, full",
    }
    for name, costs in rows.items():
        cells = [f"{c:.2f} {g}".strip() for c, g in zip(costs, _growth(costs))]
        title = titles.get(name, f"nbecho, {name}")
        print(" | ".join(f"{cell:>18}" for cell in [title, *cells]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
