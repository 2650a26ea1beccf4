"""
Tests for L{nbecho._values} through the C{twistd nbecho} options: a value
that can never work is refused before the server starts, as one usage line
naming its option.  (One end-to-end test in C{tests/test_options.py} shows
the same line on a real twistd's standard error, with exit status 1.)
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from nbecho.tap import Options

#: Far above any ceiling a count or a length can have.
HUGE = "1" + "0" * 30

#: The command lines to refuse: the option the error must name, its value.
REFUSED = [
    ("--idle-timeout", "1e-9"),
    ("--idle-timeout", "0.05"),
    ("--idle-timeout", "\u0661"),  # ARABIC-INDIC DIGIT ONE
    ("--idle-timeout", "1_0"),
    ("--shutdown-grace", "\u0665"),
    ("--max-line-length", HUGE),
    ("--max-line-length", str(2**30 + 1)),
    ("--max-line-length", "\u0663"),  # ARABIC-INDIC DIGIT THREE
    ("--max-line-length", "1_000"),
    ("--max-line-length", "\uff11\uff10"),  # FULLWIDTH 1 0
    ("--max-connections", "-1"),
    ("--max-connections", HUGE),
    ("--max-connections", "1_000"),
    ("--max-per-peer", HUGE),
    ("--max-per-peer", "\u0663"),
    ("--port", "\u0660"),  # ARABIC-INDIC DIGIT ZERO: port 0 if accepted
    ("--exit-word", "a\nb"),
    ("--exit-word", "a\rb"),
    ("--exit-word", "exit\n"),
    ("--exit-word", "x" * 100_000),
    ("--exit-word", "x" * 1025),
    ("--exit-word", "\u00e9" * 513),  # 1026 bytes in UTF-8
    ("--proxy-timeout", "1e-9"),
    ("--proxy-timeout", "-1"),
    ("--proxy-timeout", "\u0661"),
    ("--log-rate", "-1"),
    ("--log-rate", "1.5"),
    ("--log-rate", HUGE),
    ("--log-rate-total", "\u0663"),
    ("--log-rate-total", "1_000"),
]

#: Values at the bounds themselves, which must be accepted.
ACCEPTED = [
    ("--idle-timeout", "0.1"),
    ("--idle-timeout", "0"),
    ("--shutdown-grace", "0"),
    ("--proxy-timeout", "0.1"),
    ("--max-line-length", str(2**30)),
    ("--exit-word", "x" * 1024),
    ("--log-rate", "0"),
    ("--log-rate-total", "0"),
]


class ImpossibleValueTests(SynchronousTestCase):
    """
    Numeric options take plain ASCII decimal numbers within their bounds
    (timeouts 0 or at least 0.1 s, --max-line-length at most 1 GiB, counts up
    to a ceiling); the exit word is at most 1024 bytes without CR or LF.
    """

    def test_refused(self) -> None:
        """
        Each impossible value is one usage line that names its option and
        is not twistd's "not recognized", with no chained traceback.
        """
        wrong = []
        for option, value in REFUSED:
            try:
                Options().parseOptions([option, value])
            except SystemExit as error:
                message = error.code
                if not (
                    isinstance(message, str)
                    and "\n" not in message
                    and option in message
                    and "not recognized" not in message
                    and error.__cause__ is None
                ):
                    wrong.append(f"{option} {value[:20]!r}: {message!r}")
            else:
                wrong.append(f"{option} {value[:20]!r} was accepted")
        self.assertEqual(wrong, [])

    def test_boundsAccepted(self) -> None:
        """
        The bounds themselves are valid values.
        """
        for option, value in ACCEPTED:
            Options().parseOptions([option, value])
