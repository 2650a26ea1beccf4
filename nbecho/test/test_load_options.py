"""
Tests for the command line of C{nbecho-client load}
(L{nbecho.client.load.options}, L{nbecho.client.load.run.main}): each
mistake ends with one line naming the fix and exit status 2.
"""

from __future__ import annotations

import io
import sys

from twisted.trial.unittest import SynchronousTestCase

from nbecho.client.load import run
from nbecho.client.load.options import EXIT_USAGE, LoadOptions


class UsageTests(SynchronousTestCase):
    def mainFails(self, *argv: str) -> str:
        errors = io.StringIO()
        self.patch(sys, "stderr", errors)
        with self.assertRaises(SystemExit) as caught:
            run.main(argv)
        self.assertEqual(caught.exception.code, EXIT_USAGE)
        text = errors.getvalue()
        self.assertEqual(text.count("\n"), 1, text)
        return text

    def test_missingHistogramLibrary(self) -> None:
        """
        Without HdrHistogram the command names the extra that installs it.
        """
        # None in sys.modules makes the import fail, loaded before or not.
        saved = sys.modules.pop("hdrh.histogram", None)
        sys.modules["hdrh.histogram"] = None  # type: ignore[assignment]

        def restore() -> None:
            del sys.modules["hdrh.histogram"]
            if saved is not None:
                sys.modules["hdrh.histogram"] = saved

        self.addCleanup(restore)
        self.assertEqual(
            self.mainFails("127.0.0.1", "9999"),
            "nbecho-client: the load mode needs HdrHistogram: "
            "pip install 'nbecho[load]'\n",
        )

    def test_badValues(self) -> None:
        """
        Bad numbers and clashing options are usage errors that say why.
        """
        for argv, says in [
            (("--connections", "0"), "--connections takes a number above 0"),
            (("--rate", "fast"), "--rate takes a number above 0, not 'fast'"),
            (("--duration", "1", "--count", "5"), "--duration or --count"),
            (("--processes", "3"), "--processes cannot be more than --connections"),
            (("--warmup", "-1"), "--warmup takes seconds from 0"),
            (("--warmup", "soon"), "--warmup takes seconds from 0, not 'soon'"),
        ]:
            self.assertIn(says, self.mainFails(*argv))

    def test_defaults(self) -> None:
        """
        With no option: one connection, closed loop, 64 bytes, 10 seconds.
        """
        options = LoadOptions()
        options.parseOptions([])
        self.assertEqual(
            (options["connections"], options["rate"], options["duration"]),
            (1, None, 10.0),
        )
        self.assertEqual(options["sizes"], ("choice", (64,)))
