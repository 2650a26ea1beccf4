"""
Tests for L{nbecho._words}.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from nbecho._words import counted


class CountedTests(SynchronousTestCase):
    def test_singularAndPlural(self) -> None:
        """
        One is singular; zero and more are plural; an irregular plural is
        taken as given.
        """
        self.assertEqual(counted(1, "message"), "1 message")
        self.assertEqual(counted(0, "message"), "0 messages")
        self.assertEqual(counted(2, "byte"), "2 bytes")
        self.assertEqual(counted(3, "reply", "replies"), "3 replies")
        self.assertEqual(counted(1, "reply", "replies"), "1 reply")

    def test_everyLogLineOfOne(self) -> None:
        """
        No count of nbecho's own log formats or messages is followed by a
        fixed plural noun: the counted ones come from L{counted}.
        """
        root = Path(__file__).parent.parent
        pattern = re.compile(
            r"(?<![CL])\{(messages|connections|count|bytesIn|bytesOut|usable|open)\} "
            r"(messages|connections|datagrams|lines|bytes|errors)\b"
        )
        found = [
            f"{path.relative_to(root)}: {match.group(0)}"
            for path in root.rglob("*.py")
            if "test" not in path.parts
            for match in pattern.finditer(path.read_text(encoding="utf-8"))
        ]
        self.assertEqual(found, [])
