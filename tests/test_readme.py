"""
README.rst against the code and CI: the options it documents and the install
command that C{.ci/run} must repeat word for word.
"""

from __future__ import annotations

import re
from pathlib import Path

from nbecho.tap import Options

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


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
    Every C{twistd nbecho} option appears in README.rst.
    """
    longOptions: list[str] = Options().longOpt
    names = {name.rstrip("=") for name in longOptions} - {"help", "version"}
    missing = sorted(name for name in names if f"--{name}" not in README)
    assert missing == []
