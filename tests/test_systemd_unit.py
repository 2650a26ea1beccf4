"""
C{contrib/nbecho.service} as deployed: its sandbox rated by
C{systemd-analyze security}, the unit checked by C{systemd-analyze verify},
and its commands run the way systemd runs them, from a virtual environment
owned by root, the server as an unprivileged user with the unit's file
limit, under C{systemd-socket-activate}.

No systemd runs as process 1 here, so the sandbox itself (namespaces,
seccomp) is left to systemd; what the unit asks of nbecho is tested: a
read-only installation, another user, the socket handed over, the limit.
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from nbecho.server._rlimit import SPARE
from nbecho.tap import Options
from tests._clients import lines, runClient
from tests._servers import RunningServer, asNobody, freePort, launch, tool, waitFor

ROOT = Path(__file__).parent.parent
CONTRIB = ROOT / "contrib"
#: Where the unit expects nbecho's virtual environment.
INSTALLED = "/opt/nbecho/"
CACHE_WARNING = "Unable to write to plugin cache"


def _service() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(CONTRIB / "nbecho.service")
    return unit["Service"]


def _command(line: str, venv: Path) -> list[str]:
    """
    An C{Exec*=} line of the unit as an argument list, its privilege prefix
    removed and the installation moved to C{venv}.
    """
    return shlex.split(line.lstrip("+").replace(INSTALLED, f"{venv}/"))


def _distributions() -> Iterator[metadata.Distribution]:
    """
    The installed distributions C{pip install 'nbecho[metrics]'} needs, nbecho
    excluded.
    """
    seen: set[str] = set()
    wanted = [Requirement("nbecho[metrics]")]
    while wanted:
        requirement = wanted.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        distribution = metadata.distribution(requirement.name)
        if name != "nbecho":
            yield distribution
        for text in distribution.requires or []:
            needed = Requirement(text)
            extras = requirement.extras or {""}
            marker = needed.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras):
                wanted.append(needed)


def _copyDistribution(distribution: metadata.Distribution, target: Path) -> None:
    for file in distribution.files or []:
        if ".." in file.parts:  # console scripts: twistd is written below
            continue
        destination = target / file
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(str(distribution.locate_file(file))), destination)


@pytest.fixture
def rootVenv() -> Iterator[Path]:
    """
    A virtual environment owned by root, laid out as C{pip install
    'nbecho[metrics]'} leaves it (nbecho's files and those of its
    dependencies copied from the environment running the tests, a C{twistd}
    script), readable by every user, with no plugin cache yet and its
    C{twisted/plugins/} directory read-only.
    """
    if os.geteuid() != 0:
        pytest.skip("installing as root and serving as nobody needs root")
    base = Path(tempfile.mkdtemp(prefix="nbecho-unit-"))
    try:
        base.chmod(0o755)
        venv = base / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
        )
        purelib = subprocess.run(
            [
                venv / "bin" / "python",
                "-c",
                "import site; print(site.getsitepackages()[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        sitePackages = Path(purelib.stdout.strip())
        assert sitePackages.is_relative_to(venv), sitePackages
        for distribution in _distributions():
            _copyDistribution(distribution, sitePackages)
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "nbecho", sitePackages / "nbecho", ignore=ignore)
        plugins = sitePackages / "twisted" / "plugins"
        shutil.copy2(ROOT / "twisted" / "plugins" / "nbecho_plugin.py", plugins)
        assert not (plugins / "dropin.cache").exists()
        twistd = venv / "bin" / "twistd"
        twistd.write_text(
            f"#!{venv}/bin/python\n"
            "import sys\n"
            "from twisted.scripts.twistd import run\n"
            "sys.exit(run())\n"
        )
        twistd.chmod(0o755)
        plugins.chmod(0o555)
        reachable = subprocess.run(
            [*asNobody(), str(venv / "bin" / "python"), "-c", "import nbecho.tap"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert reachable.returncode == 0, (
            f"user nobody cannot run nbecho from {venv} (is the Python it is "
            f"based on, {sys.base_prefix}, readable by all?)\n{reachable.stderr}"
        )
        yield venv
    finally:
        shutil.rmtree(base)


def _environment() -> dict[str, str]:
    """
    The few variables systemd gives a service: nothing from the test's
    environment (no C{PYTHONPATH}, no virtual environment).
    """
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def _serveAsNobody(venv: Path) -> RunningServer:
    """
    Run the unit's C{ExecStart=} as user nobody with the unit's
    C{LimitNOFILE=}, under C{systemd-socket-activate} on a free loopback
    port, and serve one client; the caller stops the server.
    """
    service = _service()
    limit = int(service["LimitNOFILE"])
    port = freePort()
    command = [
        tool("systemd-socket-activate", required=True),
        "--fdname=nbecho",
        "--listen",
        f"127.0.0.1:{port}",
        *asNobody(),
        *_command(service["ExecStart"], venv),
    ]
    server = launch(
        venv.parent,
        command,
        listeners=0,
        env=_environment(),
        fileLimit=(limit, limit),
    )
    try:
        waitFor(lambda: "Listening on" in server.output(), "systemd-socket-activate")
        result = runClient(port, lines(100))
        assert (result.stdout, result.returncode) == (lines(100), 0), result.stderr
        server.waitForLog(r"Ready\? nbecho listening on ")
    except BaseException:
        server.stop()
        raise
    return server


def test_security_rating() -> None:
    """systemd-analyze rates the unit's sandbox 2.0 or better, "OK"."""
    result = subprocess.run(
        [
            tool("systemd-analyze", required=True),
            "security",
            "--offline=true",
            "--threshold=20",  # tenths: the exit status fails above 2.0
            str(CONTRIB / "nbecho.service"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(
        r"Overall exposure level for nbecho\.service: (\d+\.\d) (\w+)", result.stdout
    )
    assert found, result.stdout
    assert float(found.group(1)) <= 2.0
    assert found.group(2) == "OK"


def test_verify(rootVenv: Path, tmp_path: Path) -> None:
    """systemd-analyze verify finds nothing to say about both units."""
    for name in ("nbecho.service", "nbecho.socket"):
        text = (CONTRIB / name).read_text().replace(INSTALLED, f"{rootVenv}/")
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [
            tool("systemd-analyze", required=True),
            "verify",
            str(tmp_path / "nbecho.service"),
            str(tmp_path / "nbecho.socket"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_file_limit_covers_max_connections() -> None:
    """LimitNOFILE leaves room for the default --max-connections and spares."""
    service = _service()
    assert "--max-connections" not in service["ExecStart"]
    maxConnections = int(Options()["max-connections"])
    assert int(service["LimitNOFILE"]) >= maxConnections + SPARE


def test_unprivileged_read_only_install(rootVenv: Path) -> None:
    """After the unit's cache step, nobody serves from a read-only install."""
    service = _service()
    # What the unit prevents: without the step, every start complains.
    before = _serveAsNobody(rootVenv)
    before.stop()
    assert CACHE_WARNING in before.log()
    subprocess.run(
        _command(service["ExecStartPre"], rootVenv),
        cwd="/",
        env=_environment(),
        check=True,
        timeout=120,
    )
    plugins = next(rootVenv.glob("lib/python*/site-packages/twisted/plugins"))
    assert (plugins / "dropin.cache").exists()
    server = _serveAsNobody(rootVenv)
    try:
        status = (Path("/proc") / str(server.pid) / "status").read_text()
        uid = pwd.getpwnam("nobody").pw_uid
        assert re.search(rf"^Uid:\s+{uid}\s", status, re.MULTILINE), status
    finally:
        server.stop()
    log = server.log()
    assert CACHE_WARNING not in log, log
    assert "Traceback" not in log, log
    assert "open file limit" not in log, log
    assert log.count("Accept 127.0.0.1:") == 1
