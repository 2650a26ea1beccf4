"""
Option tables generated from the code's own option definitions.

C{.. option-table:: nbecho.tap.Options} renders a table of every option of
that C{twisted.python.usage.Options} class: its short and long names, its
help text and its default, read from the same attributes (C{longOpt},
C{synonyms}, C{docs}, C{defaults}) from which Twisted prints C{--help}.  So
the documentation lists exactly the options the program takes, worded as
C{--help} words them, and cannot drift from it.
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx


def optionRows(optionsClass: type[Any]) -> list[tuple[str, str, str]]:
    """
    (names, help, default) of every option of C{optionsClass}, sorted by
    long name as C{--help} sorts them: names such as C{-p, --port=},
    the default as text, or C{""} where there is none.
    """
    options = optionsClass()
    short: dict[str, str] = {}
    for key, longName in options.synonyms.items():
        if key != longName and len(key) == 1:
            short[longName] = key
    rows = []
    for spec in sorted(options.longOpt, key=lambda spec: spec.rstrip("=")):
        parameter = spec.endswith("=")
        name = spec.rstrip("=")
        names = f"--{name}=" if parameter else f"--{name}"
        if name in short:
            names = f"-{short[name]}, {names}"
        default = options.defaults.get(name) if parameter else None
        rows.append((names, " ".join(str(options.docs[name]).split()), default or ""))
    return rows


def _entry(*children: nodes.Node) -> nodes.entry:
    entry = nodes.entry()
    entry += nodes.paragraph("", "", *children)
    return entry


class OptionTable(Directive):
    """
    C{.. option-table:: module.OptionsClass}: the table of its options.
    """

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        moduleName, _, className = self.arguments[0].rpartition(".")
        optionsClass = getattr(importlib.import_module(moduleName), className)
        table = nodes.table(classes=["options"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (30, 55, 15):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        group += head
        header = nodes.row()
        for title in ("Option", "Meaning", "Default"):
            header += _entry(nodes.Text(title))
        head += header
        body = nodes.tbody()
        group += body
        for names, text, default in optionRows(optionsClass):
            row = nodes.row()
            cells = []
            for index, name in enumerate(names.split(", ")):
                if index:
                    cells.append(nodes.Text(", "))
                cells.append(nodes.literal(name, name))
            row += _entry(*cells)
            row += _entry(nodes.Text(text))
            row += _entry(nodes.literal(default, default)) if default else _entry()
            body += row
        return [table]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("option-table", OptionTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
