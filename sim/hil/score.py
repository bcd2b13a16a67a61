"""The truth-versus-device scorecard: pure functions over the scenario and what the DUT reported.

- **channels**: per sensor channel with a truth (depth, distance, rain, wind), over the values
  the DUT passed as good (correct, corrected or unchecked; not suspect, wrong or missing): bias
  and RMSE against the truth at each value's time, the lag (the shift of the truth, -300..+300 s
  in 5 s steps, that fits best; positive: the device is behind) and the missing share (minutes
  since its first reading without a good value). Rain totals are compared as rain accumulated
  since the first reading (a counter reset re-bases).
- **faults / qc**: each injected fault is *detected* when the DUT flagged (suspect, wrong, missing,
  corrected) a reading of an affected device between its start and ``grace_min`` after its end;
  line-wide faults (``port_vanish``, ``slow_answer``) affect every device on the bus. Per fault
  kind: injected, detected, missed and *falsely flagged* (clean minutes whose flags carry one of
  that kind's reasons). A clean minute is one no fault's window (plus grace) touches and in
  which the simulator answered the device on time and did not stall (``sim_late_minutes``: its
  host starved it).
- **warnings**: the truth's first crossing of each signal's level (waterlogging depth tiers,
  rainstorm 1/3/6/12-hour rain, gale 10-minute mean and gust, all from ``agent.warnings``) against
  the DUT's first raise to that level or higher; the lead in minutes (positive: the DUT was ahead)
  and whether it meets the run's target. Levels the DUT raised that the truth never reached are
  listed as unfounded.
- **checkpoints**: the run file's statements, passed or failed, with what was seen (readings
  *resume* with the first value after the fault, suspect or not).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.warnings import (
    GALE_NATIONAL,
    LEVELS,
    RAINSTORM_PRESETS,
    WATERLOGGING_TIERS,
)
from sim.hil.observe import Observed, Value
from sim.hil.runfile import Checkpoint, RunSpec
from sim.spec import FaultSpec, Scenario

LAGS_S = range(-300, 301, 5)
GRID_S = 1.0
STEP_S = 60.0
GOOD_FLAGS = (0, 3, 4, 9, None)  # values the DUT passes as good (correct, corrected, unchecked)
DETECTED_FLAGS = (1, 2, 3, 4, 8)  # flags that say "something is wrong here"
LINE_WIDE = ("port_vanish", "slow_answer")
# The flag reasons (QC reasons and driver statuses) that belong to each fault kind.
KIND_REASONS: dict[str, tuple[str, ...]] = {
    "stuck": ("stuck",),
    "spike": ("step", "range", "climate", "rise_rate", "rain_rate"),
    "drift": ("step", "range", "climate", "rise_rate", "consistency"),
    "no_answer": ("timeout", "breaker_open"),
    "slow_answer": ("timeout", "breaker_open", "bad_frame", "crc_error"),
    "crc_error": ("crc_error", "checksum_error"),
    "truncated": ("bad_frame", "timeout", "crc_error", "checksum_error"),
    "garbage": ("bad_frame", "crc_error", "checksum_error", "timeout"),
    "counter_reset": ("counter_reset",),
    "wrong_slave": ("wrong_device", "timeout"),
    "port_vanish": ("port_unavailable", "timeout", "breaker_open"),
}


@dataclass(frozen=True)
class Window:
    """A fault's effect: the devices it touches from ``start_s`` to ``end_s`` (plus grace)."""

    fault: FaultSpec
    devices: frozenset[str]
    start_s: float
    end_s: float


def truth_of(sc: Scenario, channel: str) -> Callable[[float], float] | None:
    """The truth a device channel measures, as a function of scenario seconds (None: no truth)."""
    tr, height_mm = sc.truth, sc.site.installation_height_cm * 10.0

    def at(t: float) -> Any:
        return tr.sample(min(max(t, 0.0), tr.duration_s))

    table: dict[str, Callable[[float], float]] = {
        "water_depth": lambda t: at(t).water_depth_mm,
        "water_distance": lambda t: height_mm - at(t).water_depth_mm,
        "rain_total": lambda t: at(t).rain_total_mm,
        "rain_intensity": lambda t: at(t).rain_intensity_mmh,
        "wind_speed": lambda t: at(t).wind_speed_ms,
        "wind_gust": lambda t: at(t).wind_gust_ms,
        "wind_dir": lambda t: at(t).wind_dir_deg % 360.0,
    }
    return table.get(channel)


def _diff(channel: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if channel == "wind_dir":
        return np.asarray((a - b + 180.0) % 360.0 - 180.0)
    return a - b


def accumulated(values: list[Value]) -> list[tuple[float, float]]:
    """A counter as rain since the first value; a drop (reset) re-bases instead of subtracting."""
    out, total, prev = [], 0.0, None
    for v in values:
        assert v.value is not None
        if prev is not None and v.value >= prev:
            total += v.value - prev
        prev = v.value
        out.append((v.t_s, total))
    return out


def channel_stats(
    channel: str, values: list[Value], truth: Callable[[float], float], end_s: float
) -> dict[str, Any]:
    """Bias, RMSE, lag and missing share of one channel's values against its truth."""
    usable = [v for v in values if v.value is not None and v.flag in GOOD_FLAGS]
    first = min((v.t_s for v in values), default=0.0)
    minutes = max(1, math.ceil((end_s - first) / 60.0))
    covered = {int((v.t_s - first) // 60) for v in usable if v.t_s < end_s}
    out: dict[str, Any] = {
        "samples": len(usable),
        "missing_share": round(1.0 - min(len(covered), minutes) / minutes, 4),
    }
    if not usable:
        return {**out, "bias": None, "rmse": None, "lag_s": None}
    if channel == "rain_total":  # rain since the first value, on both sides
        pts = accumulated(usable)
        base = truth(pts[0][0])
    else:
        pts = [(v.t_s, float(v.value)) for v in usable if v.value is not None]
        base = 0.0
    ts = np.array([t for t, _ in pts])
    ys = np.array([y for _, y in pts])
    # the truth on a 1 s grid covering every shift tried, interpolated between
    grid = np.arange(ts.min() + LAGS_S[0] - GRID_S, ts.max() + LAGS_S[-1] + 2 * GRID_S, GRID_S)
    ref = np.array([truth(float(t)) - base for t in grid])
    if channel == "wind_dir":
        ref = np.degrees(np.unwrap(np.radians(ref)))

    def errors(shift: float) -> np.ndarray:
        return _diff(channel, ys, np.interp(ts - shift, grid, ref))

    def rmse(shift: float) -> float:
        return float(np.sqrt(np.mean(errors(shift) ** 2)))

    best = min(LAGS_S, key=lambda s: (round(rmse(s), 9), abs(s)))
    return {
        **out,
        "bias": round(float(np.mean(errors(0.0))), 4),
        "rmse": round(rmse(0.0), 4),
        "lag_s": float(best),
    }


def fault_windows(sc: Scenario, end_s: float, grace_s: float) -> list[Window]:
    """Every fault in the run with the devices it affects and its window (grace added)."""
    bus_of = {d.name: d.bus for d in sc.devices}
    out = []
    for f in sc.faults:
        if f.start_s >= end_s:
            continue
        stop = end_s if f.duration_s is None else min(end_s, f.start_s + f.duration_s)
        if f.kind in LINE_WIDE:
            devices = frozenset(d for d, b in bus_of.items() if b == bus_of.get(f.device))
        else:
            devices = frozenset({f.device})
        out.append(Window(f, devices, f.start_s, stop + grace_s))
    return out


def _flagged(v: Value) -> bool:
    return v.flag in DETECTED_FLAGS


def qc_table(
    readings: list[Value],
    windows: list[Window],
    end_s: float,
    sim_late: dict[str, list[int]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]], dict[str, Any]]:
    """Per fault: detected or missed; per kind: the confusion counts; the clean minutes' flags.

    ``sim_late`` (device -> minutes) takes the minutes the simulator answered late out of the
    clean ones.
    """
    sim_late = sim_late or {}
    faults, kinds = [], {k: {"injected": 0, "detected": 0, "missed": 0, "falsely_flagged": 0}
                         for k in KIND_REASONS}  # fmt: skip
    by_sensor: dict[str, list[Value]] = defaultdict(list)
    for v in readings:
        by_sensor[v.sensor].append(v)
    for w in windows:
        hits = [
            v
            for d in w.devices
            for v in by_sensor.get(d, [])
            if w.start_s <= v.t_s < w.end_s and _flagged(v)
        ]
        detected = bool(hits)
        first = min((v.t_s for v in hits), default=None)
        faults.append(
            {
                "device": w.fault.device,
                "kind": w.fault.kind,
                "start_min": round(w.fault.start_s / 60.0, 2),
                "end_min": None
                if w.fault.duration_s is None
                else round((w.fault.start_s + w.fault.duration_s) / 60.0, 2),
                "detected": detected,
                "first_flag_min": None if first is None else round(first / 60.0, 2),
                "reasons": sorted({v.reason for v in hits if v.reason}),
            }
        )
        k = kinds[w.fault.kind]
        k["injected"] += 1
        k["detected" if detected else "missed"] += 1
    clean_minutes: dict[str, set[int]] = {}
    flagged_minutes: dict[str, set[int]] = defaultdict(set)
    reasons: dict[str, int] = defaultdict(int)
    for sensor, values in by_sensor.items():
        first = min(v.t_s for v in values)
        touched = [w for w in windows if sensor in w.devices]
        late = set(sim_late.get(sensor, []))
        clean = {
            m
            for m in range(int(first // 60), int(end_s // 60))
            if not any(w.start_s < (m + 1) * 60 and m * 60 < w.end_s for w in touched)
            and m not in late
        }
        clean_minutes[sensor] = clean
        for v in values:
            m = int(v.t_s // 60)
            if m in clean and _flagged(v):
                flagged_minutes[sensor].add(m)
                reasons[v.reason or "?"] += 1
                for kind, rs in KIND_REASONS.items():
                    if v.reason in rs:
                        kinds[kind]["falsely_flagged"] += 1
    false_flags = {
        "clean_minutes": sum(len(c) for c in clean_minutes.values()),
        "flagged_minutes": sum(len(f) for f in flagged_minutes.values()),
        "by_sensor": {s: sorted(m) for s, m in sorted(flagged_minutes.items())},
        "by_reason": dict(sorted(reasons.items())),
        "sim_late_minutes": {d: m for d, m in sorted(sim_late.items()) if m},
    }
    return (
        faults,
        {k: v for k, v in kinds.items() if v["injected"] or v["falsely_flagged"]},
        false_flags,
    )


def truth_products(sc: Scenario, end_s: float) -> list[tuple[float, dict[str, float]]]:
    """The warning inputs the truth gives every minute (depth, rain over 1/3/6/12 h, wind)."""
    tr = sc.truth
    steps = [i * STEP_S for i in range(int(end_s // STEP_S) + 1)]
    total = [tr.sample(min(t, tr.duration_s)).rain_total_mm for t in steps]
    speed = [tr.sample(min(t, tr.duration_s)).wind_speed_ms for t in steps]
    out = []
    for i, t in enumerate(steps):
        s = tr.sample(min(t, tr.duration_s))
        p = {"water_depth": s.water_depth_mm, "wind_gust_3s": s.wind_gust_ms}
        for h in (1, 3, 6, 12):
            back = max(0, i - int(h * 3600 / STEP_S))
            p[f"rain_{h}h"] = total[i] - total[back]
        window = speed[max(0, i - 10) : i + 1]
        p["wind_speed_10min"] = sum(window) / len(window)
        out.append((t, p))
    return out


def signal_levels(preset: str) -> dict[str, dict[str, dict[str, float]]]:
    """Each signal's levels and thresholds, as the agent ships them."""
    return {
        "rainstorm": {k: dict(v) for k, v in RAINSTORM_PRESETS[preset].items()},
        "gale": {k: dict(v) for k, v in GALE_NATIONAL.items()},
        "waterlogging": {k: dict(v) for k, v in WATERLOGGING_TIERS.items()},
    }


def truth_crossings(
    products: list[tuple[float, dict[str, float]]], levels: dict[str, dict[str, dict[str, float]]]
) -> dict[tuple[str, str], float]:
    """(signal, level) -> scenario second the truth first met it."""
    out: dict[tuple[str, str], float] = {}
    for t, p in products:
        for signal, table in levels.items():
            for level, thresholds in table.items():
                met = any(p.get(k, -math.inf) >= v for k, v in thresholds.items())
                if met and (signal, level) not in out:
                    out[(signal, level)] = t
    return out


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def first_raise(obs: Observed, signal: str, level: str) -> float | None:
    """When the DUT first raised ``signal`` to ``level`` or higher."""
    return next(
        (
            w.t_s
            for w in obs.warnings
            if w.signal == signal
            and w.kind in ("raise", "upgrade")
            and _rank(w.level) >= _rank(level)
        ),
        None,
    )


def warning_table(
    obs: Observed,
    crossings: dict[tuple[str, str], float],
    targets: dict[str, float],
    levels: dict[str, dict[str, dict[str, float]]],
    end_s: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Lead/lag of the DUT's warnings on the truth's crossings, and unfounded warnings.

    ``crossings`` covers the whole scenario: a level the DUT forecast within the run and the
    truth reached only after it is a lead, not an unfounded warning.
    """
    rows = []
    for (signal, level), t_truth in sorted(crossings.items(), key=lambda kv: kv[1]):
        t_dut = first_raise(obs, signal, level)
        if t_truth > end_s and t_dut is None:  # after the run, and not forecast within it
            continue
        lead = None if t_dut is None else round((t_truth - t_dut) / 60.0, 2)
        target = targets.get(signal)
        rows.append(
            {
                "signal": signal,
                "level": level,
                "truth_min": round(t_truth / 60.0, 2),
                "dut_min": None if t_dut is None else round(t_dut / 60.0, 2),
                "lead_min": lead,
                "target_min": target,
                "met": None if target is None else (lead is not None and lead >= target),
            }
        )
    unfounded = []
    for signal, table in levels.items():
        for level in table:
            t_dut = first_raise(obs, signal, level)
            if t_dut is not None and (signal, level) not in crossings:
                unfounded.append(
                    {"signal": signal, "level": level, "dut_min": round(t_dut / 60.0, 2)}
                )
    return rows, unfounded


def check(cp: Checkpoint, obs: Observed, sc: Scenario, end_s: float) -> dict[str, Any]:
    """One checkpoint: passed or not, with what was seen."""
    if cp.kind == "warning":
        t = first_raise(obs, cp.signal, cp.level)
        ok = t is not None and t <= cp.by_min * 60.0
        seen = "never raised" if t is None else f"raised at minute {t / 60.0:.1f}"
        return {"name": cp.name, "passed": ok, "detail": seen}
    ends = [
        f.start_s + f.duration_s
        for f in sc.faults
        if f.device == cp.device and f.kind == cp.after and f.duration_s is not None
    ]
    ends = [e for e in ends if e < end_s]
    if not ends:
        return {"name": cp.name, "passed": False, "detail": f"no {cp.after} on {cp.device} ended"}
    good = sorted(  # any value counts: the first after a gap is rightly suspect
        v.t_s for v in obs.readings if v.sensor == cp.device and v.value is not None
    )
    delays = [next((t - e for t in good if t >= e), None) for e in ends]
    ok = all(d is not None and d <= cp.within_s for d in delays)
    detail = ", ".join("never" if d is None else f"{d:.0f} s" for d in delays)
    return {"name": cp.name, "passed": ok, "detail": f"readings resumed after {detail}"}


def scorecard(
    run: RunSpec,
    obs: Observed,
    end_s: float | None = None,
    sim_late: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """The whole scorecard of a run as plain data (JSON-ready).

    ``sim_late`` (device -> scenario seconds) says when the simulator itself answered late (its
    host starved it of CPU): those minutes are not clean, a DUT's flag there is not false.
    """
    sc = run.scenario
    end = run.duration_s if end_s is None else min(end_s, run.duration_s)
    obs = Observed(  # what the DUT said during the lead-in is not part of the run
        [v for v in obs.readings if v.t_s >= 0.0],
        [v for v in obs.derived if v.t_s >= 0.0],
        [w for w in obs.warnings if w.t_s >= 0.0],
    )
    first = min((v.t_s for v in obs.readings), default=None)
    windows = fault_windows(sc, end, run.scorecard.grace_min * 60.0)
    channels = []
    grouped: dict[tuple[str, str], list[Value]] = defaultdict(list)
    for v in obs.readings:
        grouped[(v.sensor, v.channel)].append(v)
    for (sensor, channel), values in sorted(grouped.items()):
        truth = truth_of(sc, channel)
        if truth is not None:
            stats = channel_stats(channel, values, truth, end)
            channels.append({"sensor": sensor, "channel": channel, **stats})
    late = {
        d: sorted({int(t // 60) for t in ts if 0 <= t < end}) for d, ts in (sim_late or {}).items()
    }
    faults, kinds, false_flags = qc_table(obs.readings, windows, end, late)
    levels = signal_levels(run.scorecard.rainstorm_preset)
    crossings = truth_crossings(truth_products(sc, sc.duration_s), levels)
    targets = run.scorecard.lead_target_min
    warnings, unfounded = warning_table(obs, crossings, targets, levels, end)
    checkpoints = [check(cp, obs, sc, end) for cp in run.checkpoints]
    return {
        "run": {
            "run_file": run.source,
            "scenario": sc.name,
            "speed": run.speed,
            "duration_min": round(end / 60.0, 2),
            "station": run.dut.station,
            "source": run.dut.source,
            "readings": len(obs.readings),
            "first_reading_min": None if first is None else round(first / 60.0, 2),
            "warning_events": len(obs.warnings),
        },
        "channels": channels,
        "faults": faults,
        "qc": kinds,
        "false_flags": false_flags,
        "warnings": warnings,
        "unfounded_warnings": unfounded,
        "checkpoints": checkpoints,
        "passed": all(c["passed"] for c in checkpoints)
        and all(w["met"] is not False for w in warnings),
    }
