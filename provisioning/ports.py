"""Serial ports on this machine: USB identity and which process holds each one.

:func:`list_ports` joins pyserial's port list (USB vendor, product, serial number) with
:func:`holders`, which finds processes with the port open by reading ``/proc/*/fd`` (only the
processes this user may inspect: run as root to see all).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from serial.tools import list_ports as pyserial_ports


@dataclass(frozen=True)
class PortInfo:
    device: str
    description: str = ""
    vid: str | None = None  # USB vendor id, 4 hex digits
    pid: str | None = None  # USB product id
    serial_number: str | None = None
    manufacturer: str | None = None
    product: str | None = None
    in_use_by: tuple[str, ...] = ()  # "pid (command)" of each process holding it open

    def as_dict(self) -> dict[str, object]:
        doc = asdict(self)
        doc["in_use_by"] = list(self.in_use_by)
        return doc


def holders(device: str, proc: Path = Path("/proc")) -> tuple[str, ...]:
    """``"pid (command)"`` of every visible process with ``device`` open."""
    try:
        target = os.path.realpath(device)
    except OSError:
        return ()
    out: list[str] = []
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    out.append(f"{entry.name} ({_command(entry)})")
                    break
            except OSError:
                continue
    return tuple(out)


def _command(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return "?"


def list_ports(extra: tuple[str, ...] = ()) -> list[PortInfo]:
    """Every serial port pyserial knows, plus ``extra`` paths (pty links, adapters by id)."""
    out: list[PortInfo] = []
    seen: set[str] = set()
    for p in sorted(pyserial_ports.comports(), key=lambda p: p.device):
        seen.add(os.path.realpath(p.device))
        out.append(
            PortInfo(
                p.device,
                p.description if p.description != "n/a" else "",
                None if p.vid is None else f"{p.vid:04x}",
                None if p.pid is None else f"{p.pid:04x}",
                p.serial_number,
                p.manufacturer,
                p.product,
                holders(p.device),
            )
        )
    for path in extra:
        if os.path.realpath(path) in seen:
            continue
        if not os.path.exists(path):
            out.append(PortInfo(path, "does not exist"))
            continue
        out.append(PortInfo(path, f"-> {os.path.realpath(path)}", in_use_by=holders(path)))
    return out
