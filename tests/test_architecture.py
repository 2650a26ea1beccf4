"""
The tree is the architecture: docs/howitworks.rst names every module, the
API reference documents every one, and the import rules hold.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> list[Path]:
    """
    Every source module of nbecho, the unit tests left out.
    """
    return sorted(
        path.relative_to(ROOT)
        for path in (ROOT / "nbecho").rglob("*.py")
        if "test" not in path.relative_to(ROOT).parts
    )


def _treeEntries() -> set[str]:
    """
    The paths the tree in docs/howitworks.rst names, rebuilt from its indents.
    """
    text = (ROOT / "docs" / "howitworks.rst").read_text(encoding="utf-8")
    block = text.split("enforces these rules on every\nimport::\n", 1)[1]
    entries: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith(" "):
            break
        match = re.match(r"( +)(\S+)", line)
        if not match:
            continue
        indent, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(part for _, part in stack) + name
        entries.add(path)
        if name.endswith("/"):
            stack.append((indent, name))
    return entries


def test_treeNamesEveryModule() -> None:
    """
    Each module under nbecho/ stands in the architecture's tree, and the tree
    names no module that does not exist.
    """
    entries = _treeEntries()
    modules = {str(path) for path in _modules()}
    missing = sorted(
        module
        for module in modules
        if module not in entries
        and not (module.endswith("__init__.py") and module[:-11] in entries)
    )
    assert missing == [], f"docs/howitworks.rst does not name: {missing}"
    stale = sorted(
        entry
        for entry in entries
        if entry.startswith("nbecho/")
        and entry.endswith(".py")
        and entry not in modules
    )
    assert stale == [], f"docs/howitworks.rst names no such module: {stale}"


def test_apiDocumentsEveryModule() -> None:
    """
    docs/api.rst has an automodule for each module, so the reference is whole.
    """
    text = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. automodule:: (\S+)$", text, re.M))
    expected = set()
    for path in _modules():
        parts = list(path.with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts.pop()
        expected.add(".".join(parts))
    assert sorted(expected - documented) == []
    assert sorted(documented - expected) == []


def test_importRules() -> None:
    """
    .ci/check-imports passes: imports point down, client and server apart.
    """
    result = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "check-imports")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
