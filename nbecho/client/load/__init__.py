"""
C{nbecho-client load}: the measuring client.

It opens connections to any echo server, sends messages on a schedule
(L{nbecho.client.load.scheduler}), checks every echoed byte against what it
sent (L{nbecho.client.load.connection}, L{nbecho.client.load.messages}) and
reports throughput and latency percentiles from an HdrHistogram
(L{nbecho.client.load.figures}).  L{nbecho.client.load.run} ties them
together and L{nbecho.client.load.options} reads the command line.
"""
