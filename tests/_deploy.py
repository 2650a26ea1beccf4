"""
What C{tests/test_workers.py} (owned by the performance work, which this
clean-up must not edit) still imports from the deployment helpers, now
folded into L{tests._servers}.  Once it imports C{freePort} and
C{tool(..., required=True)} from there, delete this module.
"""

from __future__ import annotations

from tests._servers import freePort
from tests._servers import tool as _tool

__all__ = ["freePort", "tool"]


def tool(name: str) -> str:
    """
    The full path of a Debian tool the deployment tests talk to; a missing
    one fails the test (CI installs them from C{.ci/apt-packages}), never
    skips it.
    """
    return _tool(name, required=True)
