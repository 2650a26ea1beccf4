"""
The optional extras (C{pip install 'nbecho[tls]'}, C{'nbecho[metrics]'}):
one line saying which to install when a feature needs one that is missing.

A plain C{pip install .} gives a server and client that work over TCP, UDP
and UNIX sockets; TLS and metrics need packages of their own.  Without this
check the user meets Twisted's or Python's own error (C{name
'optionsForClientTLS' is not defined}, C{No module named 'OpenSSL'}), which
does not say what to do.
"""

from __future__ import annotations

import importlib

#: The modules each extra installs that nbecho's features import, and the
#: packages (as pip names them) that hold them.
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "tls": (("OpenSSL", "pyOpenSSL"), ("service_identity", "service_identity")),
    "metrics": (("prometheus_client", "prometheus_client"),),
}


def missingExtra(feature: str, extra: str) -> str | None:
    """
    One line for C{feature} if a module of the optional C{extra} cannot be
    imported (C{--metrics needs prometheus_client: pip install
    'nbecho[metrics]'}), else L{None}.
    """
    for module, package in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            return f"{feature} needs {package}: pip install 'nbecho[{extra}]'"
    return None
