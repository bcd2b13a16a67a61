"""One exit-code table for the four commands (``roadside-agent``, ``roadside-fleet``,
``roadside-provision``, ``roadside-sim``); the README shows the same table and
``tests/test_exit_codes.py`` checks both.

====  ===========================================================  ===============================
code  meaning                                                      commands
====  ===========================================================  ===============================
0     ok                                                           all
1     runtime failure (device, broker, database, disk, port taken)  all
2     bad usage or input (options, configuration, profile,          all
      scenario, key file, document body): one line names it
3     the agent is not running / the profile is unknown            agent ``status`` / provision
                                                                   ``read``
4     the profile is malformed                                     provision ``read``
5     the serial port is missing                                   provision ``read``
6     the serial port is not permitted                             provision ``read``
7     the serial port is unusable                                  provision ``read``
====  ===========================================================  ===============================

A user's mistake never ends in a traceback: every :class:`roadside.errors.RoadsideError` carries
the code it exits with (``exit_code``: 2 for the input errors, 1 otherwise) and
:func:`click_error` turns it into click's one-line ``Error: ...``.
"""

from __future__ import annotations

import click

from roadside.errors import RoadsideError

OK = 0
FAILURE = 1
USAGE = 2
NOT_RUNNING = 3
UNKNOWN_PROFILE = 3
MALFORMED_PROFILE = 4
PORT_MISSING = 5
PORT_NOT_PERMITTED = 6
PORT_UNUSABLE = 7

EXIT_CODES: dict[int, str] = {
    OK: "ok",
    FAILURE: "runtime failure",
    USAGE: "bad usage or input",
    3: "agent not running (roadside-agent status) / unknown profile (roadside-provision read)",
    MALFORMED_PROFILE: "malformed profile (roadside-provision read)",
    PORT_MISSING: "serial port missing (roadside-provision read)",
    PORT_NOT_PERMITTED: "serial port not permitted (roadside-provision read)",
    PORT_UNUSABLE: "serial port unusable (roadside-provision read)",
}


def fail(message: str, code: int = FAILURE) -> click.ClickException:
    """A one-line error that exits with ``code``."""
    err = click.ClickException(message)
    err.exit_code = code  # type: ignore[misc]
    return err


def click_error(exc: RoadsideError) -> click.ClickException:
    """The one-line error for a Roadside error, exiting with its ``exit_code``."""
    return fail(str(exc), exc.exit_code)
