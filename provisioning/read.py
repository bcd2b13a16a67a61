"""Live readings from one device: the technician's first tool (``roadside-provision read``).

:func:`read_device` checks the profile and the port up front (so a typo is one clear line, not a
stream of failed polls), then polls the device through the same :class:`~drivers.bus.BusScheduler`
the station uses and hands each batch to a callback. Failures a user can fix map to distinct exit
codes (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.bus import BusScheduler, DeviceConfig
from drivers.errors import PortError, ProfileError
from drivers.ports import probe
from drivers.profile import Profile, bundled_profiles, load_profile
from roadside.clock import Clock, align_up
from roadside.records import Reading
from roadside.structs import replace

EXIT_NO_READING = 1  # the device never gave a good reading
EXIT_UNKNOWN_PROFILE = 3
EXIT_BAD_PROFILE = 4
EXIT_PORT_MISSING = 5
EXIT_PORT_PERMISSION = 6
EXIT_PORT_UNUSABLE = 7
EXIT_CODES = {
    "no reading": EXIT_NO_READING,
    "unknown profile": EXIT_UNKNOWN_PROFILE,
    "bad profile": EXIT_BAD_PROFILE,
    "missing": EXIT_PORT_MISSING,
    "permission": EXIT_PORT_PERMISSION,
    "unusable": EXIT_PORT_UNUSABLE,
}


class ReadError(Exception):
    """Something the user can fix; ``exit_code`` says which kind (see :data:`EXIT_CODES`)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resolve_profile(name_or_path: str) -> Profile:
    """Load a profile, telling an unknown name or file from a malformed one."""
    path = Path(name_or_path)
    unknown = (not path.suffix and name_or_path not in bundled_profiles()) or (
        path.suffix and not path.exists()
    )
    try:
        return load_profile(name_or_path)
    except ProfileError as exc:
        raise ReadError(str(exc), EXIT_UNKNOWN_PROFILE if unknown else EXIT_BAD_PROFILE) from None


def check_port(port: str, profile: Profile) -> None:
    """Open and close ``port`` once; a missing or forbidden port is a :class:`ReadError`."""
    try:
        probe(port, profile.serial, timeout_s=min(profile.serial.timeout_s, 2.0))
    except PortError as exc:
        raise ReadError(str(exc), EXIT_CODES.get(exc.reason, EXIT_PORT_UNUSABLE)) from None


def read_device(
    port: str,
    profile_name: str,
    *,
    clock: Clock,
    on_batch: Callable[[list[Reading]], None],
    slave: int | None = None,
    count: int = 0,
    interval_s: float = 1.0,
    baudrate: int | None = None,
    timeout_s: float | None = None,
) -> int:
    """Poll one device ``count`` times (0: until interrupted) on interval boundaries.

    Returns the number of polls that gave at least one good value; raises :class:`ReadError`
    before polling when the profile or port is wrong.
    """
    profile = resolve_profile(profile_name)
    settings = replace(profile.serial, baudrate=baudrate) if baudrate else None
    check_port(port, profile)
    device = DeviceConfig("device", profile, port, slave=slave, interval_s=interval_s)
    bus = BusScheduler(
        port,
        [device],
        station="provisioning",
        clock=clock,
        sink=on_batch,
        settings=settings,
        timeout_s=timeout_s,
    )
    good = polls = 0
    try:
        while count <= 0 or polls < count:
            if polls:
                now = clock.now().timestamp()
                clock.sleep(align_up(now, interval_s) - now)
            batch = bus.poll_once(device.name)
            polls += 1
            good += any(r.ok for r in batch)
            on_batch(batch)
    finally:
        bus.stop()
    return good


def reading_line(r: Reading) -> str:
    """One reading for a person: time, channel, value and unit, raw, status and detail."""
    value = "-" if r.value is None else f"{r.value:g}"
    text = f"{r.time:%Y-%m-%dT%H:%M:%S}Z  {r.channel:<16} {value:>12} {r.unit:<6} raw={r.raw!s:<10}"
    text += f" {r.status.value}"
    return f"{text}  {r.detail}" if r.detail else text


def reading_json(r: Reading) -> str:
    """One reading as a JSON object on one line."""
    doc: dict[str, Any] = {
        "time": r.time.isoformat().replace("+00:00", "Z"),
        "channel": r.channel,
        "value": r.value,
        "unit": r.unit,
        "raw": r.raw,
        "status": r.status.value,
        "detail": r.detail,
    }
    return json.dumps(doc)
