"""
The C{nbecho-client} command: C{nbecho-client load ...} runs the measuring
client (L{nbecho.client.load}), anything else the interactive session
(L{nbecho.client.cli}).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from nbecho.client import cli
from nbecho.client.load import run


def main(argv: Sequence[str] | None = None) -> None:
    """
    The C{nbecho-client} console script.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["load"]:
        run.main(arguments[1:])
    else:
        cli.main(arguments)


if __name__ == "__main__":
    main()
