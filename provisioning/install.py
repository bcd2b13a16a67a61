"""Install the station: systemd units, the service user, folders with their permissions.

:func:`plan` is pure: it lists every file to write (path under the root, mode, content or link
target) from the shipped unit ``provisioning/units/roadside-agent.service`` (package data), with
the agent's path and the configuration put in. The service user and its ``dialout`` membership
are a ``sysusers.d`` file and the folders a ``tmpfiles.d`` file, so an image built with ``--root``
gets them at first boot exactly as a live install does. :func:`apply` writes a plan; on a live
system (root ``/``) it then runs ``systemd-sysusers``, ``systemd-tmpfiles`` and ``systemctl
enable``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent / "units"  # package data: ships in the wheel
USER = "roadside"
UNIT = "roadside-agent.service"
ENROLL_SERVICE, ENROLL_TIMER = "roadside-enroll.service", "roadside-enroll.timer"
SHIPPED_AGENT = "/usr/bin/roadside-agent"
SHIPPED_CONFIG = "/etc/roadside/station.toml"


class InstallError(Exception):
    """The install cannot go ahead (missing file, not root for a live install, ...)."""


@dataclass(frozen=True)
class Entry:
    """One thing to put under the root: a file (``text``), a symlink (``link``) or a folder."""

    path: str  # absolute, as on the station
    mode: int = 0o644
    text: str | None = None
    link: str | None = None
    source: Path | None = None  # copy this file


def _enroll_units(provision_bin: str, config: str) -> tuple[str, str]:
    service = f"""# Completes an enrollment left pending by `apply`, then restarts the agent.
[Unit]
Description=Roadside station enrollment (completes when the fleet is first reached)
Wants=network-online.target
After=network-online.target
ConditionPathExists=/etc/roadside/pending-enrollment.json

[Service]
Type=oneshot
ExecStart={provision_bin} enroll --config {config} --pending
ExecStartPost=/bin/systemctl try-restart {UNIT}
"""
    timer = f"""[Unit]
Description=Retry a pending Roadside enrollment until the fleet is reached

[Timer]
OnBootSec=1min
OnUnitInactiveSec=5min
Unit={ENROLL_SERVICE}

[Install]
WantedBy=timers.target
"""
    return service, timer


def plan(
    config: Path,
    *,
    agent_bin: str,
    provision_bin: str,
    user: str = USER,
    enable: bool = True,
    deploy: Path = DEPLOY,
) -> list[Entry]:
    """Everything an install writes, as data."""
    unit_src = deploy / UNIT
    try:
        unit = unit_src.read_text(encoding="utf-8")
    except OSError as exc:
        raise InstallError(f"{unit_src}: cannot read the shipped unit: {exc}") from None
    conf_dir = "/etc/roadside"
    station_conf = f"{conf_dir}/station.toml"
    unit = unit.replace(SHIPPED_AGENT, agent_bin).replace(SHIPPED_CONFIG, station_conf)
    unit = unit.replace("User=roadside", f"User={user}").replace("Group=roadside", f"Group={user}")
    enroll_service, enroll_timer = _enroll_units(provision_bin, station_conf)
    systemd = "/etc/systemd/system"
    entries = [
        Entry(conf_dir, 0o750),
        Entry(station_conf, 0o640, source=Path(config)),
        Entry("/var/lib/roadside", 0o750),
        Entry(f"{systemd}/{UNIT}", 0o644, text=unit),
        Entry(f"{systemd}/{ENROLL_SERVICE}", 0o644, text=enroll_service),
        Entry(f"{systemd}/{ENROLL_TIMER}", 0o644, text=enroll_timer),
        Entry(
            "/usr/lib/sysusers.d/roadside.conf",
            0o644,
            text=(
                "# The Roadside agent's service user, in dialout for the serial ports.\n"
                f'u {user} - "Roadside station agent" /var/lib/roadside\n'
                f"m {user} dialout\n"
            ),
        ),
        Entry(
            "/usr/lib/tmpfiles.d/roadside.conf",
            0o644,
            text=(
                "# Configuration readable by the agent only; state owned by it.\n"
                f"d /etc/roadside 0750 root {user} -\n"
                f"z /etc/roadside/station.toml 0640 root {user} -\n"
                f"z /etc/roadside/station.key 0640 root {user} -\n"
                f"d /var/lib/roadside 0750 {user} {user} -\n"
            ),
        ),
    ]
    for name in ("station.key", "station.crt", "ca.crt", "fleet.pub", "pending-enrollment.json"):
        src = Path(config).parent / name
        if src.exists():
            secret = name in ("station.key", "pending-enrollment.json")
            entries.append(Entry(f"{conf_dir}/{name}", 0o640 if secret else 0o644, source=src))
    if enable:
        entries += [
            Entry(f"{systemd}/multi-user.target.wants/{UNIT}", link=f"../{UNIT}"),
            Entry(f"{systemd}/timers.target.wants/{ENROLL_TIMER}", link=f"../{ENROLL_TIMER}"),
        ]
    return entries


def apply(entries: list[Entry], root: Path) -> list[Path]:
    """Write ``entries`` under ``root``; returns the paths written."""
    written: list[Path] = []
    for e in entries:
        target = Path(root) / e.path.lstrip("/")
        if e.text is None and e.link is None and e.source is None:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(e.mode)
            written.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if e.link is not None:
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to(e.link)
        else:
            tmp = target.with_name(f".{target.name}.tmp")
            if e.source is not None:
                shutil.copyfile(e.source, tmp)
            else:
                tmp.write_text(e.text or "", encoding="utf-8")
            tmp.chmod(e.mode)
            tmp.replace(target)
        written.append(target)
    return written


def activate(root: Path) -> list[str]:
    """On a live system: create the user and folders, reload systemd, enable the units."""
    if os.geteuid() != 0:
        raise InstallError("a live install needs root (or use --root DIR to render into a folder)")
    done = []
    steps = [
        ["systemd-sysusers", str(root / "usr/lib/sysusers.d/roadside.conf")],
        ["systemd-tmpfiles", "--create", str(root / "usr/lib/tmpfiles.d/roadside.conf")],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", UNIT, ENROLL_TIMER],
    ]
    for cmd in steps:
        if shutil.which(cmd[0]) is None:
            raise InstallError(f"{cmd[0]}: not found (is this a systemd system?)")
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise InstallError(f"{' '.join(cmd)}: {out.stderr.strip() or out.returncode}")
        done.append(" ".join(cmd))
    return done
