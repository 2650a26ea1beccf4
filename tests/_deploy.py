"""
Helpers for the deployment tests: real C{twistd -n nbecho} processes, the
real C{nbecho-client}, throwaway certificates, free ports.

Kept apart from the shared fixtures in C{conftest.py} so that the deployment
tests can wrap a server in another program (C{systemd-socket-activate}) and
read a log in either text or JSON format.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
CLIENT = str(BIN / "nbecho-client")

#: Long enough for a slow, shared CI machine; every wait here is bounded.
STARTUP = 30.0

_READY = re.compile(r"Ready\? nbecho (listening on|metrics at) (\S+) \((.*)\)$")


def tool(name: str) -> str:
    """
    The full path of a Debian tool the tests talk to; a missing one fails
    the test (CI installs them from C{.ci/apt-packages}), never skips it.
    """
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert found is not None, f"{name} is not installed (see .ci/apt-packages)"
    return found


def freePort(host: str = "127.0.0.1") -> int:
    """
    A TCP port that nothing listens on right now, for the programs that
    cannot listen on port 0 and tell us which port they got.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def portOf(address: str) -> int:
    """
    The port of a logged C{host:port} or C{[host]:port}.
    """
    return int(address.rsplit(":", 1)[1])


def waitUntil(
    condition: Callable[[], bool], what: str, timeout: float = STARTUP
) -> None:
    """
    Poll C{condition} until it holds; fail naming C{what} after C{timeout}.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def jsonEvents(text: str) -> list[dict[str, object]]:
    """
    Every line of a JSON log, each parsed on its own: a line that is not one
    JSON object fails the test.
    """
    events = []
    for line in text.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict), line
        events.append(event)
    return events


def readyLines(text: str) -> dict[str, str]:
    """
    The listening addresses a server logged, by endpoint description, from a
    text or a JSON log; the metrics URL under C{--metrics DESCRIPTION}.
    """
    ready: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if event.get("nbecho_event") == "ready":
                ready[event["description"]] = event["address"]
            elif event.get("nbecho_event") == "metrics_ready":
                ready["--metrics " + event["description"]] = event["url"]
            continue
        match = _READY.search(line)
        if match:
            kind, address, description = match.groups()
            if kind == "metrics at":
                description = "--metrics " + description
            ready[description] = address
    return ready


@attrs.define
class Server:
    """
    A running C{twistd -n nbecho} (possibly under a wrapper program).
    """

    process: subprocess.Popen[bytes]
    logPath: Path
    outputPath: Path

    def log(self) -> str:
        return (
            self.logPath.read_text("utf-8", "replace") if self.logPath.exists() else ""
        )

    def output(self) -> str:
        return self.outputPath.read_text("utf-8", "replace")

    def ready(self) -> dict[str, str]:
        return readyLines(self.log())

    def address(self, prefix: str) -> str:
        """
        The address of the listener whose description starts with C{prefix}.
        """
        for description, address in self.ready().items():
            if description.startswith(prefix):
                return address
        raise AssertionError(f"no listener {prefix!r} in {self.ready()}")

    def port(self, prefix: str = "") -> int:
        return portOf(self.address(prefix))

    def waitReady(self, count: int) -> None:
        def started() -> bool:
            assert self.process.poll() is None, (
                f"server exited {self.process.returncode}: {self.output()}{self.log()}"
            )
            return len(self.ready()) >= count

        waitUntil(started, f"{count} Ready? lines in {self.logPath}")

    def stop(self) -> str:
        """
        Stop the server as an operator would (SIGTERM) and return its log.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STARTUP)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log()


def startServer(
    directory: Path,
    *options: str,
    wrapper: Sequence[str] = (),
    ready: int | None = None,
    logName: str = "nbecho.log",
) -> Server:
    """
    Start C{twistd -n nbecho OPTIONS} in C{directory}, logging to a file
    there, and wait for its C{Ready?} lines (one per C{--listen} and
    C{--metrics} unless C{ready} says otherwise).
    """
    logPath = directory / logName
    if ready is None:
        ready = sum(option in ("--listen", "--metrics") for option in options) or 1
    return startTwistd(
        directory,
        [*wrapper, TWISTD, "-n", "--pidfile=", f"--logfile={logPath}", "nbecho"],
        options,
        logPath,
        ready,
    )


def startTwistd(
    directory: Path,
    twistd: Sequence[str],
    options: Sequence[str],
    logPath: Path,
    ready: int,
    outputPath: Path | None = None,
) -> Server:
    """
    Run C{twistd} (a command line ending in C{nbecho}) with the plugin's
    C{options}, and wait for C{ready} Ready? lines in C{logPath}; its
    standard output and error go to C{outputPath}.
    """
    outputPath = outputPath or logPath.with_name(logPath.name + ".out")
    with outputPath.open("wb") as output:
        process = subprocess.Popen(
            [*twistd, *options],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, logPath, outputPath)
    if ready:
        try:
            server.waitReady(ready)
        except BaseException:
            server.stop()
            raise
    return server


def runClient(
    *arguments: str, input: bytes = b"", timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """
    Run the real C{nbecho-client} with C{input} piped to it.
    """
    return subprocess.run(
        [CLIENT, *arguments],
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@attrs.frozen
class PKI:
    """
    A throwaway certificate authority and a server certificate it signed
    for C{localhost}, plus an unrelated authority that signed nothing here.
    """

    ca: Path
    otherCA: Path
    certificate: Path
    key: Path


def _openssl(directory: Path, *arguments: str) -> None:
    subprocess.run(
        [tool("openssl"), *arguments],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )


def makePKI(directory: Path) -> PKI:
    """
    Make a CA and a C{localhost} server certificate with the real C{openssl}
    command, as an operator would for a test deployment.
    """
    directory.mkdir(parents=True, exist_ok=True)
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for name in ("ca", "other-ca"):
        _openssl(
            directory,
            "req", "-x509", *curve, "-days", "1",
            "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-subj", f"/CN=nbecho test {name}",
        )  # fmt: skip
    _openssl(
        directory,
        "req", *curve, "-keyout", "key.pem", "-out", "server.csr",
        "-subj", "/CN=localhost",
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
    )
    _openssl(
        directory,
        "x509", "-req", "-in", "server.csr", "-days", "1",
        "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-extfile", "server.ext", "-out", "cert.pem",
    )  # fmt: skip
    return PKI(
        ca=directory / "ca.pem",
        otherCA=directory / "other-ca.pem",
        certificate=directory / "cert.pem",
        key=directory / "key.pem",
    )


def lines(count: int) -> bytes:
    """
    C{seq 1 COUNT} as bytes.
    """
    return b"".join(b"%d\n" % (number,) for number in range(1, count + 1))


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}
