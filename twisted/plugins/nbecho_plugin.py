"""
The twistd plugin: C{twistd -n nbecho --port 9999}.
"""

from twisted.application.service import ServiceMaker

nbecho = ServiceMaker(
    "nbecho",
    "nbecho.tap",
    "An event-driven TCP echo server (the seed's port-9999 server, done right).",
    "nbecho",
)
