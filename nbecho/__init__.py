"""
nbecho: the seed's non-blocking C echo server, done right on Twisted.

The server protocol lives in L{nbecho.protocol}, its factory and settings in
L{nbecho.factory}, the twistd options in L{nbecho.tap} and the interactive
client in L{nbecho.client}.
"""

__version__ = "1.0.0"
