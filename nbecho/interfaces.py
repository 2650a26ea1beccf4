"""
What the factory and the server service ask of one open connection.

Shutdown and the limits work on every connection the factory admitted or
refused, whatever protocol serves it; this interface is all they rely on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zope.interface import Interface

if TYPE_CHECKING:
    from nbecho.stats import EchoStats


class IEchoConnection(Interface):
    """
    One open client connection, as the server as a whole sees it.
    """

    def finish(why: str) -> None:  # noqa: N805 - zope.interface: no self
        """
        Send back whatever was read and not yet echoed, then close: the end
        of a client's input and a server shutting down both lose nothing
        the server accepted.

        @param why: the reason, for the connection's close line.
        """

    def close(why: str) -> None:  # noqa: N805 - zope.interface: no self
        """
        Close once everything already queued for the client is sent.

        @param why: the reason, for the connection's close line.
        """

    def cut(why: str) -> None:  # noqa: N805 - zope.interface: no self
        """
        Close at once, dropping output not yet sent: the grace period of a
        shutdown is over, or the client never finished closing.

        @param why: the reason, added to the connection's close line.
        """

    def addTo(stats: EchoStats) -> None:  # noqa: N805 - zope.interface: no self
        """
        Add what this connection counted (messages, bytes) to C{stats}: the
        server's totals are the sum of its connections'.
        """
