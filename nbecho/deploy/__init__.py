"""
Deployment adapters around the echo server: the PROXY protocol behind a
load balancer, Prometheus metrics, and worker processes sharing sockets.

Each adapter wraps what the layers below build (an endpoint, the totals, the
server service); none of them is needed to echo.
"""
