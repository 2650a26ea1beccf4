"""
Tests for L{nbecho._extras}.
"""

from __future__ import annotations

import sys

from twisted.trial.unittest import SynchronousTestCase

from nbecho._extras import missingExtra


class MissingExtraTests(SynchronousTestCase):
    def test_installed(self) -> None:
        """
        With the extra's modules importable (the test extra installs them),
        nothing is missing.
        """
        self.assertIsNone(missingExtra("--metrics", "metrics"))
        self.assertIsNone(missingExtra("ssl:", "tls"))

    def test_missing(self) -> None:
        """
        A module that cannot be imported names its package and the extra.
        """
        self.patch(sys, "modules", {**sys.modules, "service_identity": None})
        self.assertEqual(
            missingExtra("--connect tls:", "tls"),
            "--connect tls: needs service_identity: pip install 'nbecho[tls]'",
        )
