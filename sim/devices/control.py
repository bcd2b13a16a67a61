"""The control socket of a running simulator: one JSON request per line on a UNIX socket.

Requests: ``{"op": "inject", "device": ..., "kind": ..., "duration_s": ..., "params": {...}}``,
``{"op": "clear", "device": ..., "kind": null}``, ``{"op": "status"}``. Replies are
``{"ok": true, ...}`` or ``{"ok": false, "error": "one line"}``.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim.devices.errors import ControlError, SimDeviceError

if TYPE_CHECKING:
    from sim.station import SimStation

MAX_UNIX_PATH = 100  # sun_path holds 108 bytes; leave room


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    station: SimStation


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(65536)
        try:
            reply = execute(self.server.station, json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            reply = {"ok": False, "error": f"bad control request: {exc}"}
        except SimDeviceError as exc:
            reply = {"ok": False, "error": str(exc)}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


def execute(station: SimStation, req: dict[str, Any]) -> dict[str, Any]:
    """Carry out one control request on ``station``."""
    op = req.get("op")
    if op == "inject":
        station.inject(req["device"], req["kind"], req.get("duration_s"), **req.get("params", {}))
        return {"ok": True, "scenario_time_s": station.scenario_time()}
    if op == "clear":
        return {"ok": True, "cleared": station.clear(req["device"], req.get("kind"))}
    if op == "status":
        return {"ok": True, **station.status()}
    raise ValueError(f"unknown op {op!r}")


class ControlServer:
    """Serves :func:`execute` on a UNIX socket until closed."""

    def __init__(self, station: SimStation, path: Path) -> None:
        if len(str(path)) > MAX_UNIX_PATH:  # too long for a UNIX socket address
            path = Path(tempfile.mkdtemp(prefix="roadside-sim-")) / "control.sock"
        path.unlink(missing_ok=True)
        self.path = path
        self._server = _Server(str(path), _Handler)
        self._server.station = station
        os.chmod(path, 0o600)
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="sim-control",
        ).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def request(path: str | Path, req: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one request to a running simulator; raise :class:`ControlError` on failure."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from None
    try:
        reply: dict[str, Any] = json.loads(data)
    except ValueError:
        raise ControlError(f"control socket {path}: unreadable reply") from None
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "request refused")))
    return reply
