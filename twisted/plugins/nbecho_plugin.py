"""
The twistd plugin: C{twistd -n nbecho --port 9999}.
"""

from twisted.application.service import ServiceMaker

nbecho = ServiceMaker(
    "nbecho",
    "nbecho.tap",
    "An event-driven echo server: every message a client sends comes back "
    "to it, over TCP (IPv4 and IPv6), UNIX sockets, TLS or UDP.",
    "nbecho",
)
