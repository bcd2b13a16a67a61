"""Pseudo-terminal pairs standing in for serial ports.

The simulator holds the master side; the slave side is what a driver opens with pyserial, exposed
as a symlink (like socat's ``link=``). A port can vanish (pair closed, link removed) and come back
on a new pseudo-terminal behind the same link, as a USB adapter does when it is re-plugged.
"""

from __future__ import annotations

import fcntl
import os
import termios
import tty
from pathlib import Path

# Above this many unread bytes waiting for the driver, nobody is listening: the data is dropped
# (a real line does not store what no UART reads).
STALE_BYTES = 1024


class PtyLink:
    """One pseudo-terminal pair with its slave path published as ``link``."""

    uart = False  # nothing paces the bytes: the line releases them at the character rate

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master_fd: int | None = None
        self._slave_fd: int | None = None
        self.tty = ""

    @property
    def is_open(self) -> bool:
        return self.master_fd is not None

    def open(self) -> None:
        """Create a raw pty pair and point the link at its slave."""
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        flags = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.master_fd, self._slave_fd = master, slave  # slave held so the master never sees EIO
        self.tty = os.ttyname(slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.tty)
        tmp.replace(self.link)

    def close(self) -> None:
        """Close the pair and remove the link: the port is gone."""
        if self.link.is_symlink() and os.readlink(self.link) == self.tty:
            self.link.unlink(missing_ok=True)
        for fd in (self.master_fd, self._slave_fd):
            if fd is not None:
                os.close(fd)
        self.master_fd = self._slave_fd = None

    def drop_stale(self) -> None:
        """Discard output nobody has read for a while (no driver has the port open)."""
        if self._slave_fd is None:
            return
        try:
            buf = fcntl.ioctl(self._slave_fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return
        if int.from_bytes(buf, "little") > STALE_BYTES:
            termios.tcflush(self._slave_fd, termios.TCIFLUSH)
