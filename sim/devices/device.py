"""A simulated device's physics: channel values from the scenario truth, by channel name.

One :class:`SimDevice` per device, whatever its protocol: it knows its profile, its power state
(power-on time, rain counter base), its writable settings and its faults, and answers "what do you
measure at scenario second t". Protocol front ends (Modbus, WindSonic, WXT) encode the answer.
"""

from __future__ import annotations

import math
import random
import threading

from drivers.profile import Profile, RegisterField
from sim.devices.faults import VALUE_KINDS, Fault, FaultBoard, apply_value_faults
from sim.spec import DeviceSpec, SiteSpec, Truth, TruthSample

RADAR_NOISE_MM = 5.0  # +-5 mm (HLK-LD8001H datasheet accuracy)
DEFAULT_SETTINGS = {"window_hours": 1}


class SimDevice:
    """One device on a bus: measures the truth, carries faults, keeps power and settings state."""

    def __init__(
        self,
        spec: DeviceSpec,
        profile: Profile,
        truth: Truth,
        site: SiteSpec,
        seed: int,
        faults: FaultBoard | None = None,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.profile = profile
        self.slave = profile.serial.default_slave if spec.slave is None else spec.slave
        self.truth = truth
        self.site = site
        self.seed = f"{seed}:{spec.name}"
        self.faults = faults or FaultBoard()
        self.rng = random.Random(self.seed)
        self.tip_mm = 0.01 if profile.device.protocol == "wxt" else 0.1
        writable = [c for c in profile.modbus_channels if c.writable]
        self.settings = {s.name: self._initial(s) for s in [*profile.settings, *writable]}
        self.coils = [False] * 16 if profile.device.kind == "actuator" else []
        self._lock = threading.RLock()
        self._on_at = 0.0  # scenario second of the last power-on
        self._rain_from = 0.0  # scenario second the rain counter last started
        self._start_mm = 0.0  # counter value at that moment

    def _initial(self, field: RegisterField) -> int:
        if field.name == "installation_height":
            return round(self.site.installation_height_cm / field.scale)
        return DEFAULT_SETTINGS.get(field.name, 0)

    # -- state ---------------------------------------------------------------------------------
    def power_cycle(self, t_s: float, start_mm: float = 0.0) -> None:
        """Power off and on at ``t_s``: counters restart (from ``start_mm``), uptime from 0."""
        with self._lock:
            self._on_at = self._rain_from = t_s
            self._start_mm = start_mm

    def reset_rain(self, t_s: float) -> None:
        """Restart the rain counter only (WXT ``0XZRU``)."""
        with self._lock:
            self._rain_from, self._start_mm = t_s, 0.0

    def tick(self, t_s: float) -> None:
        """Fire one-shot faults whose time has come (counter resets)."""
        for f in self.faults.due_once("counter_reset", t_s):
            self.power_cycle(f.start_s, f.number("start_mm", 0.0))

    @property
    def height_mm(self) -> float:
        """The installation height the device is configured with (its writable setting); the
        distance it measures depends on where it is really mounted (the site's height)."""
        for s in self.profile.settings:
            if s.name == "installation_height":
                return self.settings[s.name] * s.scale * 10.0
        return self.site.installation_height_cm * 10.0

    # -- measuring -----------------------------------------------------------------------------
    def truth_at(self, t_s: float) -> TruthSample:
        return self.truth.sample(min(max(t_s, 0.0), self.truth.duration_s))

    def rain_since_start(self, t_s: float) -> float:
        """Rain the gauge has registered since its counter started, in whole tips (mm)."""
        with self._lock:
            t0, start = self._rain_from, self._start_mm
        acc = self.truth_at(t_s).rain_total_mm - self.truth_at(t0).rain_total_mm
        return start + math.floor(max(0.0, acc) / self.tip_mm + 1e-9) * self.tip_mm

    def rain_duration_s(self, t_s: float, step_s: float = 10.0) -> float:
        """Seconds with rain since the counter started (WXT ``Rd``), at ``step_s`` resolution."""
        with self._lock:
            t0 = self._rain_from
        n = int(max(0.0, t_s - t0) // step_s)
        return sum(
            step_s for k in range(n) if self.truth_at(t0 + k * step_s).rain_intensity_mmh > 0
        )

    def measure(self, t_s: float) -> dict[str, float]:
        """What the device measures at ``t_s`` for each of its profile channels (no faults)."""
        s = self.truth_at(t_s)
        names = [c.name for c in self.profile.channels]
        out: dict[str, float] = {}
        for ch in names:
            if ch == "rain_total":
                out[ch] = self.rain_since_start(t_s)
            elif ch == "tip_count":
                out[ch] = round(self.rain_since_start(t_s) / self.tip_mm)
            elif ch == "uptime":
                out[ch] = math.floor(max(0.0, t_s - self._on_at) / 60.0)
            elif ch == "rain_intensity":
                out[ch] = s.rain_intensity_mmh
            elif ch == "wind_speed":
                out[ch] = s.wind_speed_ms
            elif ch == "wind_dir":
                out[ch] = s.wind_dir_deg % 360.0
            elif ch == "wind_gust":
                out[ch] = s.wind_gust_ms
            elif ch == "water_distance":
                noise = random.Random(f"{self.seed}:{int(t_s)}").uniform(-1, 1) * RADAR_NOISE_MM
                out[ch] = self.site.installation_height_cm * 10.0 - s.water_depth_mm + noise
            elif ch == "water_depth" and "water_distance" not in names:
                out[ch] = s.water_depth_mm
        return out

    def values(self, t_s: float) -> dict[str, float]:
        """Channel values at ``t_s`` as the device reports them, value faults applied."""
        self.tick(t_s)
        active = [f for f in self.faults.active(t_s) if f.kind in VALUE_KINDS]
        raw = self.measure(t_s)
        if active:
            at_start = {id(f): self.measure(f.start_s) for f in active if f.kind == "stuck"}
            raw = apply_value_faults(raw, active, t_s, at_start, self.seed)
        if "water_distance" in raw:  # the radar derives level from its own (faulty) distance
            raw["water_depth"] = self.height_mm - raw["water_distance"]
        return raw

    def frame_faults(self, t_s: float) -> list[Fault]:
        """Faults active at ``t_s`` that change what goes on the wire."""
        self.tick(t_s)
        return [f for f in self.faults.active(t_s) if f.kind not in VALUE_KINDS]
