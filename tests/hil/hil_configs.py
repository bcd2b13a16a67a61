"""Driver configurations for the HIL tests (a module of its own: conftest names clash)."""

from __future__ import annotations

from drivers.bus import DeviceConfig
from drivers.profile import load_profile
from sim.station import SimStation


def dut_configs(station: SimStation, ports: dict[str, str], interval_s: float = 1.0) -> list:
    """Driver configurations for the station's devices; ``ports`` maps a bus to the DUT's end."""
    return [
        DeviceConfig(
            name,
            load_profile(ep.profile),
            ports.get(ep.bus, ep.port),
            slave=ep.slave,
            interval_s=interval_s,
        )
        for name, ep in station.endpoints.items()
    ]
