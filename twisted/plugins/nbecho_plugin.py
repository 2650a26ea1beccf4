"""
The twistd plugin: C{twistd -n nbecho --port 9999}.
"""

from twisted.application.service import ServiceMaker

nbecho = ServiceMaker(
    "nbecho",
    "nbecho.tap",
    "An event-driven TCP echo server: every message a client sends comes back "
    "to it, over IPv4, IPv6, UNIX sockets or TLS.",
    "nbecho",
)
