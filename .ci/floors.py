"""
Print a pip constraints file that pins every lower bound of setup.cfg's
install_requires and of the extras the tests install (C{test} and the
extras it names, such as C{nbecho[tls,metrics]}) to exactly that version.

Installing with it shows whether the floors nbecho declares are versions it
works at.  Usage: python3 .ci/floors.py [setup.cfg] > constraints.txt
"""

from __future__ import annotations

import configparser
import re
import sys

# name, extras, floor, marker: "Twisted[tls] >= 22.10; python_version < '4'"
REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?"
    r"\s*(?P<specs>[^;]*?)\s*(?:;\s*(?P<marker>.+))?$"
)
FLOOR = re.compile(r">=\s*([^\s,]+)")


def _lines(value: str) -> list[str]:
    return [
        line.split("#", 1)[0].strip()
        for line in value.splitlines()
        if line.split("#", 1)[0].strip()
    ]


def floors(path: str, extras: list[str]) -> dict[str, tuple[str, str | None]]:
    """
    The floor of every requirement reached from install_requires and
    C{extras}, by normalised project name; a project required twice keeps
    the higher floor.
    """
    config = configparser.ConfigParser()
    config.read(path, encoding="utf-8")
    own = config["metadata"]["name"].lower()
    extraRequires = config["options.extras_require"]
    pending = _lines(config["options"]["install_requires"])
    seen: set[str] = set()
    for extra in extras:
        pending += _lines(extraRequires[extra])
        seen.add(extra)
    result: dict[str, tuple[str, str | None]] = {}
    while pending:
        requirement = pending.pop()
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"floors: cannot read requirement {requirement!r}")
        name = re.sub(r"[-_.]+", "-", match["name"]).lower()
        if name == own:
            for extra in (match["extras"] or "").split(","):
                extra = extra.strip()
                if extra and extra not in seen:
                    seen.add(extra)
                    pending += _lines(extraRequires[extra])
            continue
        floor = FLOOR.search(match["specs"])
        if floor is None:
            raise SystemExit(f"floors: no lower bound in {requirement!r}")
        version = floor.group(1)
        if name in result and _key(result[name][0]) >= _key(version):
            continue
        result[name] = (version, match["marker"])
    return result


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "setup.cfg"
    for name, (version, marker) in sorted(floors(path, ["test"]).items()):
        print(f"{name}=={version}" + (f"; {marker}" if marker else ""))


if __name__ == "__main__":
    main()
