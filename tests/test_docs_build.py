"""
The documentation as built: its option tables list exactly the options
C{--help} prints, worded as C{--help} words them, and the site carries the
README's quick start.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._servers import TIMEOUT, script, twistdCommand

ROOT = Path(__file__).resolve().parent.parent

#: An option at the start of a C{--help} line: C{-p, --port=} or C{--quiet}.
_HELP_OPTION = re.compile(r"^\s+(?:-\w, )?--([\w-]+)=?\s", re.M)


@pytest.fixture(scope="module")
def builtDocs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    The HTML documentation, built once for this module as C{.ci/docs}
    builds it (warnings are errors).
    """
    out = tmp_path_factory.mktemp("html")
    sphinx = [sys.executable, "-m", "sphinx", "-E", "-W", "-n", "-q", "-b", "html"]
    result = subprocess.run(
        [*sphinx, "docs", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def _cells(row: str) -> list[str]:
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", "", cell)).split())
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    ]


def optionTables(page: Path) -> list[dict[str, tuple[str, str]]]:
    """
    The generated option tables of a built page, in order: for each, every
    long option name mapped to its (meaning, default) cells.
    """
    tables = []
    text = page.read_text(encoding="utf-8")
    for table in re.findall(r'<table class="[^"]*\boptions\b.*?</table>', text, re.S):
        rows: dict[str, tuple[str, str]] = {}
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
            cells = _cells(row)
            if cells:
                name = re.search(r"--([\w-]+)", cells[0])
                assert name is not None, cells
                rows[name.group(1)] = (cells[1], cells[2])
        tables.append(rows)
    return tables


def helpOf(command: list[str]) -> str:
    """
    The C{--help} text of a real run of C{command}, on a wide terminal so
    that no option's line is wrapped before its name.
    """
    result = subprocess.run(
        [*command, "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "index, command",
    [
        (0, [script("nbecho-client")]),
        (1, twistdCommand()),
    ],
    ids=["nbecho-client", "twistd nbecho"],
)
def test_optionTablesMatchHelp(builtDocs: Path, index: int, command: list[str]) -> None:
    """
    The built usage page's option table of each program names every option
    its C{--help} names and no other, and says of each what C{--help} says.
    """
    table = optionTables(builtDocs / "usage.html")[index]
    helpText = helpOf(command)
    assert sorted(table) == sorted(_HELP_OPTION.findall(helpText))
    flatHelp = " ".join(helpText.split())
    for name, (meaning, default) in table.items():
        assert meaning in flatHelp, name
        if default:
            assert f"[default: {default}]" in flatHelp, name


def test_siteHasTheQuickStart(builtDocs: Path) -> None:
    """
    The site's front page carries README.rst's quick start and its two
    commands, not a pointer to a file the site does not contain.
    """
    front = html.unescape(
        re.sub(r"<[^>]+>", "", (builtDocs / "index.html").read_text("utf-8"))
    )
    assert "Quick start" in front
    assert "twistd -n nbecho --port 9999" in front
    assert "printf 'hello, nbecho\\nexit\\n' | nbecho-client" in front
    assert "README.rst" not in front


def test_readmeIsAFrontPage() -> None:
    """
    README.rst reads in two minutes: at most 120 lines and 600 words, with
    its quick start, its CI-run test command and links into the docs.
    """
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 120
    assert len(readme.split()) <= 600
    assert "\nQuick start\n-----------\n" in readme
    assert "\n.. test-command\n" in readme and "\n.. docs-command\n" in readme
    assert "<docs/usage.rst>`_" in readme


def test_apiSignaturesShowRealDefaults(builtDocs: Path) -> None:
    """
    The API page shows an attrs class's defaults as values, never as the
    expressions attrs generates (C{attr_dict['framing'].default},
    C{NOTHING}), and documents every module of C{nbecho.deploy}.
    """
    api = html.unescape(
        re.sub(r"<[^>]+>", "", (builtDocs / "api.html").read_text("utf-8"))
    )
    assert "attr_dict[" not in api and "NOTHING" not in api
    assert "EchoSettings(framing='line', exitWord=b'exit', quiet=False," in api
    for module in ("endpoints", "proxy", "metrics", "workers"):
        assert f"nbecho.deploy.{module}" in api
