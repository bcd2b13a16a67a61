"""Fault injection: what is wrong with a device, when, and how it changes values and frames.

Kinds are :data:`sim.spec.FAULT_KINDS`. Times are scenario seconds; a fault is active on
``[start_s, end_s)``. Value faults (``stuck``, ``spike``, ``drift``) change what the device
measures; frame faults (``no_answer``, ``slow_answer``, ``crc_error``, ``truncated``, ``garbage``,
``wrong_slave``) change the bytes it sends; ``counter_reset`` power-cycles it once at ``start_s``;
``port_vanish`` removes its port for the duration. Parameters:

- stuck: ``channel`` (optional; default all channels)
- spike: ``magnitude`` (channel units; default per channel), ``probability`` (0.5), ``channel``
- drift: ``rate_per_h`` (channel units per hour, 20), ``channel``
- slow_answer: ``delay_s`` (real seconds added before answering, 1.0: wire time is never scaled)
- wrong_slave: ``address`` (the address that answers; default the device's own + 1)
- garbage: ``length`` (bytes; default the length of the frame it replaces)
- counter_reset: ``start_mm`` (accumulated rain after the reset, 0; set near a rollover to test it)
- any kind, ASCII devices: ``status`` (WindSonic status code, e.g. "01") or ``invalid`` (WXT: mark
  values with ``#``) to make the device report its own fault while the fault is active.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.spec import FAULT_KINDS, FaultSpec

VALUE_KINDS = ("stuck", "spike", "drift")
FRAME_KINDS = ("no_answer", "slow_answer", "crc_error", "truncated", "garbage", "wrong_slave")

# Default spike size per channel, in the channel's unit: clearly outside what the truth does.
SPIKE_MAGNITUDE: dict[str, float] = {
    "rain_total": 50.0,
    "rain_intensity": 300.0,
    "tip_count": 500.0,
    "wind_speed": 45.0,
    "wind_gust": 45.0,
    "wind_dir": 180.0,
    "water_distance": -800.0,
    "water_depth": 800.0,
}


@dataclass
class Fault:
    """One fault on one device, active on ``[start_s, end_s)`` of scenario time."""

    kind: str
    start_s: float
    end_s: float = math.inf
    params: dict[str, Any] = field(default_factory=dict)
    fired: bool = False  # one-shot kinds (counter_reset) already applied

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s

    def number(self, key: str, default: float) -> float:
        return float(self.params.get(key, default))

    def applies_to(self, channel: str) -> bool:
        only = self.params.get("channel")
        return only is None or only == channel


# Every parameter a fault understands, with its type (see the module docstring for meanings).
PARAM_TYPES: dict[str, type] = {
    "channel": str,
    "magnitude": float,
    "probability": float,
    "rate_per_h": float,
    "delay_s": float,
    "address": str,  # an integer for Modbus devices; a letter or digit for ASCII ones
    "length": int,
    "start_mm": float,
    "status": str,
    "invalid": bool,
}


def check_params(params: Mapping[str, Any], channels: list[str], modbus: bool) -> dict[str, Any]:
    """Coerce fault parameters to their types; refuse unknown keys and bad values (ValueError)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        want = PARAM_TYPES.get(key)
        if want is None:
            raise ValueError(f"unknown fault parameter {key!r} (known: {', '.join(PARAM_TYPES)})")
        try:
            if want is bool and not isinstance(value, bool):
                raise ValueError
            out[key] = want(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"fault parameter {key}: expected {want.__name__}, got {value!r}"
            ) from None
    if "channel" in out and out["channel"] not in channels:
        raise ValueError(f"no channel {out['channel']!r} (channels: {', '.join(channels)})")
    if modbus and "address" in out:
        if not out["address"].isdigit() or not 0 <= int(out["address"]) <= 247:
            raise ValueError(f"a Modbus address is an integer 0..247, got {out['address']!r}")
        out["address"] = int(out["address"])
    if not 0.0 <= out.get("probability", 0.0) <= 1.0:
        raise ValueError(f"probability must be within 0..1, got {out['probability']}")
    return out


def check_kind(kind: str) -> None:
    """Refuse an unknown fault kind with the list of known ones."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")


class FaultBoard:
    """The faults of one device: scheduled from the scenario or injected at run time."""

    def __init__(self, specs: tuple[FaultSpec, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        for s in specs:
            self.add(s.kind, s.start_s, s.duration_s, dict(s.params))

    def add(
        self, kind: str, start_s: float, duration_s: float | None, params: Mapping[str, Any]
    ) -> Fault:
        """Schedule a fault; ``duration_s`` None means until cleared."""
        check_kind(kind)
        end = math.inf if duration_s is None else start_s + duration_s
        fault = Fault(kind, start_s, end, dict(params))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self, kind: str | None = None) -> int:
        """Remove faults (all, or of one kind); returns how many were removed."""
        with self._lock:
            keep = [f for f in self._faults if kind is not None and f.kind != kind]
            n = len(self._faults) - len(keep)
            self._faults = keep
        return n

    def active(self, t_s: float) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.active(t_s)]

    def find(self, kind: str, t_s: float) -> Fault | None:
        """The active fault of ``kind`` at ``t_s``, if any."""
        return next((f for f in self.active(t_s) if f.kind == kind), None)

    def due_once(self, kind: str, t_s: float) -> list[Fault]:
        """One-shot faults of ``kind`` whose start has passed and not yet fired; marks them."""
        with self._lock:
            due = [f for f in self._faults if f.kind == kind and not f.fired and f.start_s <= t_s]
            for f in due:
                f.fired = True
        return due

    def describe(self, t_s: float) -> list[dict[str, Any]]:
        """Active faults as plain dicts (for status output)."""
        return [
            {
                "kind": f.kind,
                "start_s": f.start_s,
                "end_s": None if math.isinf(f.end_s) else f.end_s,
                "params": f.params,
            }
            for f in self.active(t_s)
        ]


def spike_hit(seed: str, channel: str, t_s: float, probability: float) -> bool:
    """Whether a spike shows at this instant: a pure function of seed, channel and time."""
    return random.Random(f"{seed}:{channel}:{t_s:.3f}").random() < probability


def apply_value_faults(
    values: dict[str, float],
    faults: list[Fault],
    t_s: float,
    at_start: Mapping[int, dict[str, float]],
    seed: str,
) -> dict[str, float]:
    """Apply stuck, spike and drift faults to measured channel values.

    ``at_start`` maps ``id(fault)`` of each stuck fault to the values at its start.
    """
    out = dict(values)
    for f in faults:
        for ch in out:
            if not f.applies_to(ch):
                continue
            if f.kind == "stuck":
                out[ch] = at_start[id(f)].get(ch, out[ch])
            elif f.kind == "drift":
                out[ch] += f.number("rate_per_h", 20.0) * (t_s - f.start_s) / 3600.0
            elif f.kind == "spike" and spike_hit(seed, ch, t_s, f.number("probability", 0.5)):
                out[ch] += f.number("magnitude", SPIKE_MAGNITUDE.get(ch, 1000.0))
    return out


def mangle(frame: bytes, faults: list[Fault], rng: random.Random) -> bytes:
    """Apply ``truncated`` and ``garbage`` to a finished frame (checksum faults are protocol's)."""
    for f in faults:
        if f.kind == "truncated":
            frame = frame[: max(1, len(frame) // 2)]
        elif f.kind == "garbage":
            n = int(f.number("length", len(frame)))
            frame = bytes(rng.getrandbits(8) for _ in range(n))
    return frame


def reply_delay_s(faults: list[Fault]) -> float:
    """Extra real seconds before answering (``slow_answer``)."""
    return sum(f.number("delay_s", 1.0) for f in faults if f.kind == "slow_answer")


def silenced(faults: list[Fault]) -> bool:
    return any(f.kind == "no_answer" for f in faults)


def answering_address(own: int, faults: list[Fault]) -> int:
    """The Modbus address a reply carries: another one under ``wrong_slave``."""
    for f in faults:
        if f.kind == "wrong_slave":
            return int(f.params.get("address", (own % 247) + 1))
    return own


def answering_name(own: str, faults: list[Fault], other: str) -> str:
    """The ASCII address or unit id a reply carries: ``other`` (or the param) under wrong_slave."""
    for f in faults:
        if f.kind == "wrong_slave":
            return str(f.params.get("address", other))
    return own
