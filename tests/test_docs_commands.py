"""
Every command README.rst and docs/*.rst show works when copied: each code
block is found and classified by L{RULES} (run it, or the reason it is not
run here), and each runnable one, and each client command quoted inline
(C{``nc 127.0.0.1 9999``}), runs against a real server on a free loopback
port, the documented port numbers, socket paths and certificate files
replaced by the test's own.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import attrs
import pytest

from tests._clients import readLine
from tests._servers import (
    BIN,
    TIMEOUT,
    RunningServer,
    ServerFactory,
    freePort,
    launch,
)
from tests.test_tls import makePKI

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]

#: Port numbers the documentation uses, each replaced by a free port.
DOCUMENTED_PORTS = ("9999", "9100", "9443", "10001", "10002")

#: What a client is given on standard input when a block does not say.
HELLO = b"hello\nexit\n"


@attrs.frozen
class Block:
    """
    One literal block of a page: C{where} is C{PATH:LINE}.
    """

    where: str
    text: str

    @property
    def first(self) -> str:
        return self.text.splitlines()[0]


def literalBlocks(path: Path) -> list[Block]:
    """
    The literal blocks (after C{::}, or C{.. code-block::}) of one page.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        opens = line.endswith("::") and not line.lstrip().startswith(".. ")
        if opens or re.match(r"\s*\.\. (code-block|code|sourcecode)::", line):
            indent = len(line) - len(line.lstrip())
            end = index + 1
            while end < len(lines) and (
                not lines[end].strip()
                or len(lines[end]) - len(lines[end].lstrip()) > indent
            ):
                end += 1
            text = textwrap.dedent("\n".join(lines[index + 1 : end])).strip("\n")
            if text.strip():
                where = f"{path.relative_to(ROOT)}:{index + 2}"
                blocks.append(Block(where, text))
            index = end
        else:
            index += 1
    return blocks


#: How each block is treated, first match on its first line wins.  C{run}:
#: a client session C{$ COMMAND} with its output; C{server}: a
#: C{twistd -n nbecho} command, run until it is ready, then the client
#: commands on the lines after it against it; C{client}: client commands
#: run against the server block before it; C{log}: the log of the
#: C{run} block before it; anything else is the reason the block is not run
#: here.  A block no rule matches fails L{test_everyBlockIsClassified}.
RULES: list[tuple[str, str]] = [
    (r"^\$ printf .* \| nbecho-client", "run"),
    (r"^\[nbecho#info\] nbecho \S+ starting up$", "log"),
    (
        r"^twistd -n nbecho .*\\$",
        "a session through HAProxy: tests/test_faults_haproxy.py",
    ),
    (r"^twistd -n( --logfile \S+)? nbecho --", "server"),
    (r"^twistd -n nbecho( \[options\])?$", "synopsis, not a command"),
    (r"^nbecho-client \[options\]", "synopsis, not a command"),
    (r"^(python3 -m venv|pip install|pypy3 -m venv|sh \.ci/)", "installs packages"),
    (r"\.venv/bin/pip install", "installs packages"),
    (r"^python -m nbecho\.bench", "a benchmark of minutes: tests/test_bench.py"),
    (
        r"^git clone https://github\.com/MagicStack/vmbench$",
        "a third-party benchmark from the network: tests/test_large_messages.py",
    ),
    (r"^\$ nbecho-client$", "a terminal session: tests/test_client_terminal.py"),
    (
        r"^\$ (twistd -n nbecho|socat|ncat|nbecho-client load) ",
        "a load run: tests/test_client_load.py",
    ),
    (
        r"^\$ twistd nbecho --port",
        "a port in use: tests/test_listen_in_use.py, test_daemon_startup.py",
    ),
    (r"^\$ nbecho-client 127\.1 ", "a message: MESSAGES, test_messages"),
    (r"^\$ curl -s http://127\.0\.0\.1:9100/metrics$", "tests/test_metrics.py"),
    (r"^systemd-socket-activate ", "systemd's socket: tests/test_systemd.py"),
    (r"^(ExecStart=|/opt/nbecho/)", "a systemd unit: tests/test_systemd_unit.py"),
    (r"^defaults$", "haproxy's configuration: tests/test_haproxy.py"),
    (r"^nbecho-client --connect tls:", "client"),
    (r"^printf .* \| openssl s_client", "client"),
    (r"^(twistd nbecho|nbecho-client): ", "a message: MESSAGES, test_messages"),
    (r"^(\d{4}-\d\d-\d\dT\S+ )?\[nbecho#\w+\]", "log lines, not a command"),
    (r"^(Read Data|\{\")", "log lines, not a command"),
    (r"^(seed \(C\)|reactor\.run\(\)|nbecho/)$", "a diagram, not a command"),
    (r"^seed \(C\)", "a diagram, not a command"),
    (
        r"^import socket, sys, time$",
        "a client shown with its output: tests/test_faults.py",
    ),
    (r"^\d+\.\d\ds b'", "a client's output, not a command"),
    (r"^\$ echo hello \| nc -q 1 ", "a fault's close: tests/test_faults.py"),
    (r"^(messages|errors)  ", "a load report, not a command"),
    (
        r"^nbecho: cannot write the log ",
        "a message on standard error: tests/test_logfile_failures.py",
    ),
]


def verdict(block: Block) -> str | None:
    """
    The rule of L{RULES} that applies to C{block}, or C{None}.
    """
    for pattern, what in RULES:
        if re.search(pattern, block.first):
            return what
    return None


def allBlocks() -> list[Block]:
    return [block for page in PAGES for block in literalBlocks(page)]


def blocksOf(kind: str) -> list[Block]:
    return [block for block in allBlocks() if verdict(block) == kind]


def test_everyBlockIsClassified() -> None:
    """
    Every literal block of README.rst and docs/*.rst is run by these tests
    or skipped for a reason L{RULES} states.
    """
    unclassified = [b.where + ": " + b.first for b in allBlocks() if not verdict(b)]
    assert unclassified == []


@attrs.define
class Sandbox:
    """
    The documented names (ports, socket paths, certificate files) and the
    test's own, for one test in C{directory}.
    """

    directory: Path
    ports: dict[str, str] = attrs.field(factory=dict)

    def substitute(self, command: str) -> str:
        for documented in DOCUMENTED_PORTS:
            self.ports.setdefault(documented, str(freePort()))
        command = re.sub(
            r"\b(" + "|".join(DOCUMENTED_PORTS) + r")\b",
            lambda match: self.ports[match.group(1)],
            command,
        )
        return command.replace("/run/nbecho/", f"{self.directory}/")

    def run(self, command: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        """
        Run a client command with bash in the sandbox, nbecho's own commands
        first on C{PATH}.
        """
        return subprocess.run(
            ["bash", "-c", self.substitute(command)],
            input=stdin,
            capture_output=True,
            cwd=self.directory,
            timeout=TIMEOUT,
            check=False,
            env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(self.directory)},
        )


def _prompted(block: Block) -> tuple[str, list[str]]:
    """
    The command of a C{$ COMMAND} block and the output lines it shows.
    """
    command, *output = block.text.splitlines()
    return command.removeprefix("$ "), output


@pytest.mark.parametrize("block", blocksOf("run"), ids=lambda block: block.where)
def test_sessionBlocks(
    nbechoServer: ServerFactory, tmp_path: Path, block: Block
) -> None:
    """
    A shown session, its port replaced by a real server's, prints what the
    page shows, and the server logs what the log block after it shows (its
    times, client ports and durations aside).
    """
    sandbox = Sandbox(tmp_path)
    port = sandbox.substitute("9999")
    server = nbechoServer("--port", port)
    command, output = _prompted(block)
    result = sandbox.run(command, b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == output
    blocks = allBlocks()
    following = blocks[blocks.index(block) + 1]
    if verdict(following) == "log":
        server.waitForLog(r"\] close ")
        assert _normalisedLog(server.log(), port) == _normalisedLog(following.text)


def _normalisedLog(log: str, port: str = "9999") -> list[str]:
    """
    nbecho's lines of a log, without times, client ports or durations, the
    server's port shown as 9999; lines a page leaves out are left out.
    """
    lines = []
    for line in log.splitlines():
        line = re.sub(r"^\S+T\S+ ", "", line).strip()
        if not line.startswith(("[nbecho#", "Read Data")):
            continue
        line = re.sub(r"(127\.0\.0\.1|\]):\d+\b(?!\))", r"\1:PORT", line)
        line = re.sub(r"\b\d+\.\d+s$", "Ts", line).replace(port, "9999")
        line = line.replace("(tcp6:0,", "(tcp6:9999,")
        lines.append(line)
    return [line for line in lines if "SIGTERM" not in line and "stopped" not in line]


#: Lines under a server command that are not clients of it, and why they are
#: not run here.
BESIDE_SERVERS = {
    "haproxy -db -f contrib/haproxy.cfg": "tests/test_haproxy.py runs it",
}


@pytest.mark.parametrize("block", blocksOf("server"), ids=lambda block: block.where)
def test_serverBlocks(tmp_path: Path, block: Block) -> None:
    """
    Each documented server command of a block, its ports and paths
    replaced, starts and logs one C{Ready?} line per listener; each client
    command shown under them gets its echo.
    """
    sandbox = Sandbox(tmp_path)
    if "certKey=cert.pem" in block.text:
        makePKI(tmp_path)
    blocks = allBlocks()
    lines = block.text.splitlines()
    for after in blocks[blocks.index(block) + 1 :]:
        if verdict(after) != "client":
            break
        lines += after.text.splitlines()
    servers = []
    try:
        for line in lines:
            if line.startswith("twistd -n "):
                servers.append(_startServer(sandbox, line))
            elif re.match(r"nc -u |socat - UDP", line):
                _interactiveUDP(sandbox, line)
            elif re.match(r"(nbecho-client|nc|socat|printf) ", line):
                result = sandbox.run(line, HELLO)
                assert (result.returncode, result.stdout) == (0, HELLO), line
            else:
                assert line in BESIDE_SERVERS, line
    finally:
        for server in servers:
            server.stop()


def _startServer(sandbox: Sandbox, line: str) -> RunningServer:
    """
    Start a documented C{twistd -n ...} line in the sandbox and wait for its
    C{Ready?} lines.
    """
    argv = shlex.split(sandbox.substitute(line))
    logFile = argv[3] if argv[2] == "--logfile" else None
    return launch(
        sandbox.directory,
        [str(BIN / "twistd"), "-n", "--pidfile=", *argv[2:]],
        logPath=sandbox.directory / logFile if logFile else None,
        listeners=sum(arg in ("--listen", "--metrics") for arg in argv),
    )


#: Inline commands not run here, and why.
INLINE_SKIPPED = {
    "telnet 127.0.0.1 9999": "telnet is not among the test's packages",
}


def inlineCommands() -> list[tuple[str, str]]:
    """
    (where, command) for each client command quoted inline in the pages:
    C{nc}, C{socat}, C{telnet} or C{nbecho-client} given an address, or
    C{nbecho-client} at the end of a pipeline.
    """
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"``([^`]+)``", text):
            command = " ".join(match.group(1).split())
            address = re.match(
                r"(nc|socat|telnet|nbecho-client) .*127\.0\.0\.1", command
            )
            pipeline = re.match(r"(seq|printf) .*\| nbecho-client", command)
            literal = "..." not in command and command not in INLINE_SKIPPED
            if (address or pipeline) and literal:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{page.relative_to(ROOT)}:{line}", command))
    return found


#: What a pipeline must print; one not listed must print its own input, as
#: an echo does.
OUTPUTS = {
    "printf 'a\\nb' | nc -N 127.0.0.1 9999": b"a\nb",
    "seq 1 100000 | nbecho-client": "".join(
        f"{n}\n" for n in range(1, 100001)
    ).encode(),
    "seq 1 100000 | nbecho-client | head -1": b"1\n",
}


@pytest.mark.parametrize(
    "where, command", inlineCommands(), ids=[w for w, _ in inlineCommands()]
)
def test_inlineClientCommands(
    nbechoServer: ServerFactory, tmp_path: Path, where: str, command: str
) -> None:
    """
    A client command quoted in the text talks to a real server (TCP and UDP
    on one free port): a pipeline prints what it claims, an interactive
    client gets its echo.
    """
    sandbox = Sandbox(tmp_path)
    port = sandbox.substitute("9999")
    nbechoServer(
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        "--listen",
        f"udp:{port}:interface=127.0.0.1",
    )
    if re.match(r"\S+ -u|socat - UDP", command):
        _interactiveUDP(sandbox, command)
        return
    pipeline = re.match(r"(seq|printf) ", command)
    if pipeline:
        expected = (
            OUTPUTS.get(command) or sandbox.run(command.split(" | ")[0], b"").stdout
        )
    else:
        expected = HELLO
    command = re.sub(
        r"nbecho-client( \||$)", rf"nbecho-client --port {port}\1", command
    )
    result = sandbox.run(command, b"" if pipeline else HELLO)
    assert (result.returncode, result.stdout) == (0, expected), result.stderr


def _interactiveUDP(sandbox: Sandbox, command: str) -> None:
    """
    A UDP client that waits for datagrams after its input ends: its first
    line is the echo of the first line sent, then it is stopped.
    """
    process = subprocess.Popen(
        ["bash", "-c", "exec " + sandbox.substitute(command)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=sandbox.directory,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b"hello\n")
        process.stdin.flush()
        assert readLine(process.stdout) == b"hello\n"
    finally:
        process.kill()
        process.wait(TIMEOUT)


#: (command, page, the text the page quotes): each command's one line of
#: standard error is exactly what the page says.  Add a pair when a page
#: quotes a new message.
MESSAGES: list[tuple[str, str, str]] = [
    (
        "twistd nbecho --idle-timeout 1e-9",
        "docs/usage.rst",
        "twistd nbecho: --idle-timeout takes 0 or a number of seconds from 0.1"
        " to 86400, not '1e-9' (see: twistd nbecho --help)",
    ),
    (
        "twistd nbecho --listen tcp:notaport",
        "docs/usage.rst",
        "twistd nbecho: --listen 'tcp:notaport': the port must be a number from"
        " 0 to 65535, not 'notaport' (see: twistd nbecho --help)",
    ),
    (
        "twistd nbecho --listen unix:/run/missing/echo.sock",
        "docs/usage.rst",
        "twistd nbecho: --listen 'unix:/run/missing/echo.sock': the directory of"
        " /run/missing/echo.sock does not exist (see: twistd nbecho --help)",
    ),
    (
        "twistd -n --pidfile= nbecho --listen systemd:domain=INET:index=0",
        "docs/deployment.rst",
        "twistd nbecho: --listen 'systemd:domain=INET:index=0': no socket 0"
        " inherited from systemd (LISTEN_FDS, LISTEN_FDNAMES)"
        " (see: twistd nbecho --help)",
    ),
    (
        "nbecho-client 127.1 9999",
        "docs/usage.rst",
        "nbecho-client: '127.1' is not a host name but a short form of the"
        " address 127.0.0.1: write 127.0.0.1 if you mean it"
        " (see: nbecho-client --help)",
    ),
]


@pytest.mark.parametrize(
    "command, page, quoted", MESSAGES, ids=[m[0] for m in MESSAGES]
)
def test_messages(tmp_path: Path, command: str, page: str, quoted: str) -> None:
    """
    A message a page quotes is the one a real run prints, word for word.
    """
    text = " ".join((ROOT / page).read_text(encoding="utf-8").split())
    assert quoted in text
    result = Sandbox(tmp_path).run(command, b"")
    assert result.returncode != 0
    assert result.stderr.decode().strip() == quoted


def test_sessionAndServerBlocksExist() -> None:
    """
    The pages still have blocks of each kind these tests run, so that a
    change to the pages or to L{RULES} cannot leave them running nothing.
    """
    assert blocksOf("run") and blocksOf("log") and len(blocksOf("server")) >= 5
    assert len(inlineCommands()) >= 5
