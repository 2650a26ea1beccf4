"""
A Hypothesis state machine for the framing: random interleavings of chunks,
partial lines, over-long lines, the exit word and half-close, through the
factory and the connection (lingering close included), against a model small enough
to be obviously right.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from twisted.trial.unittest import SynchronousTestCase

from nbecho.test._helpers import Harness

LIMIT = 12
EXIT = b"exit"
ERROR = b"error: line too long (limit %d bytes; raise it with --max-line-length)\n" % (
    LIMIT,
)

# Few distinct bytes, so that terminators, CRLF splits and the exit word
# come up often.
pieces = st.sampled_from(
    [b"a", b"b", b"\n", b"\r", b"\r\n", b"exit", b"exit\n", b"\x00", b"\xff"]
)
chunks = st.lists(pieces, max_size=12).map(b"".join)


def _body(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


class Model:
    """
    What the server must have sent back, from what it was sent.
    """

    def __init__(self, framing: str) -> None:
        self.framing = framing
        self.out = b""
        self.partial = b""
        self.closed = False

    def chunk(self, data: bytes) -> None:
        if self.closed:
            return
        if self.framing == "raw":
            self.out += data
            stripped = data[:-1] if data.endswith(b"\n") else data
            if _body(stripped) == EXIT:
                self.closed = True
            return
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            body = _body(line)
            if len(body) > LIMIT:
                self.out += ERROR
                self.closed = True
                return
            self.out += line + b"\n"
            if body == EXIT:
                self.closed = True
                return
        if len(_body(self.partial)) > LIMIT:
            self.out += ERROR
            self.closed = True

    def halfClose(self) -> None:
        if not self.closed:
            if self.framing == "line":
                self.out += self.partial
            self.closed = True


class FramingMachine(RuleBasedStateMachine):
    harness: Harness
    model: Model

    @initialize(framing=st.sampled_from(["line", "raw"]), quiet=st.booleans())
    def connect(self, framing: str, quiet: bool) -> None:
        self.harness = Harness(
            framing=framing, quiet=quiet, maxLineLength=LIMIT, exitWord=EXIT
        )
        self.protocol, self.transport = self.harness.connect()
        self.model = Model(framing)

    @rule(data=chunks)
    def send(self, data: bytes) -> None:
        if data:
            self.model.chunk(data)
            self.protocol.dataReceived(data)

    @rule(size=st.integers(LIMIT + 1, 3 * LIMIT), end=st.sampled_from([b"", b"\n"]))
    def sendLongLine(self, size: int, end: bytes) -> None:
        data = b"L" * size + end
        self.model.chunk(data)
        self.protocol.dataReceived(data)

    @rule(
        size=st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1]),
        end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    )
    def sendLineAtLimit(self, size: int, end: bytes) -> None:
        data = b"M" * size + end
        self.model.chunk(data)
        self.protocol.dataReceived(data)

    @rule(cr=st.booleans())
    def sendExit(self, cr: bool) -> None:
        data = EXIT + (b"\r\n" if cr else b"\n")
        self.model.chunk(data)
        self.protocol.dataReceived(data)

    @precondition(lambda self: not self.protocol.readClosed)
    @rule()
    def halfClose(self) -> None:
        self.model.halfClose()
        self.protocol.readConnectionLost()

    @invariant()
    def echoedAsModelled(self) -> None:
        assert self.transport.value() == self.model.out, (
            self.transport.value(),
            self.model.out,
        )

    @invariant()
    def closedAsModelled(self) -> None:
        transport: Any = self.transport
        closing = bool(transport.disconnecting or transport.writeClosed)
        assert closing == self.model.closed


FramingMachine.TestCase.settings = settings(max_examples=300, deadline=None)


class FramingStateTests(SynchronousTestCase):
    def test_framingMatchesModel(self) -> None:
        """
        Whatever the order of chunks, long lines, exit and half-close, the
        client gets back exactly what the model says, and the connection
        closes exactly when the model does.
        """
        FramingMachine.TestCase("runTest").runTest()

    def test_quietLineJustOverLimit(self) -> None:
        """
        With --quiet, a line one byte over the limit, alone in its chunk, is
        still refused (the state machine found the quiet shortcut skipping
        the check).
        """
        for end in (b"\n", b"\r\n"):
            harness = Harness(quiet=True, maxLineLength=LIMIT)
            protocol, transport = harness.connect()
            protocol.dataReceived(b"M" * (LIMIT + 1) + end)
            self.assertEqual(transport.value(), ERROR)
