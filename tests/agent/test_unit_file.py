"""The systemd unit: notify type, watchdog, dedicated user in dialout, hardening."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parents[2] / "provisioning" / "units" / "roadside-agent.service"


def keys() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_declares_the_service_contract() -> None:
    k = keys()
    assert k["Type"] == ["notify"]
    assert int(k["WatchdogSec"][0]) > 0
    assert k["ExecStart"][0].split()[1:3] == ["run", "--config"]
    assert "dialout" in k["SupplementaryGroups"][0].split()
    assert k["User"] != ["root"]
    assert k["ProtectSystem"] == ["strict"]
    assert "/var/lib/roadside" in k["ReadWritePaths"][0]
    for hardening in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert k[hardening] == ["yes"], hardening
    assert k["Restart"] == ["always"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    unit = tmp_path / "roadside-agent.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/roadside-agent", "/bin/true"))
    out = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "Unknown key" not in out.stderr, out.stderr
