"""
The C{twistd nbecho} command line as an operator meets it: help, option
errors, a port already taken, shutdown, the editable install developers
use, and README.rst's account of all that (its options, its quick start,
which C{.ci/run} must repeat word for word).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

from nbecho.tap import Options
from tests._clients import runClient
from tests._servers import (
    LOOPBACK_ANY_PORT,
    TIMEOUT,
    RunningServer,
    copyProject,
    launch,
    runTwistd,
)

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
    result = runTwistd(tmp_path, "--help")
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
        result = runTwistd(tmp_path, *args)
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
        result = runTwistd(tmp_path, "--port", str(port), "--interface", "127.0.0.1")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "already in use" in line]
    assert errors == [f"nbecho: port {port} is already in use on 127.0.0.1"], output
    assert "Ready?" not in output


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
    clientCode = WITHOUT_EXTRAS + "from nbecho.client.cli import main; main()"
    server = launch(
        tmp_path,
        [
            *(sys.executable, "-c", serverCode, "-n", "--pidfile=", "nbecho"),
            *LOOPBACK_ANY_PORT,
        ],
    )
    try:
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
    project = copyProject(tmp_path / "project")
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
    assert "An edited echo server" in edited.stdout


def _readmeTestCommand(
    readme: Path = ROOT / "README.rst",
) -> subprocess.CompletedProcess[str]:
    """
    Run C{.ci/readme-test-command}, the extractor C{.ci/run} uses, on
    C{readme}.
    """
    return subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme-test-command"), str(readme)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_quickStartCommands() -> None:
    """
    The quick start starts the server on port 9999, and its test command
    installs the Debian packages as root or through sudo, installs nbecho
    with the test extra and runs trial and pytest.
    """
    assert "twistd -n nbecho --port 9999" in README
    result = _readmeTestCommand()
    assert result.returncode == 0, result.stderr
    command = result.stdout.strip()
    assert command.startswith("sh .ci/install-debian-packages && "), command
    assert ".venv/bin/pip install -e '.[test,dev]'" in command
    assert command.endswith("trial nbecho && .venv/bin/pytest"), command
    assert "\n" not in command


def test_readmeTestCommandMarker(tmp_path: Path) -> None:
    """
    The extractor takes the literal block right after C{.. test-command}
    and refuses a README without one, so that CI cannot silently run
    nothing.
    """
    readme = tmp_path / "README.rst"
    readme.write_text(
        "Tests:\n\n.. test-command\n\n::\n\n    echo one && echo two\n\nEnd.\n"
    )
    assert _readmeTestCommand(readme).stdout == "echo one && echo two\n"
    readme.write_text("Tests::\n\n    echo one\n")
    result = _readmeTestCommand(readme)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("readme-test-command: "), result.stderr
    assert "expected one '.. test-command' line" in result.stderr
    assert result.stderr.count("\n") == 1


def test_ciRunsTheReadmeTestCommand() -> None:
    """
    C{.ci/run} runs the command it extracts from README.rst, with bash, and
    the Debian packages come from C{.ci/apt-packages} through the script
    the README names.
    """
    assert '"$(python3 .ci/readme-test-command README.rst)"' in CI_RUN
    assert re.search(r'^\s*bash -c "\$command" </dev/null$', CI_RUN, re.M)
    assert re.search(r"^stage readme readme$", CI_RUN, re.M)
    installer = (ROOT / ".ci" / "install-debian-packages").read_text()
    assert "apt-packages" in installer and "sudo" in installer


def test_installDebianPackagesWhenAllInstalled(tmp_path: Path) -> None:
    """
    With every package of C{.ci/apt-packages} installed, the README's first
    step does nothing and succeeds, for any user: it calls neither
    C{apt-get} nor C{sudo}, which here fail loudly.
    """
    for name in ("apt-get", "sudo"):
        fake = tmp_path / name
        fake.write_text(f"#!/bin/sh\necho {name} was called >&2\nexit 99\n")
        fake.chmod(0o755)
    command = ["sh", str(ROOT / ".ci" / "install-debian-packages")]
    if os.getuid() == 0:
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        command = nobody + command
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "install-debian-packages: all installed already\n"
