"""Names for the operating system's view of our threads (``top -H``, ``ps -L``, ``/proc``).

Python 3.11 names a thread for itself only; the kernel sees every thread of the agent as
``python``. :func:`name_os_thread` gives the calling thread the kernel name a technician reads in
``htop`` on a station (at most 15 bytes, as Linux keeps them) and the benchmark's per-thread CPU
figures are read by.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

PR_SET_NAME = 15  # prctl(2)
MAX_NAME = 15  # bytes the kernel keeps (TASK_COMM_LEN less the NUL)


def name_os_thread(name: str) -> None:
    """Set the calling thread's kernel name (Linux; elsewhere, or on failure, nothing)."""
    if not sys.platform.startswith("linux"):
        return
    raw = name.encode("utf-8", "replace")[:MAX_NAME]
    with contextlib.suppress(OSError, AttributeError):  # no libc symbol: the name stays
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0)
