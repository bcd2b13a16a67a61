"""The tail every simulated station's configuration shares: its street point, a broker uplink with
a throw-away CA's files, the buffer and no metrics port (the demo and the HIL runner write it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TAIL = """\
[site]
drain_capacity_mmh = {site.drain_capacity_mmh}
catchment_m2 = {site.catchment_m2}
pond_area_m2 = {site.pond_area_m2}
runoff_coeff = {site.runoff_coeff}

[uplink]
host = "127.0.0.1"
port = {broker_port}
ca = "{ca}"
cert = "{cert}"
key = "{key}"
fleet_key = "{fleet_key}"

[buffer]
path = "{buffer}"

[metrics]
port = 0

[time]
sync_check = "none"
"""


def station_tail(
    site: Any, broker_port: int, ca: Path, cert: Path, key: Path, fleet_key: Path, buffer: Path
) -> str:
    """``[site]``, ``[uplink]``, ``[buffer]``, ``[metrics]`` and ``[time]`` for a sim station."""
    return TAIL.format(
        site=site, broker_port=broker_port, ca=ca, cert=cert, key=key, fleet_key=fleet_key,
        buffer=buffer,
    )  # fmt: skip
