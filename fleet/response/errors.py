"""Errors raised by the response chain (one tree under :class:`fleet.errors.FleetError`).

ResponseError        anything the response chain refuses or cannot do
├── RegisterError    a register import is malformed (names the file and row or feature)
├── PlanError        a response plan is malformed (names the field)
├── CapError         a CAP message fails the schema or a time/reference rule
├── WorkflowError    a warning cannot move that way (state, approver, references)
├── NotFound         an unknown cell, unit, warning, drill, incident or partner
├── ChannelError     a channel is misconfigured or a delivery failed (names the channel)
└── DrillViolation   a drill message met a live channel, or a live message a drill channel
"""

from __future__ import annotations

from fleet.errors import FleetError


class ResponseError(FleetError):
    """Base of the response chain's errors."""


class RegisterError(ResponseError):
    """A register import is malformed."""


class PlanError(ResponseError):
    """A response plan is malformed."""


class CapError(ResponseError):
    """A CAP message is invalid."""


class WorkflowError(ResponseError):
    """A warning cannot take that step."""


class NotFound(ResponseError):
    """Something named does not exist."""


class ChannelError(ResponseError):
    """A channel is misconfigured or a delivery failed."""


class DrillViolation(ChannelError):
    """A drill message and a live channel met (or the reverse): never sent."""
