"""
C{--log-format json}: twistd's log as one JSON object per line.

twistd picks its log observer after the plugin has made its service, from
C{--logger}, else from an L{ILogObserver} component of the application, else
from C{--logfile}.  The plugin's service puts a JSON observer on the
application as it is attached to it, writing where twistd would
(L{nbecho.logs.textlog.logDestination}: C{--logfile} with its rotation, or
stdout), and an explicit C{--logger} still wins.

Lines are Twisted's own JSON events (L{twisted.logger.eventAsJSON}, readable
back with L{twisted.logger.eventsFromJSONLogFile}), plus C{log_text}, the
line as the text log shows it.  nbecho's events carry C{nbecho_event} and
their fields (C{peer}, C{text}, C{size}, ...) as separate keys.
"""

from __future__ import annotations

from typing import IO, Any

from twisted.application.service import IServiceCollection, MultiService
from twisted.logger import (
    ILogObserver,
    LogEvent,
    formatEvent,
    jsonFileLogObserver,
)
from twisted.python.components import Componentized
from zope.interface import implementer

from nbecho.logs.batch import messageEvents

#: The values --log-format takes.
LOG_FORMATS = ("text", "json")


@implementer(ILogObserver)
class JSONLinesObserver:
    """
    Write each event as one line of JSON, with its formatted text.
    """

    def __init__(self, outFile: IO[Any]) -> None:
        self._observer = jsonFileLogObserver(outFile, recordSeparator="")

    def __call__(self, event: LogEvent) -> None:
        # One line per message, also for the messages of one chunk, which
        # nbecho logs as one event.
        for each in messageEvents((event,)):
            self._observer({**each, "log_text": formatEvent(each)})


class JSONLoggingService(MultiService):
    """
    The plugin's services, and the JSON observer for the application that
    twistd attaches them to.
    """

    def __init__(self, observer: ILogObserver) -> None:
        super().__init__()
        self.observer = observer

    def setServiceParent(self, parent: IServiceCollection) -> None:
        if isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.observer)
        super().setServiceParent(parent)
