"""
One listening endpoint as a service, with the seed's C{Ready?} line.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from nbecho._address import formatAddress

log = Logger(namespace="nbecho")


class ListenFailed(SystemExit):
    """
    An endpoint could not listen (port in use, permission denied, bad path).

    A L{SystemExit} so that twistd, which would print a traceback for any
    other exception raised while starting the application, prints this one
    line on standard error and exits with status 1.
    """


class ListeningService(Service):
    """
    Listen on one endpoint while running.

    Unlike L{twisted.application.internet.StreamServerEndpointService} it
    logs the address it actually listens on (port 0 resolved), and a failure
    to listen ends twistd with one line naming the address rather than a
    traceback and a server that runs with nothing to serve.
    """

    port: IListeningPort | None = None

    def __init__(
        self, description: str, endpoint: IStreamServerEndpoint, factory: Factory
    ) -> None:
        self.description = description
        self.endpoint = endpoint
        self.factory = factory
        self._listening: Deferred[IListeningPort] | None = None

    def privilegedStartService(self) -> None:
        """
        Listen now, before twistd sheds privileges, so that ports below 1024
        work with C{--uid}.
        """
        super().privilegedStartService()
        self._failure: Failure | None = None
        self._starting = True
        self._listening = self.endpoint.listen(self.factory)
        self._listening.addCallbacks(self._listened, self._failed)
        self._starting = False
        if self._failure is not None:
            raise ListenFailed(
                f"nbecho: cannot listen on {self.description}: "
                f"{self._failure.getErrorMessage()}"
            )

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        log.info(
            "Ready? nbecho listening on {address} ({description})",
            address=formatAddress(port.getHost()),
            description=self.description,
            nbecho_event="ready",
        )
        return port

    def _failed(self, failure: Failure) -> None:
        """
        Keep a failure to listen at start-up for L{privilegedStartService}
        to raise; one that comes later (no endpoint of Twisted's own fails
        late) is logged, not dropped with the Deferred.
        """
        if self._starting:
            self._failure = failure
        elif not failure.check(CancelledError):
            log.critical(
                "nbecho: cannot listen on {description}: {error}",
                description=self.description,
                error=failure.getErrorMessage(),
                nbecho_event="listen_failed",
            )

    def startService(self) -> None:
        super().startService()
        if self._listening is None:
            self.privilegedStartService()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        listening, self._listening = self._listening, None
        if self.port is not None:
            port, self.port = self.port, None
            return maybeDeferred(port.stopListening)  # type: ignore[call-overload]
        if listening is not None:
            listening.cancel()
        return succeed(None)
