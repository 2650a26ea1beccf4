"""
The real C{nbecho-client --udp} against UDP echo peers that are not
nbecho: C{socat} echoing each datagram, and Python peers that drop the first
datagram, stop answering after a few or never answer; a closed port; and the
endings it shares with TCP (exit word, prompt and Ctrl-C on a terminal, a
closed stdout, usage errors).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests._clients import lines, readLine, runClient, startClient
from tests._servers import TIMEOUT, script, tool
from tests._terminal import Terminal

EXIT_UNREACHABLE = 1
EXIT_USAGE = 2
EXIT_LOST = 3


def freeUDPPort(host: str = "127.0.0.1") -> int:
    """
    A loopback UDP port that was free a moment ago, for socat (which cannot
    report a port it picked) and for a port nothing listens on.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class Peer:
    """
    A UDP peer on a loopback address in a thread of the test: it records
    every datagram it receives and echoes those C{answer} allows.
    """

    def __init__(self, answer: object, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.socket.bind((host, 0))
        self.socket.settimeout(0.1)
        self.port: int = self.socket.getsockname()[1]
        self.answer = answer
        self.received: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                datagram, sender = self.socket.recvfrom(65535)
            except TimeoutError:
                continue
            self.received.append(datagram)
            assert callable(self.answer)
            if self.answer(len(self.received)):
                self.socket.sendto(datagram, sender)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(TIMEOUT)
        self.socket.close()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """
    The Python peers a test starts, stopped when it ends.
    """
    started: list[Peer] = []
    try:
        yield started
    finally:
        for peer in started:
            peer.stop()


@pytest.fixture
def socatEcho() -> Iterator[int]:
    """
    C{socat} echoing every UDP datagram on 127.0.0.1, on a free port,
    answering once a probe datagram comes back.
    """
    port = freeUDPPort()
    process = subprocess.Popen(
        [tool("socat"), "-T", "10", f"UDP-LISTEN:{port},bind=127.0.0.1,fork", "PIPE"]
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            probe.connect(("127.0.0.1", port))
            deadline = time.monotonic() + TIMEOUT
            while True:
                assert time.monotonic() < deadline, "socat never echoed"
                try:
                    probe.send(b"probe")
                    if probe.recv(100) == b"probe":
                        break
                except (TimeoutError, ConnectionRefusedError):
                    pass
        yield port
    finally:
        process.kill()
        process.wait()


def test_pipelineThroughSocat(socatEcho: int) -> None:
    """
    Piped lines come back from socat's UDP echo in order, exactly, and the
    client exits 0 at the end of input.
    """
    result = runClient(socatEcho, lines(300), "--udp")
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == lines(300)


def test_connectStringAndLastLine(socatEcho: int) -> None:
    """
    A C{udp:} connect string selects UDP; a last line without a newline is
    echoed without one, and CR bytes come back as sent.
    """
    result = runClient(
        None, b"one\r\ntwo", "--connect", f"udp:host=127.0.0.1:port={socatEcho}"
    )
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"one\r\ntwo"


def test_exitWord(peers: list[Peer]) -> None:
    """
    The exit word is sent, its echo printed, and the client exits 0 without
    sending what follows it.
    """
    peer = Peer(lambda count: True)
    peers.append(peer)
    result = runClient(peer.port, b"a\nexit\nb\n", "-u")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"a\nexit\n", b"")
    assert peer.received == [b"a", b"exit"]


def test_ipv6(peers: list[Peer]) -> None:
    """
    An IPv6 peer is reached by address, as an argument or in an escaped
    connect string.
    """
    peer = Peer(lambda count: True, host="::1")
    peers.append(peer)
    result = runClient(None, b"six\n", "-u", "::1", str(peer.port))
    assert (result.returncode, result.stdout, result.stderr) == (0, b"six\n", b"")
    result = runClient(None, b"six\n", "--connect", rf"udp:host=\:\:1:port={peer.port}")
    assert (result.returncode, result.stdout) == (0, b"six\n")


def test_retryAfterLoss(peers: list[Peer]) -> None:
    """
    A datagram that gets no echo is sent again after the timeout, and the
    session goes on.
    """
    peer = Peer(lambda count: count != 1)
    peers.append(peer)
    started = time.monotonic()
    result = runClient(peer.port, b"a\nb\n", "-u", "--timeout", "0.5")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"a\nb\n", b"")
    assert peer.received == [b"a", b"a", b"b"]
    assert time.monotonic() - started >= 0.5


def test_neverAnswered(peers: list[Peer]) -> None:
    """
    A peer that never answers gets the line 1 + retries times; then the
    client says so in one line and exits 1, as for an unreachable server.
    """
    peer = Peer(lambda count: False)
    peers.append(peer)
    started = time.monotonic()
    result = runClient(peer.port, b"a\nb\n", "-u", "--timeout", "0.3", "--retries", "2")
    assert result.returncode == EXIT_UNREACHABLE
    assert result.stdout == b""
    assert (
        result.stderr
        == (
            f"nbecho-client: cannot reach 127.0.0.1:{peer.port} over UDP: "
            "no echo after 3 tries, 0.3 s each\n"
        ).encode()
    )
    assert peer.received == [b"a"] * 3
    assert time.monotonic() - started >= 0.9


def test_stopsAnswering(peers: list[Peer]) -> None:
    """
    A peer that stops answering mid-session ends it with status 3 and one
    line naming the unanswered line, after printing every echo received.
    """
    peer = Peer(lambda count: count <= 2)
    peers.append(peer)
    result = runClient(
        peer.port, b"a\nb\nc\nd\n", "-u", "--timeout", "0.2", "--retries", "1"
    )
    assert result.returncode == EXIT_LOST
    assert result.stdout == b"a\nb\n"
    assert (
        result.stderr
        == (
            f"nbecho-client: 127.0.0.1:{peer.port} over UDP: "
            "no echo of line 3 after 2 tries, 0.2 s each\n"
        ).encode()
    )


def test_closedPort() -> None:
    """
    A port nothing listens on is reported at once from the ICMP port
    unreachable, well before the timeout, with status 1.
    """
    port = freeUDPPort()
    started = time.monotonic()
    result = runClient(port, b"a\n", "-u", "--timeout", "20", "--retries", "0")
    assert time.monotonic() - started < 15
    assert result.returncode == EXIT_UNREACHABLE
    assert (
        result.stderr
        == (
            f"nbecho-client: cannot reach 127.0.0.1:{port} over UDP: "
            "connection refused: nothing receives UDP on that port\n"
        ).encode()
    )


def test_peerGoesAway(peers: list[Peer]) -> None:
    """
    When the peer's port closes mid-session, the next datagram is refused
    and the client exits 3 at once.
    """
    peer = Peer(lambda count: True)
    peers.append(peer)
    client = startClient(peer.port, "-u", "--timeout", "20", "--retries", "0")
    try:
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(b"a\n")
        client.stdin.flush()
        assert readLine(client.stdout) == b"a\n"
        peer.stop()
        client.stdin.write(b"b\n")
        client.stdin.flush()
        assert client.wait(15) == EXIT_LOST
        assert client.stderr is not None
        assert b"connection refused" in client.stderr.read()
    finally:
        client.kill()
        client.wait()


def test_closedStdout(socatEcho: int) -> None:
    """
    A reader that quits (C{head -1}) ends the client quietly by SIGPIPE.
    """
    command = (
        f"seq 1 1000 | {script('nbecho-client')} -u -p {socatEcho} | head -1;"
        ' echo "status=${PIPESTATUS[1]}"'
    )
    result = subprocess.run(
        [tool("bash", required=True), "-c", command],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.stdout == b"1\nstatus=141\n"
    assert result.stderr == b""


def test_terminal(peers: list[Peer]) -> None:
    """
    On a terminal the prompt comes before each line and after each echo,
    and Ctrl-C exits 130 at once.
    """
    peer = Peer(lambda count: True)
    peers.append(peer)
    terminal = Terminal([script("nbecho-client"), "-u", "-p", str(peer.port)])
    try:
        prompt = b'send server (exit is "exit"): '
        terminal.waitFor(prompt)
        terminal.type(b"hi\n")
        terminal.waitFor(prompt + b"hi\r\nhi\r\n" + prompt)
        terminal.type(b"\x03")
        assert terminal.wait() == 130
        assert peer.received == [b"hi"]
    finally:
        terminal.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["--udp", "--connect", "tls:host=localhost:port=1"],
        ["--udp", "--connect", "unix:path=x"],
        ["--timeout", "2"],
        ["-u", "--retries", "many"],
        ["--connect", "udp:host=127.0.0.1"],
    ],
)
def test_usageErrors(argv: list[str]) -> None:
    """
    Options that cannot work over UDP exit 2 with one line, no traceback.
    """
    result = runClient(None, b"", *argv)
    assert result.returncode == EXIT_USAGE
    assert result.stdout == b""
    assert result.stderr.count(b"\n") == 1
    assert result.stderr.startswith(b"nbecho-client: ")
