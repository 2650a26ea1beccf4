"""
The C{twistd nbecho} command line as an operator meets it: help, option
errors, a port already taken, several endpoints, shutdown, the editable
install developers use, and README.rst's account of all that (its options,
its quick start, which C{.ci/run} must repeat word for word).
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

from nbecho.client import Options as ClientOptions
from nbecho.tap import Options
from tests._servers import (
    LOOPBACK_ANY_PORT,
    TIMEOUT,
    RunningServer,
    readyAddresses,
    runClient,
    twistdCommand,
)
from tests.conftest import ServerFactory

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

#: Every option the README and issue promise; kept by hand so that dropping
#: one from L{nbecho.tap.Options} fails a test.
DOCUMENTED = (
    "--port",
    "--interface",
    "--listen",
    "--framing",
    "--exit-word",
    "--quiet",
    "--max-line-length",
)


def _twistd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        twistdCommand(*args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _longOptions() -> set[str]:
    """
    The long options L{nbecho.tap.Options} accepts, as C{--name}.
    """
    longOptions: list[str] = Options().longOpt
    names = {name.rstrip("=") for name in longOptions}
    return {f"--{name}" for name in names} - {"--help", "--version"}


def test_helpDocumentsEveryOption(tmp_path: Path) -> None:
    """
    C{twistd nbecho --help} describes every option the plugin accepts.
    """
    result = _twistd("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    helpText = result.stdout
    options = _longOptions()
    assert set(DOCUMENTED) <= options
    for option in sorted(options):
        assert re.search(rf"^ .*{re.escape(option)}[= ] *\S", helpText, re.M), option


def test_badOptionsOneLine(tmp_path: Path) -> None:
    """
    Each bad option gives one line on stderr, a non-zero exit and no
    traceback, and no server starts.
    """
    cases = [
        ("--port", "abc"),
        ("--port", "70000"),
        ("--port", "-1"),
        ("--framing", "bogus"),
        ("--listen", "bogus:x"),
        ("--listen", "tcp:notaport"),
        ("--max-line-length", "0"),
        ("--no-such-option",),
    ]
    for args in cases:
        result = _twistd(*args, cwd=tmp_path)
        lines = result.stderr.splitlines()
        assert result.returncode != 0, args
        assert len(lines) == 1, (args, lines)
        assert lines[0].startswith("twistd nbecho: "), (args, lines)
        assert "Traceback" not in result.stdout + result.stderr, args
        assert "Ready?" not in result.stdout, args


def test_portInUse(tmp_path: Path) -> None:
    """
    A port already in use ends twistd with exit status 1 and one line naming
    the address, no traceback.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _twistd("--port", str(port), "--interface", "127.0.0.1", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "cannot listen" in line]
    assert len(errors) == 1, output
    assert f"127.0.0.1:{port}" in errors[0]
    assert "Address already in use" in errors[0]
    assert "Ready?" not in output


def test_severalEndpoints(nbechoServer: ServerFactory, tmp_path: Path) -> None:
    """
    Repeated C{--listen} serves every endpoint (TCP and a UNIX socket) with
    one C{Ready?} line each.
    """
    server = nbechoServer(
        "--listen", "tcp:0:interface=127.0.0.1", "--listen", "unix:echo.sock"
    )
    assert server.addresses[1].startswith("unix:")
    assert server.addresses[1].endswith("echo.sock")
    overTCP = runClient(server.port, b"over tcp\n")
    overUNIX = runClient(
        None, b"over unix\n", "--connect", f"unix:{tmp_path / 'echo.sock'}"
    )
    assert (overTCP.returncode, overTCP.stdout) == (0, b"over tcp\n")
    assert (overUNIX.returncode, overUNIX.stdout) == (0, b"over unix\n")
    server.waitForLog(r"close ", count=2)


def test_sigtermStopsCleanly(server: RunningServer) -> None:
    """
    SIGTERM shuts the server down in order, without a traceback.
    """
    assert runClient(server.port, b"x\n").returncode == 0
    # twistd re-raises SIGTERM after an orderly shutdown unless the service
    # ends the process itself with status 0 (issue 3's graceful shutdown).
    assert server.stop() in (0, -signal.SIGTERM)
    log = server.log()
    assert "Traceback" not in log
    assert "Received SIGTERM, shutting down." in log
    assert "Main loop terminated." in log


#: Run a console script's entry point with the optional extras' modules
#: (pyOpenSSL from C{tls}, prometheus_client from C{metrics}) unimportable,
#: as after a plain C{pip install .}.
WITHOUT_EXTRAS = (
    "import sys; sys.modules['OpenSSL'] = sys.modules['prometheus_client'] = None; "
)


def test_worksWithoutOptionalExtras(tmp_path: Path) -> None:
    """
    Without the optional extras (the quick start's plain C{pip install .})
    the server and the client still work over TCP.
    """
    serverCode = WITHOUT_EXTRAS + (
        "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    )
    clientCode = WITHOUT_EXTRAS + "from nbecho.client import main; main()"
    logPath = tmp_path / "server.log"
    with logPath.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-c", serverCode, "-n", "--pidfile=", "nbecho"),
                *LOOPBACK_ANY_PORT,
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process, logPath, [])
    try:
        server.waitForLog(r"Ready\? nbecho listening on ")
        server.addresses = readyAddresses(server.log())
        result = subprocess.run(
            [sys.executable, "-c", clientCode, "--port", str(server.port)],
            input=b"plain\nexit\n",
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        server.stop()
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        b"plain\nexit\n",
        b"",
    )
    assert "Traceback" not in server.log()


def test_editableInstall(tmp_path: Path) -> None:
    """
    C{pip install -e . --config-settings editable_mode=strict} makes
    C{twistd nbecho} work, and edits to the source show without reinstalling.
    """
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", ".*_cache", "_trial_temp*"
        ),
    )
    # A bare virtual environment that borrows this one's packages (Twisted,
    # pip, setuptools) through a plain path entry: this environment's own
    # nbecho install is an import hook in a .pth file, which a plain entry
    # does not run, so only the install below can make nbecho visible.
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        timeout=TIMEOUT,
    )
    python = str(venv / "bin" / "python")
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    ).stdout.strip()
    Path(purelib, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    twistd = [
        python,
        "-c",
        "import sys; from twisted.scripts.twistd import run; "
        "sys.argv[0] = 'twistd'; run()",
        "nbecho",
        "--help",
    ]

    def helpText() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            twistd,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    before = helpText()
    # (Some Twisted releases exit 0 after "Unknown command".)
    assert "Unknown command: nbecho" in before.stdout + before.stderr
    assert "--framing" not in before.stdout
    subprocess.run(
        [
            *(python, "-m", "pip", "install", "-q", "--no-deps"),
            *("--no-build-isolation", "-e", str(project)),
            *("--config-settings", "editable_mode=strict"),
        ],
        cwd=tmp_path,
        capture_output=True,
        check=True,
        timeout=120,
    )
    installed = helpText()
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "--framing" in installed.stdout
    tap = project / "nbecho" / "tap.py"
    tap.write_text(tap.read_text().replace("An event-driven", "An edited"))
    edited = helpText()
    assert "An edited TCP echo server" in edited.stdout


def _quickStart() -> list[str]:
    """
    The commands of README.rst's "Quick start" section, one per literal
    block line.
    """
    section = README.split("\nQuick start\n", 1)[1].split("\n----", 1)[0]
    section = section.rsplit("\n", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ")]


def test_quickStartHasTwoCommands() -> None:
    """
    The quick start is exactly two commands: install and start the server,
    install and run every test.
    """
    serve, test = _quickStart()
    assert serve.endswith("twistd -n nbecho --port 9999")
    assert "apt-get install" in test and ".ci/apt-packages" in test
    assert test.endswith("trial nbecho && .venv/bin/pytest")


def test_ciInstallsAsTheReadmeSays() -> None:
    """
    C{.ci/run} installs nbecho with the README's own pip command and runs the
    README's test commands.
    """
    test = _quickStart()[1]
    match = re.search(r"\.venv/bin/pip install ([^&]+?) &&", test)
    assert match is not None, test
    assert f'"$venv/bin/pip" install {match.group(1)}\n' in CI_RUN
    assert "xargs -a .ci/apt-packages apt-get install" in CI_RUN
    for command in ("trial nbecho", "pytest"):
        assert re.search(rf"^{command}\b", CI_RUN, re.M), command


def test_readmeDocumentsEveryOption() -> None:
    """
    Every option of C{twistd nbecho} and of C{nbecho-client} appears in
    README.rst.
    """
    clientOptions: list[str] = ClientOptions().longOpt
    client = {f"--{name.rstrip('=')}" for name in clientOptions}
    options = _longOptions() | (client - {"--help", "--version"})
    missing = sorted(
        name for name in options if not re.search(rf"``{name}[`= ]", README)
    )
    assert missing == []
