"""Errors raised by the agent package.

    AgentError                  anything the station agent refuses or cannot do
    ├── ConfigError             a station configuration is missing or invalid (names file and key)
    └── BufferStoreError        the durable buffer cannot take or give records
        └── BufferFullError     the size cap is reached and only never-dropped rows (events) remain

A user's mistake (bad configuration) is reported as one line from the message. A sensor's bad bytes
never raise here: they become reading statuses and QC flags.
"""

from __future__ import annotations

from roadside.errors import InputError, RoadsideError


class AgentError(RoadsideError):
    """Base of all agent errors."""


class ConfigError(AgentError, InputError):
    """A station configuration file is missing or invalid."""


class BufferStoreError(AgentError):
    """The durable buffer cannot take or give records."""


class BufferFullError(BufferStoreError):
    """The size cap is reached and nothing more may be dropped (only warning events remain)."""
