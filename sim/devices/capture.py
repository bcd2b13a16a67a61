"""Capture a serial bus's traffic to a file, and read it back.

A capture is JSON lines: a header naming the bus (its :class:`~sim.spec.BusSpec` fields), then one
line per chunk of bytes, ``{"t": real seconds since the capture began, "s": scenario seconds,
"dir": "rx" | "tx", "hex": "..."}``. ``rx`` is what the master (driver, gateway) sent to the bus,
``tx`` what the devices answered. :mod:`sim.devices.replay` serves a capture as a device again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sim.devices.errors import CaptureError
from sim.spec import BusSpec

FORMAT = "roadside-capture/1"
Direction = Literal["rx", "tx"]


@dataclass(frozen=True)
class Chunk:
    """Bytes seen on the line at ``t`` real seconds (``s`` scenario seconds) after the start."""

    t: float
    s: float
    dir: Direction
    data: bytes


@dataclass(frozen=True)
class Capture:
    """A loaded capture: the bus it was taken on and its chunks in time order."""

    bus: BusSpec
    chunks: tuple[Chunk, ...]
    source: str = ""


class CaptureWriter:
    """Appends chunks to a capture file as they happen (thread-safe, flushed per line)."""

    def __init__(self, path: Path, bus: BusSpec, now_s: Callable[[], float]) -> None:
        self.path = Path(path)
        self.now_s = now_s
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            raise CaptureError(f"{self.path}: cannot write capture: {exc.strerror}") from None
        head = {"format": FORMAT, "bus": asdict(bus), "started": time.time()}
        self._out.write(json.dumps(head) + "\n")
        self._out.flush()

    def record(self, direction: Direction, data: bytes) -> None:
        """One chunk seen now."""
        line = {
            "t": round(time.monotonic() - self._t0, 6),
            "s": round(self.now_s(), 3),
            "dir": direction,
            "hex": data.hex(),
        }
        with self._lock:
            if not self._out.closed:
                self._out.write(json.dumps(line) + "\n")
                self._out.flush()

    def close(self) -> None:
        with self._lock:
            self._out.close()


def load_capture(path: Path) -> Capture:
    """Read a capture file; :class:`CaptureError` names the file and line of what is wrong."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptureError(f"{path}: cannot read capture: {exc}") from None
    if not lines:
        raise CaptureError(f"{path}: empty file, not a capture")
    head = _json(path, 1, lines[0])
    if head.get("format") != FORMAT:
        raise CaptureError(f"{path}: line 1: not a capture (format {head.get('format')!r})")
    try:
        bus = BusSpec(**head["bus"])
    except (KeyError, TypeError) as exc:
        raise CaptureError(f"{path}: line 1: bad bus description: {exc}") from None
    chunks = []
    for n, text in enumerate(lines[1:], start=2):
        doc = _json(path, n, text)
        try:
            direction = doc["dir"]
            if direction not in ("rx", "tx"):
                raise ValueError(f"dir must be rx or tx, got {direction!r}")
            chunks.append(
                Chunk(float(doc["t"]), float(doc["s"]), direction, bytes.fromhex(doc["hex"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CaptureError(f"{path}: line {n}: bad chunk: {exc}") from None
    return Capture(bus, tuple(chunks), str(path))


def _json(path: Path, n: int, text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CaptureError(f"{path}: line {n}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CaptureError(f"{path}: line {n}: expected a JSON object")
    return doc
