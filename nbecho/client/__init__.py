"""
nbecho-client: the command line (L{nbecho.client.cli}), standard input and
output whichever session runs (L{nbecho.client.terminal}), the stream
session with its C{LineReceiver}s on the network and on standard input
(L{nbecho.client.stream}) and the datagram session over UDP
(L{nbecho.client.datagram}).

The client is a program of its own: it imports only the shared modules at
the top of C{nbecho}, never the server.
"""
