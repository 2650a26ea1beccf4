"""
The echo server: connections with their idle timeout and lingering close
(L{nbecho.server.connection}), the echo in raw and in line framing
(L{nbecho.server.protocol}, L{nbecho.server.lines}), admission and the
registry of open connections (L{nbecho.server.factory}), listening before
twistd forks (L{nbecho.server.listening}), the service that starts and stops
it all (L{nbecho.server.service}) and the UDP echo (L{nbecho.server.udp}).

It imports only the shared modules at the top of C{nbecho} and
L{nbecho.logs}; nothing here knows about the client.
"""
