"""Errors raised by the edge_models package.

    NowcastError                anything the nowcast refuses or cannot do
    ├── ModelFileError          the model file is missing, not a TFLite flatbuffer, or malformed
    └── FeatureMismatchError    the features given do not match what the model was trained on

The station treats any NowcastError as "no forecast this minute" (logged once, never fatal).
"""

from __future__ import annotations

from roadside.errors import RoadsideError


class NowcastError(RoadsideError):
    """Base of all nowcast errors."""


class ModelFileError(NowcastError):
    """The model file cannot be used."""


class FeatureMismatchError(NowcastError):
    """Feature vector or feature names differ from the model's."""
