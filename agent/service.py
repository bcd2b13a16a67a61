"""Living under systemd: sd_notify, the watchdog interval, and logging to the journal.

:func:`notify` speaks the sd_notify protocol itself: one datagram of ``KEY=VALUE`` lines to the
AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Outside
systemd there is no socket and every call is a cheap no-op. :class:`Notifier` wraps the messages
the agent sends: ``READY=1`` after the first complete poll cycle, ``WATCHDOG=1`` from the main loop
while healthy, ``STATUS=`` with a one-line health summary, ``STOPPING=1`` on the way out.

:func:`setup_logging` sends records to the journal with structured fields (any ``extra={"KEY":
...}`` in upper case becomes a journal field) when the process runs under systemd
(``$JOURNAL_STREAM`` or ``$INVOCATION_ID`` set and systemd-python installed), and to stderr
otherwise.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

log = logging.getLogger(__name__)


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send one sd_notify datagram; False when there is no socket to send to."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", path, exc)
            return False
    return True


def watchdog_interval_s() -> float | None:
    """Seconds between WATCHDOG=1 pings systemd asks for (half of WatchdogSec), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None


class Notifier:
    """The agent's side of the service manager protocol (no-ops outside systemd)."""

    def __init__(self, socket_path: str | None = None) -> None:
        self.socket_path = socket_path
        self.ready_sent = False
        self._last_status = ""

    def ready(self, status: str) -> None:
        """Tell systemd start-up is complete (once)."""
        if not self.ready_sent:
            self.ready_sent = True
            self._last_status = status
            notify(f"READY=1\nSTATUS={status}", self.socket_path)

    def watchdog(self) -> None:
        """Pet the watchdog: only call this from a loop that is healthy."""
        notify("WATCHDOG=1", self.socket_path)

    def status(self, status: str) -> None:
        """Update the one-line status shown by ``systemctl status`` (sent only on change)."""
        if status != self._last_status:
            self._last_status = status
            notify(f"STATUS={status}", self.socket_path)

    def stopping(self) -> None:
        """Tell systemd the service is shutting down."""
        notify("STOPPING=1\nSTATUS=stopping", self.socket_path)


def under_systemd() -> bool:
    """Was this process started by systemd (its stdout/stderr are the journal)?"""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def setup_logging(level: int = logging.INFO, *, station: str = "") -> logging.Handler:
    """Route the root logger to the journal under systemd, else to stderr; returns the handler."""
    handler: logging.Handler
    if under_systemd():
        try:
            from systemd.journal import JournalHandler

            fields = {"SYSLOG_IDENTIFIER": "roadside-agent"}
            if station:
                fields["STATION"] = station
            handler = JournalHandler(**fields)
        except ImportError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
