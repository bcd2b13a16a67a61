"""`roadside-provision install --root`: a folder an image is built from, checked by systemd."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.commission import Site, render_config, write_config


def _config(tmp: Path) -> Path:
    sensors = [{"name": "level", "profile": "hlk-ld8001h", "port": "/dev/ttyUSB0", "slave": 1}]
    text = render_config(
        Site("bs-inst-01", 31.3, 121.4, "G1"),
        sensors,
        version="1",
        buffer_path="/var/lib/roadside/buffer.db",
    )
    path = tmp / "src" / "station.toml"
    write_config(path, text)
    return path


def _install(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "provisioning",
            "install",
            "--config",
            str(_config(tmp)),
            "--root",
            str(tmp / "root"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_install_root_renders_units_user_folders_and_enables(tmp_path: Path) -> None:
    out = _install(tmp_path)
    assert out.returncode == 0, out.stderr
    root = tmp_path / "root"
    unit = (root / "etc/systemd/system/roadside-agent.service").read_text()
    assert "ExecStart=" in unit and " run --config /etc/roadside/station.toml" in unit
    assert _mode(root / "etc/roadside") == 0o750
    assert _mode(root / "etc/roadside/station.toml") == 0o640
    assert _mode(root / "var/lib/roadside") == 0o750
    sysusers = (root / "usr/lib/sysusers.d/roadside.conf").read_text()
    assert "u roadside -" in sysusers and "m roadside dialout" in sysusers
    wants = root / "etc/systemd/system/multi-user.target.wants/roadside-agent.service"
    assert os.readlink(wants) == "../roadside-agent.service"
    assert (root / "etc/systemd/system/timers.target.wants/roadside-enroll.timer").is_symlink()


def test_no_enable_leaves_the_service_disabled(tmp_path: Path) -> None:
    assert _install(tmp_path, "--no-enable").returncode == 0
    assert not (tmp_path / "root/etc/systemd/system/multi-user.target.wants").exists()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_rendered_units(tmp_path: Path) -> None:
    assert _install(tmp_path).returncode == 0
    units = tmp_path / "root/etc/systemd/system"
    for name in ("roadside-agent.service", "roadside-enroll.service", "roadside-enroll.timer"):
        out = subprocess.run(
            ["systemd-analyze", "verify", str(units / name)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=units,
        )
        assert out.returncode == 0, (name, out.stderr)
        assert "Unknown key" not in out.stderr, out.stderr


def test_bad_configuration_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "1"\n')
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "provisioning",
            "install",
            "--config",
            str(bad),
            "--root",
            str(tmp_path / "root"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "bad.toml: key station" in out.stderr
    assert not (tmp_path / "root").exists()
