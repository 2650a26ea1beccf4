"""
The benchmark's load generator: one process driving C connections to an echo
server, checking every byte that comes back.

Run by L{nbecho.bench} as C{python -m nbecho.bench.load CONFIG-JSON}.  It
talks to its parent over standard input and output: it connects, prints
C{ready}, reads C{go T1 T2} (monotonic clock times: the measured window),
keeps C{depth} messages in flight on every connection until C{T2}, waits for
every outstanding echo, and prints one JSON line with what it measured.
With C{requests} set it is a closed loop, as vmbench's echo client is: each
connection sends C{depth} messages as one request and waits for all their
echoes before the next; latencies are then per request.

It is written against C{select.epoll} and plain sockets, with no framework,
so that its own cost per message stays well below the servers it measures;
its CPU time in the window is part of the result to show that.
"""

from __future__ import annotations

import json
import random
import select
import socket
import sys
import time
from collections import deque
from typing import Any

#: Most latency samples one load generator reports.
MAX_SAMPLES = 50000

#: Longest wait for the last echoes after the window closes.
DRAIN_TIMEOUT = 20.0


class EchoMismatchError(Exception):
    """
    The server sent back bytes other than the ones sent to it.
    """


class _Connection:
    """
    One client connection: what was sent and not yet echoed, and when each
    outstanding message was sent.
    """

    __slots__ = (
        "done",
        "echoed",
        "outbuf",
        "pending",
        "requestAt",
        "sentAt",
        "seq",
        "sock",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray()
        self.sentAt: deque[float] = deque()
        self.seq = 0
        self.echoed = 0
        self.done = 0
        self.outbuf = b""
        self.requestAt = 0.0


def _messages(conn: _Connection, count: int, width: int, modulo: int) -> bytes:
    """
    C{count} new messages for C{conn}: a sequence number padded with x (as
    vmbench's payload is all x) to C{width} bytes and LF, so that a lost,
    repeated or reordered message shows.
    """
    seq = conn.seq
    conn.seq = seq + count
    return b"".join(
        (b"%d" % (n % modulo)).rjust(width, b"x") + b"\n"
        for n in range(seq, seq + count)
    )


def run(config: dict[str, Any]) -> dict[str, Any]:
    """
    Drive the server described by C{config}; return the measurements.
    """
    host = config["host"]
    port = config["port"]
    count = config["connections"]
    size = config["size"]
    depth = config["depth"]
    requests = bool(config.get("requests"))
    width = size - 1
    modulo = 10 ** min(width, 18)

    poller = select.epoll()
    conns: dict[int, _Connection] = {}
    for _ in range(count):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conns[sock.fileno()] = _Connection(sock)
        poller.register(sock.fileno(), select.EPOLLIN)
    print("ready", flush=True)
    command = sys.stdin.readline().split()
    if not command or command[0] != "go":
        raise SystemExit("load generator: expected 'go T1 T2'")
    start, end = float(command[1]), float(command[2])

    latencies: list[float] = []
    windowMessages = 0
    windowRequests = 0
    bytesChecked = 0
    cpuStart = cpuEnd = None
    now = time.monotonic()

    def send(conn: _Connection, k: int, now: float) -> None:
        data = _messages(conn, k, width, modulo)
        conn.pending += data
        conn.sentAt.extend([now] * k)
        if conn.outbuf:
            conn.outbuf += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            conn.outbuf = data[sent:]
            poller.modify(conn.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    for conn in conns.values():
        conn.requestAt = now
        send(conn, depth, now)

    sending = True
    drainDeadline = None
    outstanding = len(conns)
    while outstanding:
        events = poller.poll(0.05)
        now = time.monotonic()
        if cpuStart is None and now >= start:
            cpuStart = time.process_time()
        if sending and now >= end:
            cpuEnd = time.process_time()
            sending = False
            drainDeadline = now + DRAIN_TIMEOUT
        if drainDeadline is not None and now > drainDeadline:
            raise SystemExit(
                "load generator: echoes still missing "
                f"{DRAIN_TIMEOUT:.0f}s after the window closed"
            )
        inWindow = start <= now < end
        for fd, event in events:
            conn = conns[fd]
            if event & select.EPOLLOUT:
                sent = conn.sock.send(conn.outbuf)
                conn.outbuf = conn.outbuf[sent:]
                if not conn.outbuf:
                    poller.modify(fd, select.EPOLLIN)
            if not event & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                continue
            try:
                data = conn.sock.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("load generator: the server closed a connection")
            n = len(data)
            if conn.pending[:n] != data:
                raise EchoMismatchError(
                    f"connection {fd}: echo differs from what was sent"
                )
            del conn.pending[:n]
            bytesChecked += n
            conn.echoed += n
            done = conn.echoed // size
            k = done - conn.done
            if not k:
                continue
            conn.done = done
            sentAt = conn.sentAt
            if inWindow:
                windowMessages += k
            for _ in range(k):
                sentTime = sentAt.popleft()
                if inWindow and not requests:
                    latencies.append(now - sentTime)
            idle = not conn.pending
            if requests and idle and inWindow:
                windowRequests += 1
                latencies.append(now - conn.requestAt)
            if sending and not requests:
                send(conn, k, now)
            elif sending and idle:
                conn.requestAt = now
                send(conn, depth, now)
            elif not sending and idle:
                outstanding -= 1
    if cpuStart is None:
        cpuStart = time.process_time()
    if cpuEnd is None:
        cpuEnd = time.process_time()
    for conn in conns.values():
        conn.sock.close()
    if len(latencies) > MAX_SAMPLES:
        latencies = random.sample(latencies, MAX_SAMPLES)
    return {
        "messages": windowMessages,
        "requests": windowRequests if requests else windowMessages,
        "seconds": end - start,
        "cpu": cpuEnd - cpuStart,
        "bytesChecked": bytesChecked,
        "messagesChecked": bytesChecked // size,
        "latencies": [round(x * 1e6, 1) for x in latencies],
    }


def main() -> None:
    try:
        result = run(json.loads(sys.argv[1]))
    except EchoMismatchError as error:
        raise SystemExit(f"load generator: {error}") from None
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
