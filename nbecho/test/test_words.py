"""
Tests for L{nbecho._words}.
"""

from __future__ import annotations

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
