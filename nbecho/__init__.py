"""
nbecho: an event-driven TCP echo server on Twisted, and its client.

The server protocol lives in L{nbecho.server.protocol} and L{nbecho.server.lines}, its
factory in L{nbecho.server.factory}, its settings in L{nbecho.settings}, the twistd
options in L{nbecho.tap} and the interactive client in L{nbecho.client.cli}.
"""

__version__ = "2.1.0"
