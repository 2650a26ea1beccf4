"""
A seconds-long run of the benchmark, for correctness only: every server
starts, every echoed byte is checked, the JSON and the chart are written.
Timings are reported by the benchmark, never asserted here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbecho.bench.loaders import compileLoader, loaderCommand

SMOKE = [
    "--duration",
    "0.4",
    "--warmup",
    "0.2",
    "--rounds",
    "1",
    "--connections",
    "4",
    "--pipelined-connections",
    "2",
    "--depth",
    "8",
    "--pypy",
    "none",
    "--loader",
    "c",
]


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nbecho.bench", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def test_smoke(tmp_path: Path) -> None:
    """
    The benchmark drives Twisted's echo, asyncio and nbecho (line and raw
    framing, quiet and logging, two workers) with the C load generator in
    both modes, checks every byte, and writes a JSON result with a row per
    server and its ratios, and a PNG chart when matplotlib is there.
    """
    servers = (
        "wire,asyncio,nbecho-line-quiet,nbecho-line,nbecho-raw,nbecho-line-quiet-2w"
    )
    result = _bench(
        *SMOKE,
        "--servers",
        servers,
        "--json",
        "out.json",
        "--chart",
        "out.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    for mode in ("pingpong", "pipelined"):
        summary = data["summary"][mode]
        assert list(summary) == servers.split(",")
        for row in summary.values():
            assert row["messagesChecked"] > 0
            assert row["bytesChecked"] == row["messagesChecked"] * 64
        assert summary["wire"]["ratioToWire"] == 1.0
    assert data["config"]["loader"] == "c"
    for name in ("wire", "asyncio"):
        assert summary[name][f"ratioTo{name.capitalize()}"] == 1.0
    assert summary["nbecho-line"]["ratioToQuiet"] > 0
    assert "nbecho-line-quiet" in result.stdout
    if _hasMatplotlib():
        assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "no chart: matplotlib is not installed" in result.stderr
        assert not (tmp_path / "out.png").exists()


def _hasMatplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("loader", ["c", "python"])
def test_smokeSizes(tmp_path: Path, loader: str) -> None:
    """
    The message-size scenarios drive nbecho (both framings) and the asyncio
    Protocol and readline baselines in a closed loop of 5-message requests
    at 64 B and 100 KiB, check every byte, and report requests a second and
    per-request latencies beside CPU per message.
    """
    args = [a if a != "c" else loader for a in SMOKE]
    servers = "asyncio,asyncio-readline,nbecho-line,nbecho-raw-quiet"
    result = _bench(
        *args,
        *("--modes", "", "--sizes", "64,102400", "--request-connections", "2"),
        *("--servers", servers, "--json", "sizes.json"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "sizes.json").read_text())
    assert list(data["summary"]) == ["requests-64", "requests-102400"]
    for size in (64, 102400):
        summary = data["summary"][f"requests-{size}"]
        assert list(summary) == servers.split(",")
        for row in summary.values():
            assert row["messagesChecked"] > 0
            assert row["bytesChecked"] == row["messagesChecked"] * size
            assert row["requestsPerSecond"] * 5 == pytest.approx(
                row["messagesPerSecond"], rel=0.2
            )
            assert 0 < row["latencyUs"]["p50"] <= row["latencyUs"]["p99"]
        assert summary["asyncio-readline"]["ratioToReadline"] == 1.0
    assert "5 messages of 102400 B a request" in result.stdout
    assert "req/s" in result.stdout


def test_smokePythonLoader(tmp_path: Path) -> None:
    """
    With C{--loader python} the Python load generator drives the servers and
    checks every byte, for machines without a C compiler.
    """
    args = [a if a != "c" else "python" for a in SMOKE]
    result = _bench(
        *args, "--servers", "wire,nbecho-line-quiet", "--json", "o.json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["config"]["loader"] == "python"
    for mode in ("pingpong", "pipelined"):
        assert data["summary"][mode]["nbecho-line-quiet"]["messagesChecked"] > 0


def test_layers(tmp_path: Path) -> None:
    """
    The profile by layer samples nbecho under load in both modes and splits
    its CPU per message between Twisted's and nbecho's layers; with
    C{--where}, each layer's samples are also counted by the instruction
    they were taken at (a Python file, function, line and opcode).
    """
    result = subprocess.run(
        [
            *(sys.executable, "-m", "nbecho.bench.layers"),
            # Two seconds: the profiling timer follows the scheduler's tick,
            # which a mostly idle server meets only a few times a second on
            # some virtual machines; half a second sometimes gave no sample.
            *("--servers", "nbecho-line-quiet", "--duration", "2"),
            *("--json", "layers.json", "--where", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    profile = json.loads((tmp_path / "layers.json").read_text())
    for mode in ("pingpong", "pipelined"):
        layers = profile["nbecho-line-quiet"][mode]
        total = layers.pop("total")
        assert total["samples"] > 0
        assert abs(sum(layer["share"] for layer in layers.values()) - 1) < 1e-9
        assert any(name.startswith("nbecho ") for name in layers)
        for layer in layers.values():
            counts = list(layer["where"].values())
            assert sum(counts) == round(layer["share"] * total["samples"])
            assert counts == sorted(counts, reverse=True)
            for at in layer["where"]:
                assert re.fullmatch(r"[^:]+:[^:]+:\d+:[A-Z_?]+", at), at
    assert "nbecho-line-quiet, pingpong" in result.stdout
    assert " samples at " in result.stdout


@pytest.fixture
def corruptingServer() -> Iterator[int]:
    """
    An echo server that changes one byte of what it sends back.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            first = True
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if first:
                    data = b"X" + data[1:]
                    first = False
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(30)


@pytest.mark.parametrize("kind", ["c", "python"])
def test_loaderChecksEveryByte(
    corruptingServer: int, kind: str, tmp_path: Path
) -> None:
    """
    A server that echoes a byte wrong makes either load generator fail
    rather than count the message.
    """
    config = {
        "host": "127.0.0.1",
        "port": corruptingServer,
        "connections": 1,
        "size": 16,
        "depth": 1,
    }
    program = compileLoader(tmp_path) if kind == "c" else None
    loader = subprocess.Popen(
        loaderCommand(program, config),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert loader.stdout is not None and loader.stdin is not None
    assert loader.stdout.readline().strip() == "ready"
    window = f"go 0 {time.monotonic() + 5}\n"
    _out, err = loader.communicate(window, timeout=60)
    assert loader.returncode != 0
    assert "echo differs" in err


def test_badOption(tmp_path: Path) -> None:
    """
    An unknown server name is a one-line error naming the choices.
    """
    result = _bench("--servers", "nope", "--pypy", "none", cwd=tmp_path)
    assert result.returncode != 0
    assert "unknown server nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_smokePyPy(tmp_path: Path) -> None:
    """
    With a PyPy interpreter that has nbecho (CI makes one), the benchmark
    runs nbecho on PyPy beside Twisted's echo on CPython, every byte checked.
    """
    pypy = os.environ.get("NBECHO_BENCH_PYPY")
    if not pypy:
        pytest.skip("NBECHO_BENCH_PYPY names no PyPy with nbecho (CI sets it)")
    args = [a if a != "none" else pypy for a in SMOKE]
    result = _bench(
        *args,
        "--modes",
        "pipelined",
        "--servers",
        "wire,pypy-nbecho-line-quiet",
        "--json",
        "out.json",
        "--chart",
        "out.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    row = data["summary"]["pipelined"]["pypy-nbecho-line-quiet"]
    assert row["messagesChecked"] > 0
    assert data["config"]["servers"]["pypy-nbecho-line-quiet"][0] == pypy


def test_smokeOtherPython(tmp_path: Path) -> None:
    """
    C{--other-python} runs Twisted's echo and nbecho again on the named
    interpreter (this one, here), every byte checked, and gives each such
    row its ratio to the same server on the benchmark's own interpreter,
    taken within each round.
    """
    servers = "wire,nbecho-line-quiet,other-wire,other-nbecho-line-quiet"
    result = _bench(
        *SMOKE,
        *("--modes", "pipelined", "--other-python", sys.executable),
        *("--servers", servers, "--json", "out.json", "--chart", "out.png"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    summary = data["summary"]["pipelined"]
    assert list(summary) == servers.split(",")
    for row in summary.values():
        assert row["messagesChecked"] > 0
    assert data["config"]["servers"]["other-wire"] == [
        sys.executable,
        *("-m", "nbecho.bench.servers", "wire"),
    ]
    ratio = data["rounds"]["pipelined"][0]
    cpu = "serverCpuUsPerMessage"
    for name in ("wire", "nbecho-line-quiet"):
        assert summary[f"other-{name}"]["ratioToSame"] == pytest.approx(
            ratio[f"other-{name}"][cpu] / ratio[name][cpu]
        )
        assert summary[name]["ratioToSame"] is None
    assert "÷same" in result.stdout
