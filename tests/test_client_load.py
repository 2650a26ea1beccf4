"""
C{nbecho-client load}, the measuring client, end to end: against real
nbecho, socat, ncat and HAProxy on loopback, and against small peers here
that corrupt, cut short or close, each run bounded to a few seconds.
"""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._clients import runClient, startClient
from tests._servers import RunningServer, ServerFactory, freePort, script, tool, waitFor
from tests._terminal import Terminal
from tests.test_haproxy import Proxied, haproxy  # noqa: F401 - the fixture
from tests.test_tls import PKI, pki, tlsServer  # noqa: F401 - the fixtures

#: Every run: a short measured window and a short wait for the last echoes.
SHORT = ("--duration", "1", "--drain", "2")


def load(port: int | None, *arguments: str) -> tuple[int, dict[str, Any], str]:
    """
    Run C{nbecho-client load --json} and return its exit status, its figures
    and its error output.
    """
    target = () if port is None else ("127.0.0.1", str(port))
    result = runClient(None, b"", "load", *target, "--json", *arguments, timeout=60)
    stderr = result.stderr.decode()
    assert result.stdout, stderr
    return result.returncode, json.loads(result.stdout), stderr


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def peer() -> Iterator[Any]:
    """
    Start a third-party echo command listening on a free loopback port; the
    test gives the command, with C{{port}} for the port.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> int:
        port = freePort()
        process = subprocess.Popen(
            [part.format(port=port) for part in command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        waitFor(lambda: _listening(port), f"{command[0]} to listen")
        return port

    yield start
    for process in started:
        process.terminate()
        process.wait(30)


def test_nbecho_closed_loop(nbechoServer: ServerFactory) -> None:
    """Every echo from nbecho is verified, the JSON has its fields, exit 0."""
    server = nbechoServer()
    code, figures, stderr = load(
        server.port, "-n", "4", "--pipeline", "4", "--size", "1,64,1000", *SHORT
    )
    assert code == 0, stderr
    assert figures["ok"] is True and figures["errors"] == {}
    assert figures["echoed"] == figures["sent"] > 100
    assert figures["bytes"] > figures["echoed"]
    assert set(figures["latency_ms"]) >= {"p50", "p90", "p99", "p99.9", "max"}
    assert figures["latency_ms"]["p50"] <= figures["latency_ms"]["max"]
    assert figures["command"][:2] == ["nbecho-client", "load"]
    assert set(figures["versions"]) == {"nbecho", "twisted", "python"}
    # Standard error is a pipe here: no progress line, no warning.
    assert stderr == ""


def test_open_loop_rate_and_warmup(nbechoServer: ServerFactory) -> None:
    """
    Open loop sends exactly rate x duration measured messages, the warm-up's
    left out, and the rate achieved is near the target.
    """
    server = nbechoServer()
    code, figures, stderr = load(
        server.port, "-n", "2", "--rate", "400", "--warmup", "1", *SHORT
    )
    assert code == 0, stderr
    # 400 messages were due in the measured second (and 400 more before it).
    assert 399 <= figures["sent"] <= 401
    assert figures["echoed"] == figures["sent"]
    assert 200 <= figures["messages_per_second"] <= 500
    assert figures["loop"] == "open" and figures["target_rate"] == 400


def test_raw_and_count(nbechoServer: ServerFactory) -> None:
    """Raw random bytes come back verified from a raw nbecho; --count stops."""
    server = nbechoServer("--framing", "raw")
    code, figures, stderr = load(
        server.port, "--raw", "--size", "100-5000", "--count", "300", "-n", "3"
    )
    assert code == 0, stderr
    assert figures["sent"] == figures["echoed"] == 300


def test_socat(peer: Any) -> None:
    """socat's echo (one process per connection) passes verification."""
    port = peer(
        tool("socat"), "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", "PIPE"
    )
    code, figures, stderr = load(port, "-n", "2", *SHORT)
    assert code == 0, stderr
    assert figures["echoed"] == figures["sent"] > 0


def test_ncat(peer: Any) -> None:
    """ncat --keep-open --exec /bin/cat passes verification."""
    port = peer(
        tool("ncat"), "-l", "127.0.0.1", "{port}", "--keep-open", "--exec", "/bin/cat"
    )
    code, figures, stderr = load(port, "-n", "2", "--rate", "200", *SHORT)
    assert code == 0, stderr
    assert figures["echoed"] == figures["sent"] > 0


def test_through_haproxy(haproxy: Proxied) -> None:  # noqa: F811
    """Through HAProxy to two nbecho instances, every echo is right."""
    code, figures, stderr = load(haproxy.port, "-n", "4", "--pipeline", "2", *SHORT)
    assert code == 0, stderr
    assert figures["echoed"] == figures["sent"] > 0


def test_tls(tlsServer: RunningServer, pki: PKI) -> None:  # noqa: F811
    """Over TLS with --ca, every echo is right."""
    code, figures, stderr = load(
        None, "--connect", f"tls:host=localhost:port={tlsServer.port}",
        "--ca", str(pki.ca), "-n", "2", *SHORT,
    )  # fmt: skip
    assert code == 0, stderr
    assert figures["echoed"] == figures["sent"] > 0


def test_unix_socket(nbechoServer: ServerFactory, tmp_path: Path) -> None:
    """Over a UNIX socket, every echo is right."""
    nbechoServer("--listen", f"unix:{tmp_path / 'echo.sock'}")
    code, figures, stderr = load(
        None, "--connect", f"unix:{tmp_path / 'echo.sock'}", "-n", "2", *SHORT
    )
    assert code == 0, stderr
    assert figures["echoed"] == figures["sent"] > 0


def test_tls_untrusted(tlsServer: RunningServer, pki: PKI) -> None:  # noqa: F811
    """A server the --ca did not sign is one line and exit 1, not lost echoes."""
    result = runClient(
        None, b"", "load", "--connect", f"tls:host=localhost:port={tlsServer.port}",
        "--ca", str(pki.otherCA), "-n", "2", *SHORT,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.startswith(
        b"nbecho-client: cannot connect to tls:host=localhost:port="
    )
    assert b"TLS handshake failed: certificate verify failed" in result.stderr
    assert result.stderr.count(b"\n") == 1


def test_udp(nbechoServer: ServerFactory) -> None:
    """Over UDP each message is one datagram, and every echo is matched."""
    server = nbechoServer(
        "--listen", "udp:0:interface=127.0.0.1", "--udp-rate", "0",
        "--udp-rate-total", "0",
    )  # fmt: skip
    code, figures, stderr = load(
        None, "--connect", f"udp:host=127.0.0.1:port={server.port}", "--rate", "200",
        "-n", "2", *SHORT,
    )  # fmt: skip
    assert code == 0, stderr
    assert figures["echoed"] == figures["sent"] == 200


def test_udp_loss_counted(nbechoServer: ServerFactory) -> None:
    """Datagrams the server drops (over its --udp-rate) are counted lost."""
    server = nbechoServer(
        "--listen", "udp:0:interface=127.0.0.1", "--udp-rate", "20"
    )  # fmt: skip
    code, figures, _stderr = load(
        None, "--udp", "--port", str(server.port), "--rate", "200",
        "--timeout", "0.5", *SHORT,
    )  # fmt: skip
    assert code == 3
    assert figures["errors"]["lost"] == figures["sent"] - figures["echoed"] > 100


class _Misbehaving(socketserver.BaseRequestHandler):
    """
    A peer that echoes the first message right, then corrupts, cuts short
    or closes, by the port it was reached on.
    """

    mode = ""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        first = sock.recv(65536)
        sock.sendall(first)
        data = sock.recv(65536)
        if self.mode == "corrupt":
            sock.sendall(data[:-2] + b"!" + data[-1:])
        elif self.mode == "truncate":
            sock.sendall(data[: len(data) // 2])
        sock.close()


@pytest.mark.parametrize(
    "mode, kind", [("corrupt", "mismatch"), ("truncate", "short"), ("close", "closed")]
)
def test_misbehaving_peer(mode: str, kind: str) -> None:
    """A wrong, short or missing echo is counted by kind and exits 3."""
    handler = type("Handler", (_Misbehaving,), {"mode": mode})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            code, figures, stderr = load(
                server.server_address[1], "-n", "2", "--size", "20", *SHORT
            )
        finally:
            server.shutdown()
    assert code == 3, stderr
    assert figures["ok"] is False
    assert figures["errors"] == {kind: 2}
    assert figures["echoed"] >= 2


def test_processes_merge(nbechoServer: ServerFactory) -> None:
    """--processes 2 adds up both processes' counts and histograms."""
    server = nbechoServer()
    code, figures, stderr = load(
        server.port, "--processes", "2", "-n", "3", "--rate", "300", *SHORT
    )
    assert code == 0, stderr
    assert figures["connections"] == 3
    assert 298 <= figures["sent"] <= 302
    assert figures["echoed"] == figures["sent"]
    assert figures["target_rate"] == 300


def test_rate_shortfall_warns(peer: Any) -> None:
    """A rate the target cannot echo back is a warning, not a silent shortfall."""
    port = peer(
        tool("socat"), "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", "PIPE"
    )
    _code, figures, stderr = load(
        port, "--rate", "1000000", "--duration", "0.2", "--drain", "10"
    )
    assert figures["messages_per_second"] < 950000
    assert "warning:" in stderr and "below the target of 1000000" in stderr


def test_progress_on_terminal(nbechoServer: ServerFactory) -> None:
    """On a terminal a live progress line shows, then the table."""
    server = nbechoServer()
    terminal = Terminal(
        [script("nbecho-client"), "load", "127.0.0.1", str(server.port),
         "--duration", "2"],
    )  # fmt: skip
    try:
        terminal.waitFor(b"messages/s  ")
        terminal.waitFor(b"errors        none: every echo was right")
        assert terminal.wait() == 0
    finally:
        terminal.close()


def test_interrupted_run_reports(nbechoServer: ServerFactory) -> None:
    """Ctrl-C (SIGINT) stops sending, and what was measured is reported."""
    server = nbechoServer()
    client = startClient(
        None, "load", "127.0.0.1", str(server.port), "--json",
        "--rate", "200", "--duration", "60",
    )  # fmt: skip
    try:
        server.waitForLog("Read Data 127.0.0.1:")
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=30)
    finally:
        client.kill()
        client.wait()
    assert client.returncode == 0, err
    figures = json.loads(out)
    assert figures["echoed"] == figures["sent"] > 0
    assert figures["seconds"] < 30


def test_unreachable_and_usage() -> None:
    """No server: exit 1 with one line; a bad option: exit 2 with one line."""
    result = runClient(None, b"", "load", "127.0.0.1", str(freePort()), *SHORT)
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1
    assert result.stderr.startswith(b"nbecho-client: cannot connect to 127.0.0.1:")
    result = runClient(None, b"", "load", "--size", "0")
    assert result.returncode == 2
    assert result.stderr == (
        b"nbecho-client: --size takes N, N,M,... or MIN-MAX, in bytes from 1, "
        b"not '0' (see: nbecho-client load --help)\n"
    )
