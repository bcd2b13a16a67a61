"""`roadside-provision ports`: pyserial's list plus who holds each port (from /proc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import serial

from provisioning.ports import holders, list_ports
from tests.provisioning.conftest import SimRun


def test_ports_shows_which_process_holds_a_port(sim_run: SimRun) -> None:
    path = sim_run.port("wind")
    before = subprocess.run(
        [sys.executable, "-m", "provisioning", "ports", path, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    (entry,) = [p for p in json.loads(before.stdout) if p["device"] == path]
    assert not any(h.startswith(f"{os.getpid()} ") for h in entry["in_use_by"])
    with serial.Serial(path, 9600):
        after = subprocess.run(
            [sys.executable, "-m", "provisioning", "ports", path],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"{os.getpid()} (" in after.stdout
        assert any(h.startswith(f"{os.getpid()} ") for h in holders(path))


def test_missing_extra_path_is_listed_as_missing(tmp_path: Path) -> None:
    (info,) = [p for p in list_ports((str(tmp_path / "ttyX"),)) if p.device.endswith("ttyX")]
    assert info.description == "does not exist" and info.in_use_by == ()
