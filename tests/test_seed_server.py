"""
The seed's own C server, compiled from the seed document at test time, as the
server the real C{nbecho-client} talks to.

The seed server never echoes and compares the raw bytes it read with
C{"exit"}; C{nbecho-client} sends lines, so it sends C{"exit\\n"}, which the
seed does not recognise.  What ends the session is the client's half-close
after C{exit}: the seed reads end of file, prints C{close} and drops the
connection, and the client, its session over, exits 0 having printed nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._clients import runClient
from tests._servers import TIMEOUT, freePort, waitFor

SEED = Path("/work/shared/seed/000_7eb4ace0e94320fa.txt")
SEED_IN_REPO = Path(__file__).resolve().parent / "seed" / SEED.name


def _seedDocument() -> str:
    """
    The seed markdown: the copy kept next to these tests (clean clones have
    no /work/shared), else the shared original.
    """
    for path in (SEED_IN_REPO, SEED):
        if path.exists():
            return path.read_text(encoding="utf-8")
    raise AssertionError(f"seed document missing: {SEED_IN_REPO}")


def seedServerSource(port: int) -> str:
    """
    The C block after the seed's C{#### Server} heading, made to listen on
    127.0.0.1:C{port} instead of all interfaces on 9999.
    """
    document = _seedDocument()
    section = document[document.index("#### Server") :]
    match = re.search(r"```\n(.*?)```", section, re.S)
    assert match is not None, "no C block after '#### Server'"
    source = match.group(1)
    assert "#define PORT 9999" in source and "htonl(INADDR_ANY)" in source
    source = source.replace("#define PORT 9999", f"#define PORT {port}")
    return source.replace("htonl(INADDR_ANY)", 'inet_addr("127.0.0.1")')


def _startSeed(command: list[str], output: Path) -> subprocess.Popen[bytes] | None:
    """
    Run the seed server with its stdout in C{output} and wait for its
    C{Ready?}; C{None} if it could not bind (the free port was taken in the
    meantime).
    """
    with output.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    waitFor(
        lambda: process.poll() is not None or b"Ready?" in output.read_bytes(),
        "the seed server's Ready?",
        details=lambda: output.read_text(errors="replace"),
    )
    if process.poll() is None:
        return process
    assert b"Bind" in output.read_bytes(), output.read_bytes()
    return None


@pytest.fixture
def seedServer(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """
    The seed's server, compiled with gcc and running on a free loopback port;
    yields the port, the process and the file its stdout goes to.
    """
    gcc = shutil.which("gcc")
    stdbuf = shutil.which("stdbuf")
    if gcc is None or stdbuf is None:
        pytest.skip("gcc and stdbuf (coreutils) are needed (see .ci/apt-packages)")
    binary = tmp_path / "seed-server"
    for attempt in range(3):
        port = freePort()
        source = tmp_path / "server.c"
        source.write_text(seedServerSource(port))
        # The seed is 2017 C: keep newer compilers' stricter defaults from
        # refusing it (its accept() passes an int * as socklen_t *).
        subprocess.run(
            [
                *(gcc, "-w", "-Wno-error=incompatible-pointer-types"),
                *("-Wno-error=implicit-function-declaration", "-o", str(binary)),
                str(source),
            ],
            check=True,
            timeout=60,
        )
        output = tmp_path / f"seed-{attempt}.out"
        # The seed prints with printf: unbuffered, or nothing shows until
        # it exits.
        process = _startSeed([stdbuf, "-o0", str(binary)], output)
        if process is not None:
            break
    else:
        raise AssertionError("the seed server could not bind a free port")
    try:
        yield port, process, output
    finally:
        process.kill()
        process.wait()


def test_clientTalksToTheSeedServer(
    seedServer: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    """
    C{nbecho-client} talks to the seed's C server: the seed prints Ready?,
    Accept, Read Data with each message and close; it echoes nothing, so the
    client exits 3 saying that neither line was echoed.
    """
    port, process, output = seedServer
    result = runClient(port, b"hello\nexit\n")
    assert (result.returncode, result.stdout, result.stderr) == (
        3,
        b"",
        f"nbecho-client: 127.0.0.1:{port}: the server closed the connection"
        " with 2 lines not echoed\n".encode(),
    )

    def backToAccept() -> bool:
        return re.search(rb"close \d+\nReady\?\n", output.read_bytes()) is not None

    waitFor(backToAccept, "the seed's close and Ready?", TIMEOUT, output.read_text)
    lines = output.read_text().splitlines()
    assert lines[:2] == ["Ready?", "Accept"]
    # The seed prints the raw bytes of each read, newline included, so the
    # two lines may arrive in one read or two.
    received = "\n".join(lines[2 : lines.index(next(x for x in lines if "close" in x))])
    assert received in (
        "Read Data hello\nexit\n",
        "Read Data hello\n\nRead Data exit\n",
    ), lines
    # The seed's strcmp never saw a bare "exit": its session ended by the
    # end of file that printed "close", and it went back to accept().
    assert re.fullmatch(r"close \d+", next(x for x in lines if "close" in x))
    assert lines[-1] == "Ready?"
    assert process.poll() is None
