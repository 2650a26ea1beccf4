"""
A program on a real pseudo-terminal, for the end-to-end tests of the
client's terminal behaviour: typed keys go through the line discipline
(C{^C} becomes SIGINT, C{^D} the end of input), as in a person's terminal.
"""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time

from tests._servers import TIMEOUT


class Terminal:
    """
    A program run as the session leader of a new pseudo-terminal, with it
    as its controlling terminal, standard input, output and error.
    """

    def __init__(
        self,
        command: list[str],
        env: dict[str, str] | None = None,
        echo: bool = True,
    ) -> None:
        self.master, slave = os.openpty()
        if not echo:
            # Every byte read back then comes from the program itself.
            attributes = termios.tcgetattr(slave)
            attributes[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attributes)

        def takeTerminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            preexec_fn=takeTerminal,
            env=env,
        )
        # Kept open until the program is gone, to read the flags it left.
        self.slave: int | None = slave
        self.blockingAfter: bool | None = None
        self.output = b""

    def type(self, keys: bytes) -> None:
        """
        Type C{keys}: control characters go through the line discipline.
        """
        os.write(self.master, keys)

    def waitFor(self, text: bytes, timeout: float = TIMEOUT, count: int = 1) -> None:
        """
        Read the terminal until C{text} has appeared C{count} times, or fail.
        """
        deadline = time.monotonic() + timeout
        while self.output.count(text) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen in {self.output!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the program is gone, all is read
                    chunk = b""
                if not chunk:
                    assert self.slave is None or text in self.output, self.output
                    return
                self.output += chunk

    def wait(self) -> int:
        """
        Wait for the program to end, note whether it left the terminal in
        blocking mode, and read everything it wrote: once no process has
        the terminal open, the master reads EIO after the last byte.
        """
        code = self.process.wait(TIMEOUT)
        if self.slave is not None:
            self.blockingAfter = os.get_blocking(self.slave)
            os.close(self.slave)
            self.slave = None
        self.waitFor(b"\0 never written: read to the end\0")
        return code

    def close(self) -> None:
        """
        Kill the program if it still runs, and close the terminal.
        """
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
        if self.slave is not None:
            os.close(self.slave)
