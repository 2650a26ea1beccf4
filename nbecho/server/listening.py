"""
One listening endpoint as a service, with the seed's C{Ready?} line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from twisted.application.service import IService, Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from nbecho._twisted import unixLockFile
from nbecho.server._address import formatAddress
from nbecho.server._errors import inUse, inWords

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
    _early: IListeningPort | None = None
    _announce = False

    def __init__(
        self, description: str, endpoint: IStreamServerEndpoint, factory: Factory
    ) -> None:
        self.description = description
        self.endpoint = endpoint
        self.factory = factory
        self._listening: Deferred[IListeningPort] | None = None

    def listenNow(self) -> None:
        """
        Listen at once, before the service starts: twistd calls
        L{makeService<nbecho.tap.makeService>} before it forks a daemon, and
        only a failure raised there reaches the terminal as one line, with
        status 1 and no pid file; a failure after the fork leaves the
        operator two lines of twistd's own and a pointer to the log.

        @raise ListenFailed: if the endpoint fails to listen at once.
        """
        if self._listening is not None:
            return
        self._failure: Failure | None = None
        self._starting = True
        self._listening = self.endpoint.listen(self.factory)
        self._listening.addCallbacks(self._bound, self._failed)
        self._starting = False
        if self._failure is not None:
            raise ListenFailed(f"nbecho: {self._why(self._failure)}")

    def privilegedStartService(self) -> None:
        """
        Listen now unless L{listenNow} already did, before twistd sheds
        privileges, so that ports below 1024 work with C{--uid}.
        """
        super().privilegedStartService()
        self.listenNow()
        self._announce = True
        if self._early is not None:
            self._ready(self._early)

    def _bound(self, port: IListeningPort) -> IListeningPort:
        if self._announce:
            self._ready(port)
        else:
            self._early = port
        return port

    def _ready(self, port: IListeningPort) -> None:
        self._early = None
        _adoptLockFile(port)
        self._listened(port)

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
            self._listening = None
        elif not failure.check(CancelledError):
            log.critical(
                "nbecho: {error}",
                description=self.description,
                error=self._why(failure),
                nbecho_event="listen_failed",
            )

    def _why(self, failure: Failure) -> str:
        """
        Why C{failure} stopped the listener, naming it: a port in use in
        plain words, anything else after C{cannot listen on DESCRIPTION}.
        """
        error = failure.value
        taken = inUse(error, self.description) if error else None
        if taken is not None:
            return taken
        why = inWords(error, self.description) if error else failure.getErrorMessage()
        return f"cannot listen on {self.description}: {why}"

    def startService(self) -> None:
        super().startService()
        if not self._announce:
            self.privilegedStartService()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        listening, self._listening = self._listening, None
        self._announce = False
        port = self.port or self._early
        self.port = self._early = None
        if port is not None:
            return maybeDeferred(port.stopListening)  # type: ignore[call-overload]
        if listening is not None:
            listening.cancel()
        return succeed(None)


@runtime_checkable
class EarlyListener(Protocol):
    """
    A service that can bind its socket before it starts: a
    L{ListeningService}, or the UDP listener of L{nbecho.server.udp}.
    """

    def listenNow(self) -> None:
        """
        Bind now.

        @raise ListenFailed: if it cannot.
        """

    def stopService(self) -> object:
        """
        Close what L{listenNow} bound.
        """


def listenBeforeStart(services: Iterable[IService]) -> None:
    """
    Make every L{EarlyListener} among C{services} and their children
    (stream and UDP listeners alike) listen now, so that none says
    C{Ready?} before all of them are bound.

    @raise ListenFailed: for the first one that cannot, once the others
        have stopped listening.
    """
    listening: list[EarlyListener] = []
    try:
        _listenAll(services, listening)
    except ListenFailed:
        for service in listening:
            service.stopService()
        raise


def _listenAll(services: Iterable[IService], listening: list[EarlyListener]) -> None:
    for service in services:
        if isinstance(service, EarlyListener):
            service.listenNow()
            listening.append(service)
        if isinstance(service, Iterable):
            _listenAll(service, listening)


def _adoptLockFile(port: IListeningPort) -> None:
    """
    Make the lock file of a UNIX socket listened on before twistd forked the
    daemon name the daemon's pid rather than the parent's, which exits at
    once: a stale lock would let another server take the path over, and
    closing the socket would fail on a lock "not owned by this process".
    """
    lock = unixLockFile(port)
    if lock is None:
        return
    pid = str(os.getpid())
    name = os.fsdecode(lock.name)
    try:
        if os.readlink(name) == pid:
            return
        temporary = f"{name}.{pid}"
        os.symlink(pid, temporary)
        os.replace(temporary, name)
    except OSError as error:
        log.warn(
            "Cannot update the lock file of {description}: {error}",
            description=os.fsdecode(getattr(port, "port", name)),
            error=inWords(error),
        )
