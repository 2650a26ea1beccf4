"""
Types that Twisted's annotations leave too loose for mypy to check nbecho.
"""

from __future__ import annotations

from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport


class IStreamTransport(ITCPTransport, IConsumer, IPushProducer):
    """
    What nbecho's protocols use of their transport: a stream that can be
    half-closed, consumes from a producer and can itself be paused.

    TCP, TLS, UNIX and stdio transports all provide these; L{Protocol}
    declares only an optional L{ITransport}.
    """
