"""
The per-message log lines of one chunk as one C{twisted.logger} event.

A pipelining client sends dozens of lines in one chunk; one event each would
cost more than echoing them (an event is a dictionary built, published and
formatted).  One event per chunk carries every message: C{texts} (escaped as
L{escapeMessage} does) and C{sizes}, and its text is one C{Read Data PEER
TEXT} line per message, as single-message events show it, so the log reads
the same.  Text made of printable ASCII only, the usual case, is escaped for
the whole chunk at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from time import time

from twisted.logger import LogEvent, Logger, LogLevel

from nbecho.logs.escape import LOG_LIMIT, Message, escapeMessage

#: Bytes that escaping leaves as they are (printable ASCII but the
#: backslash), and LF, which separates messages.
_PLAIN = bytes(b for b in range(0x20, 0x7F) if b != 0x5C) + b"\n"


def escapeBodies(bodies: Sequence[Message]) -> list[str]:
    """
    C{[escapeMessage(body) for body in bodies]}, computed at C speed for
    the whole list when it is all printable ASCII and no body needs cutting.

    A body to be cut goes one at a time: only its first
    L{nbecho.logs.escape.LOG_LIMIT} bytes are looked at, rather than
    copying all of a long line four times.
    """
    if not bodies:
        return []
    if max(map(len, bodies)) > LOG_LIMIT:
        return [escapeMessage(body) for body in bodies]
    block = b"\n".join(bodies) + b"\n"
    if not block.translate(None, _PLAIN):
        texts = block.decode("ascii").split("\n")
        texts.pop()
        return texts
    return [escapeMessage(body) for body in bodies]


def info(log: Logger, format: str, **fields: object) -> None:
    """
    C{log.info(format, **fields)}: the same event, to the same observers,
    without C{Logger.emit}'s check that the level is valid (it sorts every
    level each call, a sixth of the cost of a message's event).
    """
    fields.update(
        log_logger=log,
        log_level=LogLevel.info,
        log_namespace=log.namespace,
        log_source=log.source,
        log_format=format,
        log_time=time(),
    )
    log.observer(fields)


def logMessages(log: Logger, peer: str, bodies: Sequence[Message]) -> None:
    """
    Log C{bodies}, read together from C{peer}, as one event.
    """
    texts = escapeBodies(bodies)
    prefix = f"Read Data {peer} "
    info(
        log,
        "{lines}",
        lines=prefix + ("\n" + prefix).join(texts),
        peer=peer,
        texts=texts,
        sizes=list(map(len, bodies)),
        count=len(bodies),
        nbecho_event="messages",
    )


#: The keys of a chunk's event that its per-message events replace.
_BATCH_KEYS = ("lines", "texts", "sizes", "count")


def messageEvents(events: Iterable[LogEvent]) -> Iterator[LogEvent]:
    """
    C{events}, with each chunk's event given as the single-message events
    (C{nbecho_event="message"}, C{peer}, C{text}, C{size}) it stands for:
    for observers, such as the JSON log, whose readers expect one record
    per message.
    """
    for event in events:
        if event.get("nbecho_event") != "messages":
            yield event
            continue
        base = {k: v for k, v in event.items() if k not in _BATCH_KEYS}
        base["log_format"] = "Read Data {peer} {text}"
        base["nbecho_event"] = "message"
        for text, size in zip(event["texts"], event["sizes"]):
            yield {**base, "text": text, "size": size}
