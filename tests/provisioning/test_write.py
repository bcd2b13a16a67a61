"""`roadside-provision write` on the simulator: the level sensor's installation height."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from tests.provisioning.conftest import SimRun


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioning", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _depths(port: str) -> list[float]:
    out = _cli(
        "read",
        "--port",
        port,
        "--profile",
        "hlk-ld8001h",
        "--slave",
        "1",
        "--count",
        "3",
        "--interval",
        "0.1",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = [json.loads(line) for line in out.stdout.splitlines()]
    return [r["value"] for r in rows if r["channel"] == "water_depth" and r["status"] == "ok"]


def test_write_installation_height_changes_the_readings(sim_run: SimRun) -> None:
    port = sim_run.port("level")
    before = statistics.median(_depths(port))
    assert abs(before) < 20  # dry road, datum at the road surface (height 300 cm)
    out = _cli(
        "write",
        port,
        "installation_height",
        "250",
        "--profile",
        "hlk-ld8001h",
        "--slave",
        "1",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "setting": "installation_height",
        "unit": "cm",
        "before": 300.0,
        "wanted": 250.0,
        "after": 250.0,
    }
    after = statistics.median(_depths(port))
    assert abs((after - before) - (-500.0)) < 20  # the datum moved 50 cm up: depth reads -0.5 m


def test_write_refuses_what_the_profile_does_not_declare(sim_run: SimRun) -> None:
    port = sim_run.port("level")
    out = _cli("write", port, "water_depth", "5", "--profile", "hlk-ld8001h", "--slave", "1")
    assert out.returncode == 2
    assert "no writable setting 'water_depth' (writable: installation_height)" in out.stderr
    out = _cli("write", port, "installation_height", "9000", "--profile", "hlk-ld8001h")
    assert out.returncode == 2 and "outside 15.0..4000.0" in out.stderr
    out = _cli("write", sim_run.port("wind"), "speed", "1", "--profile", "gill-windsonic")
    assert out.returncode == 2 and "has no writable settings" in out.stderr
    out = _cli("write", port, "installation_height", "250", "--profile", "no-such-thing")
    assert out.returncode == 3
    assert len(out.stderr.strip().splitlines()) == 1
