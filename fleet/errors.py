"""Errors raised by the fleet package.

    FleetError          anything the fleet controller refuses or cannot do
    ├── StoreError      the database URL is bad or the database is unreachable (names the URL)
    ├── KeyFileError    a key file is missing, unreadable or of the wrong kind (names the file)
    ├── DocumentError   a configuration document is malformed or targets an unknown scope
    ├── RolloutError    a staged rollout cannot start or advance (names the group or rollout)
    ├── BrokerError     the MQTT broker is unreachable or refused the controller (names host:port)
    └── AuthError       a user, token or password is refused (names the user)

The command line turns each into one line of text and a non-zero exit code; the HTTP API turns
them into 4xx/5xx answers with the message as ``detail``.
"""

from __future__ import annotations


class FleetError(Exception):
    """Base of all fleet errors."""


class StoreError(FleetError):
    """The database URL is bad or the database cannot be reached."""


class KeyFileError(FleetError):
    """A signing key file is missing, unreadable or of the wrong kind."""


class DocumentError(FleetError):
    """A configuration document is malformed or targets an unknown scope."""


class RolloutError(FleetError):
    """A staged rollout cannot start or advance."""


class BrokerError(FleetError):
    """The MQTT broker cannot be reached or refused the controller."""


class AuthError(FleetError):
    """A user, token or password is refused (names the user)."""
