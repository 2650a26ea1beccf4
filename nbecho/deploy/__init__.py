"""
Deployment adapters around the echo server: endpoint strings with their
defaults (L{nbecho.deploy.endpoints}), the PROXY protocol behind a load
balancer (L{nbecho.deploy.proxy}, L{nbecho.deploy.proxyheader}), Prometheus
metrics (L{nbecho.deploy.metrics}) and worker processes sharing sockets
(L{nbecho.deploy.workers}, L{nbecho.deploy.worker}).

Each adapter wraps what L{nbecho.server} builds (an endpoint, the totals,
the server service); none of them is needed to echo.
"""
