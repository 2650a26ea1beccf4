"""
Make room for C{--max-connections} open sockets at start-up.

Every connection costs one file descriptor, and a soft C{RLIMIT_NOFILE} of
1024 (a common default) would make the server fail to accept long before
the limit an operator configured.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.logger import Logger

log = Logger(namespace="nbecho")

#: Descriptors the server needs besides connections: listening sockets, log
#: file, the reactor's own pipes, standard streams.
SPARE = 64

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]


@attrs.frozen
class FileLimit:
    """
    The soft limit before and after L{raiseFileLimit}, and the hard limit.
    """

    before: int
    after: int
    hard: int

    @property
    def unlimited(self) -> bool:
        """
        Whether the soft limit, once raised, is infinite.
        """
        return _infinite(self.after)


def _infinite(value: int) -> bool:
    return resource is not None and value == resource.RLIM_INFINITY


def raiseFileLimit(
    maxConnections: int,
    getrlimit: Callable[[int], tuple[int, int]] | None = None,
    setrlimit: Callable[[int, tuple[int, int]], None] | None = None,
) -> FileLimit | None:
    """
    Raise the soft C{RLIMIT_NOFILE} toward the hard limit so that
    C{maxConnections} (0: no limit, so as high as allowed) fit, log what
    changed, and warn when they still do not fit.

    @return: the limits, or C{None} where there is no C{resource} module.
    """
    if resource is None:
        return None
    getrlimit = getrlimit or resource.getrlimit
    setrlimit = setrlimit or resource.setrlimit
    kind = resource.RLIMIT_NOFILE
    soft, hard = getrlimit(kind)
    wanted = hard if not maxConnections else maxConnections + SPARE
    if not _infinite(hard):
        wanted = min(wanted, hard)
    after = soft
    if not _infinite(soft) and (_infinite(wanted) or soft < wanted):
        try:
            setrlimit(kind, (wanted, hard))
        except (ValueError, OSError) as error:
            log.warn(
                "Cannot raise the open file limit from {soft} to {wanted}: {error}",
                soft=soft,
                wanted=wanted,
                error=error,
                nbecho_event="file_limit_error",
            )
        else:
            after = wanted
            log.info(
                "Raised the open file limit from {soft} to {after}",
                soft=soft,
                after=_show(after),
                nbecho_event="file_limit_raised",
            )
    if maxConnections and not _infinite(after) and after < maxConnections + SPARE:
        log.warn(
            "The open file limit {limit} (hard limit {hard}) is below "
            "--max-connections {maxConnections}: connections beyond {usable} "
            "will be refused",
            limit=after,
            hard=_show(hard),
            maxConnections=maxConnections,
            usable=max(after - SPARE, 0),
            nbecho_event="file_limit_low",
        )
    return FileLimit(before=soft, after=after, hard=hard)


def _show(value: int) -> str:
    return "unlimited" if _infinite(value) else str(value)
