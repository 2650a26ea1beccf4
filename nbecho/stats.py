"""
The server's totals, as one plain record.

Each connection counts its own messages and bytes (once, on the hot path);
the factory adds them up when someone asks -- the shutdown line, a metrics
scrape, a SIGUSR1 -- and worker processes send theirs as the same record.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define
class EchoStats:
    """
    Totals since the server started.

    @ivar connectionsOpen: connections open now (admitted, not yet closed).
    @ivar connectionsTotal: connections admitted since the start.
    @ivar messages: messages received, and echoed.
    @ivar bytesIn: bytes read from clients.
    @ivar bytesOut: bytes sent to clients.
    @ivar refused: refused connections, by the limit that refused them.
    """

    connectionsOpen: int = 0
    connectionsTotal: int = 0
    messages: int = 0
    bytesIn: int = 0
    bytesOut: int = 0
    refused: dict[str, int] = attrs.Factory(dict)

    def __add__(self, other: EchoStats) -> EchoStats:
        refused = dict(self.refused)
        for name, count in other.refused.items():
            refused[name] = refused.get(name, 0) + count
        return EchoStats(
            connectionsOpen=self.connectionsOpen + other.connectionsOpen,
            connectionsTotal=self.connectionsTotal + other.connectionsTotal,
            messages=self.messages + other.messages,
            bytesIn=self.bytesIn + other.bytesIn,
            bytesOut=self.bytesOut + other.bytesOut,
            refused=refused,
        )

    def toJSON(self) -> dict[str, Any]:
        """
        A JSON-ready form, for a worker process to send to twistd's.
        """
        return attrs.asdict(self)

    @classmethod
    def fromJSON(cls, data: dict[str, Any]) -> EchoStats:
        """
        The record L{toJSON} described.
        """
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})
