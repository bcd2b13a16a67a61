"""Errors of the hardware-in-the-loop runner.

SimError (sim.errors)
└── HilError            a qualification run cannot be set up or carried out
    ├── RunFileError    a run file is missing or malformed (names the file and the key)
    └── DutError        the device under test's results cannot be collected (names the source)
"""

from __future__ import annotations

from sim.errors import SimError


class HilError(SimError):
    """Base of the HIL runner's errors."""


class RunFileError(HilError):
    """A run file is missing or malformed."""


class DutError(HilError):
    """The device under test's results cannot be collected."""
