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
    @ivar udpDatagrams: UDP datagrams echoed (counted in C{messages} too).
    @ivar udpDropped: UDP datagrams left unanswered, by reason.
    @ivar faults: connections a C{--fault-*} option hit, by kind of fault.
    @ivar greetings: C{--greeting} lines sent (not counted as echoes).
    """

    connectionsOpen: int = 0
    connectionsTotal: int = 0
    messages: int = 0
    bytesIn: int = 0
    bytesOut: int = 0
    refused: dict[str, int] = attrs.Factory(dict)
    udpDatagrams: int = 0
    udpDropped: dict[str, int] = attrs.Factory(dict)
    faults: dict[str, int] = attrs.Factory(dict)
    greetings: int = 0

    def __add__(self, other: EchoStats) -> EchoStats:
        return EchoStats(
            connectionsOpen=self.connectionsOpen + other.connectionsOpen,
            connectionsTotal=self.connectionsTotal + other.connectionsTotal,
            messages=self.messages + other.messages,
            bytesIn=self.bytesIn + other.bytesIn,
            bytesOut=self.bytesOut + other.bytesOut,
            refused=_sum(self.refused, other.refused),
            udpDatagrams=self.udpDatagrams + other.udpDatagrams,
            udpDropped=_sum(self.udpDropped, other.udpDropped),
            faults=_sum(self.faults, other.faults),
            greetings=self.greetings + other.greetings,
        )

    def toJSON(self) -> dict[str, Any]:
        """
        A JSON-ready form, for a worker process to send to twistd's.
        """
        return attrs.asdict(self)

    @classmethod
    def fromJSON(cls, data: dict[str, Any]) -> EchoStats:
        """
        The record L{toJSON} described, checked: a worker's answer is read
        by twistd's process, and a garbled one must not reach a scrape's
        sums.

        @raise ValueError: if C{data} is not such a record.
        """
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            value = data.get(field.name, {} if field.type == "dict[str, int]" else 0)
            counts = value.values() if isinstance(value, dict) else [value]
            if not all(type(n) is int and n >= 0 for n in counts):
                raise ValueError(f"{field.name}: not a count")
            if isinstance(value, dict) != (field.type == "dict[str, int]"):
                raise ValueError(f"{field.name}: wrong kind")
            values[field.name] = value
        return cls(**values)


def _sum(one: dict[str, int], other: dict[str, int]) -> dict[str, int]:
    total = dict(one)
    for name, count in other.items():
        total[name] = total.get(name, 0) + count
    return total
