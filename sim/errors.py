"""Errors raised by the sim package.

    SimError                    anything the simulator refuses or cannot do
    └── ScenarioError           a scenario file is missing, unknown or malformed
                                (the message names the file and the key)

A user's mistake in a scenario file is reported as one line: ``file: key.path: what is wrong``.
"""

from __future__ import annotations

from roadside.errors import InputError, RoadsideError


class SimError(RoadsideError):
    """Base of all simulator errors."""


class ScenarioError(SimError, InputError):
    """A scenario file is missing, unknown or malformed."""
