"""
The C{--fault-*} and C{--greeting} options of C{twistd nbecho}: their help
and their values, checked, as a L{nbecho.server.faults.FaultPlan}.

They apply to every listener of the server (and every connection, unless
C{--fault-probability} picks a share); C{--workers} refuses them, since each
process would draw its own faults.
"""

from __future__ import annotations

import re
import string
from typing import Any

from twisted.python import usage

from nbecho._values import number, shown
from nbecho.server.faults import (
    CLOSE_HOWS,
    DISTRIBUTIONS,
    GREETING_FIELDS,
    KINDS,
    FaultPlan,
)

#: Plain decimal numbers (no nan, inf or exponents).
_DECIMAL = re.compile(r"(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})\Z")

#: The longest delay, stall or close time a fault takes, in seconds.
MAX_FAULT_SECONDS = 3600.0

FAULT_PARAMETERS = [
    ["fault-latency", None, "0", "Fault: hold each echo back this many seconds."],
    [
        "fault-jitter",
        None,
        "0",
        "Fault: add to --fault-latency up to this many seconds either way "
        "(uniform), or a normal spread with this deviation.",
    ],
    ["fault-jitter-distribution", None, "uniform", "uniform or normal."],
    [
        "fault-bandwidth",
        None,
        "0",
        "Fault: echo at most this many bytes a second per connection.",
    ],
    ["fault-slice", None, "0", "Fault: echo in pieces of this many bytes."],
    ["fault-slice-delay", None, "0", "Seconds between two --fault-slice pieces."],
    [
        "fault-stall",
        None,
        "0",
        "Fault: stop reading and echoing for this many seconds, then carry on.",
    ],
    [
        "fault-stall-after",
        None,
        "1",
        "Bytes a connection receives before its --fault-stall.",
    ],
    [
        "fault-close-after-bytes",
        None,
        "0",
        "Fault: close once this many bytes are echoed (1: after the first echo).",
    ],
    [
        "fault-close-after-seconds",
        None,
        "0",
        "Fault: close this many seconds after the connect.",
    ],
    ["fault-close-how", None, "clean", "clean (FIN) or reset (RST)."],
    [
        "fault-probability",
        None,
        "",
        "Share of connections each fault hits, as KIND=P,... "
        f"(kinds: {', '.join(KINDS)}; default 1).",
    ],
    ["fault-seed", None, None, "Seed the fault draws, so that a run repeats."],
    [
        "greeting",
        None,
        None,
        "Send this line on connect, with {host}, {pid} and {listener} "
        "filled in; off by default.",
    ],
]


def _seconds(options: dict[str, Any], name: str) -> float:
    text = options[name]
    value = float(text) if _DECIMAL.match(text) else -1.0
    if not 0 <= value <= MAX_FAULT_SECONDS:
        raise usage.UsageError(
            f"--{name} takes seconds from 0 to {MAX_FAULT_SECONDS:g}, not {shown(text)}"
        )
    return value


def _choice(options: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value: str = options[name]
    if value not in choices:
        raise usage.UsageError(
            f"--{name} takes one of {', '.join(choices)}, not {shown(value)}"
        )
    return value


def _probabilities(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, value = item.partition("=")
        chance = float(value) if _DECIMAL.match(value) else -1.0
        if kind not in KINDS or not 0 <= chance <= 1:
            raise usage.UsageError(
                f"--fault-probability takes KIND=P with KIND one of "
                f"{', '.join(KINDS)} and P from 0 to 1, not {shown(item)}"
            )
        found[kind] = chance
    return found


def _greeting(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name]
    except ValueError as error:
        raise usage.UsageError(
            f"--greeting: {error} (write {{{{ for a brace)"
        ) from None
    for name in fields:
        if name not in GREETING_FIELDS:
            raise usage.UsageError(
                f"--greeting knows {{host}}, {{pid}} and {{listener}}, "
                f"not {shown(name)}"
            )
    if "\n" in text or "\r" in text:
        raise usage.UsageError("--greeting is one line: no CR or LF")
    return text


def faultPlan(options: dict[str, Any], workers: int) -> FaultPlan | None:
    """
    The faults C{options} ask for, checked, or L{None} for none.

    @raise twisted.python.usage.UsageError: for a value that cannot work.
    """
    seed = options["fault-seed"]
    plan = FaultPlan(
        latency=_seconds(options, "fault-latency"),
        jitter=_seconds(options, "fault-jitter"),
        distribution=_choice(options, "fault-jitter-distribution", DISTRIBUTIONS),
        bandwidth=number("fault-bandwidth", options["fault-bandwidth"], 0, 10**12),
        sliceSize=number("fault-slice", options["fault-slice"], 0, 2**30),
        sliceDelay=_seconds(options, "fault-slice-delay"),
        stall=_seconds(options, "fault-stall"),
        stallAfter=number("fault-stall-after", options["fault-stall-after"], 1, 2**62),
        closeAfterBytes=number(
            "fault-close-after-bytes", options["fault-close-after-bytes"], 0, 2**62
        ),
        closeAfterSeconds=_seconds(options, "fault-close-after-seconds"),
        closeHow=_choice(options, "fault-close-how", CLOSE_HOWS),
        probability=_probabilities(options["fault-probability"]),
        seed=None if seed is None else number("fault-seed", seed, 0, 2**63),
        greeting=_greeting(options["greeting"]),
    )
    if not plan.active:
        return None
    if workers > 1:
        raise usage.UsageError(
            "--fault-* and --greeting need one process: leave out --workers"
        )
    return plan
