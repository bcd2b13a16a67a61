"""A simulator run in its own process (``roadside-sim run``), devices on real pseudo-terminals."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.provisioning.fleet_fixture import Fleet, start_fleet

# Two RTU buses at different settings (9600 8N1 and 19200 8O1, a radar on a non-default address),
# the WindSonic talking at 9600, a WXT polled at 19200 and a Modbus TCP gauge.
SCENARIO = textwrap.dedent(
    """
    [scenario]
    name = "commissioning"
    seed = 4
    start = 2026-07-21T12:00:00Z
    duration_min = 600
    speed = 1

    [storm]
    kind = "dry"

    [wind]
    kind = "gusty"
    mean_ms = 5.0

    [site]
    installation_height_cm = 300.0

    [[buses]]
    name = "rs485-1"
    kind = "rtu"
    baudrate = 9600
    link = "ttyRS485-1"

    [[buses]]
    name = "rs485-3"
    kind = "rtu"
    baudrate = 19200
    parity = "O"
    link = "ttyRS485-3"

    [[buses]]
    name = "rs232-1"
    kind = "ascii"
    baudrate = 9600
    link = "ttyRS232-1"

    [[buses]]
    name = "rs485-2"
    kind = "ascii"
    baudrate = 19200
    link = "ttyRS485-2"

    [[buses]]
    name = "tcp-1"
    kind = "tcp"

    [[devices]]
    name = "rain"
    profile = "dfrobot-sen0575"
    bus = "rs485-1"
    slave = 192

    [[devices]]
    name = "level"
    profile = "hlk-ld8001h"
    bus = "rs485-1"
    slave = 1

    [[devices]]
    name = "anemometer"
    profile = "generic-rs485-anemometer"
    bus = "rs485-1"
    slave = 2

    [[devices]]
    name = "level2"
    profile = "hlk-ld8001h"
    bus = "rs485-3"
    slave = 7

    [[devices]]
    name = "beacon"
    profile = "warning-light"
    bus = "rs485-3"
    slave = 10

    [[devices]]
    name = "wind"
    profile = "gill-windsonic"
    bus = "rs232-1"

    [[devices]]
    name = "weather"
    profile = "vaisala-wxt530"
    bus = "rs485-2"

    [[devices]]
    name = "rain2"
    profile = "generic-rain-gauge"
    bus = "tcp-1"
    slave = 3
    """
)


@dataclass
class SimRun:
    """A running ``roadside-sim run``: its endpoints and state file."""

    proc: subprocess.Popen[str]
    endpoints: dict[str, dict[str, Any]]
    state: Path
    link_dir: Path

    def port(self, device: str) -> str:
        return str(self.endpoints[device]["port"])


@pytest.fixture
def sim_run(tmp_path: Path) -> Iterator[SimRun]:
    scenario = tmp_path / "commissioning.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    link_dir = tmp_path / "links"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", str(scenario), "--link-dir", str(link_dir), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"simulator did not start: {proc.stderr and proc.stderr.read()}")
        doc = json.loads(line)
        yield SimRun(proc, doc["endpoints"], Path(doc["state"]), link_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A fleet: its CA, a real Mosquitto trusting it, the HTTP API (``fleet_fixture``)."""
    f = start_fleet(tmp_path / "fleet")
    try:
        yield f
    finally:
        f.stop()
