"""
The figures of a load run: counts, and latencies in an HdrHistogram, so
that percentiles are exact to three significant digits and the histograms
of several processes add up.
"""

from __future__ import annotations

from typing import Any

import attrs

#: The extra that installs the histogram library.
INSTALL = "pip install 'nbecho[load]'"

#: Latencies are recorded in microseconds, from 1 µs to an hour.
_LOWEST, _HIGHEST, _DIGITS = 1, 3600 * 1_000_000, 3

#: The percentiles a report gives.
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class MissingLibraryError(Exception):
    """
    HdrHistogram is not installed; the text says how to install it.
    """


def newHistogram() -> Any:
    """
    An empty latency histogram.

    @raise MissingLibraryError: if the C{load} extra is not installed.
    """
    try:
        from hdrh.histogram import HdrHistogram
    except ImportError:
        raise MissingLibraryError(
            f"the load mode needs HdrHistogram: {INSTALL}"
        ) from None
    return HdrHistogram(_LOWEST, _HIGHEST, _DIGITS)


@attrs.define
class Figures:
    """
    What a run (or a share of it, in one process) measured.

    @ivar sent: messages sent that count (after the warm-up).
    @ivar echoed: of those, messages echoed whole and right.
    @ivar bytes: bytes of the messages echoed.
    @ivar seconds: the length of the measured window.
    @ivar target: the open-loop rate asked for, or C{None} closed loop.
    @ivar errors: counts by kind (see L{nbecho.client.load.connection.ERRORS}).
    @ivar connections: connections established.
    """

    histogram: Any = attrs.field(factory=newHistogram)
    sent: int = 0
    echoed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    target: float | None = None
    connections: int = 0
    errors: dict[str, int] = attrs.field(factory=dict)
    #: The CPU the client process used over the run, in cores (1.0: one
    #: core busy all the time); the busiest process's with --processes.
    cpu: float = 0.0

    def record(self, latency: float, size: int) -> None:
        """
        Count one message echoed after C{latency} seconds.
        """
        self.echoed += 1
        self.bytes += size
        micros = int(latency * 1_000_000)
        self.histogram.record_value(min(max(micros, _LOWEST), _HIGHEST))

    def count(self, kind: str, how: int = 1) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + how

    @property
    def failures(self) -> int:
        """
        Every error counted: zero means every echo was right.
        """
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.echoed / self.seconds if self.seconds > 0 else 0.0

    @property
    def shortfall(self) -> bool:
        """
        Whether the rate achieved stayed under the target (by over 5 %).
        """
        return self.target is not None and self.rate < 0.95 * self.target

    def latencies(self) -> dict[str, float]:
        """
        The percentiles and the maximum, in milliseconds.
        """
        histogram = self.histogram
        if not histogram.get_total_count():
            return {}
        result = {
            f"p{p:g}": histogram.get_value_at_percentile(p) / 1000 for p in PERCENTILES
        }
        result["max"] = histogram.get_max_value() / 1000
        result["mean"] = histogram.get_mean_value() / 1000
        return result

    def toJSON(self) -> dict[str, Any]:
        """
        The figures as a JSON object; the histogram encoded as HdrHistogram's
        compressed base64, which L{fromJSON} reads back.
        """
        return {
            "sent": self.sent,
            "echoed": self.echoed,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "messages_per_second": round(self.rate, 1),
            "bytes_per_second": round(self.bytes / self.seconds, 1)
            if self.seconds > 0
            else 0.0,
            "target_rate": self.target,
            "connections": self.connections,
            "latency_ms": self.latencies(),
            "errors": dict(sorted(self.errors.items())),
            "client_cpu": round(self.cpu, 3),
            "histogram": self.histogram.encode().decode("ascii"),
        }

    @classmethod
    def fromJSON(cls, data: dict[str, Any]) -> Figures:
        """
        The figures of a L{toJSON} object: how a child process's figures
        reach the parent with C{--processes}.
        """
        figures = cls(
            sent=data["sent"],
            echoed=data["echoed"],
            bytes=data["bytes"],
            seconds=data["seconds"],
            target=data["target_rate"],
            connections=data["connections"],
            errors=dict(data["errors"]),
            cpu=data["client_cpu"],
        )
        figures.histogram.decode_and_add(data["histogram"].encode("ascii"))
        return figures

    def add(self, other: Figures) -> None:
        """
        Add another process's share; the window is the longest of them, the
        target the sum.
        """
        self.histogram.add(other.histogram)
        self.sent += other.sent
        self.echoed += other.echoed
        self.bytes += other.bytes
        self.seconds = max(self.seconds, other.seconds)
        self.connections += other.connections
        self.cpu = max(self.cpu, other.cpu)
        if other.target is not None:
            self.target = (self.target or 0.0) + other.target
        for kind, how in other.errors.items():
            self.count(kind, how)
