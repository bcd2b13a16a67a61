"""`roadside-provision read`: live readings from the simulated station; every user mistake is one
line and its own exit code, in process (CliRunner) and in a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from provisioning.cli import main
from provisioning.read import (
    EXIT_BAD_PROFILE,
    EXIT_NO_READING,
    EXIT_PORT_MISSING,
    EXIT_PORT_PERMISSION,
    EXIT_PORT_UNUSABLE,
    EXIT_UNKNOWN_PROFILE,
)


def read(*args: str):
    return CliRunner().invoke(main, ["read", *args])


def one_error_line(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_reads_a_modbus_rtu_device(station, clock):
    clock.advance(600)
    ep = station.endpoints["rain"]
    args = ["--port", ep.port, "--profile", "dfrobot-sen0575", "--slave", "192"]
    result = read(*args, "--count", "2", "--interval", "0.1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 6  # three channels, two polls
    total = next(ln for ln in lines if "rain_total" in ln).split()
    assert total[1:4] == ["rain_total", "6", "mm"] and total[-1] == "ok"
    assert total[4] == "raw=60000"


def test_json_lines_from_a_tcp_device(station, clock):
    clock.advance(600)
    ep = station.endpoints["gauge"]
    result = read("--port", ep.port, "--profile", "generic-rain-gauge", "--count", "1", "--json")
    assert result.exit_code == 0, result.output
    docs = [json.loads(ln) for ln in result.output.splitlines()]
    assert {d["channel"] for d in docs} == {"rain_total", "rain_intensity"}
    total = next(d for d in docs if d["channel"] == "rain_total")
    assert total == {**total, "value": 6.0, "unit": "mm", "raw": 60, "status": "ok"}
    assert total["time"].endswith("Z")


def test_reads_an_ascii_device(station):
    ep = station.endpoints["wxt"]
    result = read("--port", ep.port, "--profile", "vaisala-wxt530", "--count", "1", "--json")
    assert result.exit_code == 0, result.output
    assert {json.loads(ln)["status"] for ln in result.output.splitlines()} == {"ok"}


def test_unknown_profile():
    line = one_error_line(read("--port", "/dev/null", "--profile", "nope"), EXIT_UNKNOWN_PROFILE)
    assert "unknown profile 'nope'" in line and "dfrobot-sen0575" in line


def test_missing_profile_file(tmp_path):
    result = read("--port", "/dev/null", "--profile", str(tmp_path / "gone.toml"))
    assert "gone.toml" in one_error_line(result, EXIT_UNKNOWN_PROFILE)


def test_malformed_profile_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.toml"
    text = Path("drivers/profiles/generic-rain-gauge.toml").read_text()
    bad.write_text(text.replace("register = 0x0001", "register = -4"))
    line = one_error_line(read("--port", "/dev/null", "--profile", str(bad)), EXIT_BAD_PROFILE)
    assert "bad.toml" in line and "channels[1].register" in line


def test_missing_port(tmp_path):
    result = read("--port", str(tmp_path / "ttyUSB9"), "--profile", "hlk-ld8001h")
    assert "ttyUSB9: port does not exist" in one_error_line(result, EXIT_PORT_MISSING)


def test_a_file_that_is_not_a_port(tmp_path):
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    result = read("--port", str(plain), "--profile", "hlk-ld8001h")
    assert "notes.txt: cannot open" in one_error_line(result, EXIT_PORT_UNUSABLE)


def test_refused_tcp_endpoint():
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = read("--port", f"tcp://127.0.0.1:{port}", "--profile", "generic-rain-gauge")
    assert f"tcp://127.0.0.1:{port}" in one_error_line(result, EXIT_PORT_UNUSABLE)


def test_a_silent_device_is_one_line_and_exit_1(station):
    station.inject("level", "no_answer")
    ep = station.endpoints["level"]
    args = ["--port", ep.port, "--profile", "hlk-ld8001h", "--count", "2", "--timeout", "0.1"]
    result = read(*args, "--interval", "0.1")
    assert result.exit_code == EXIT_NO_READING
    assert result.output.count("timeout") == 4 + 1  # two polls of two channels, then the error
    assert result.output.strip().splitlines()[-1].startswith("Error: ")


def run_cli(*args: str, user: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(user or []), sys.executable, "-m", "provisioning", "read", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")


def test_subprocess_reads_and_fails_cleanly(station, tmp_path):
    ep = station.endpoints["anemo"]
    ok = run_cli("--port", ep.port, "--profile", "generic-rs485-anemometer", "--count", "1")
    assert ok.returncode == 0, ok.stderr
    assert "wind_speed" in ok.stdout and ok.stderr == ""
    missing = run_cli("--port", str(tmp_path / "nope"), "--profile", "generic-rs485-anemometer")
    assert missing.returncode == EXIT_PORT_MISSING
    assert missing.stderr.strip().count("\n") == 0 and "Traceback" not in missing.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop")
def test_port_without_permission(station):
    """The pty is root's (mode 620): an ordinary user may not open it."""
    pty = os.path.realpath(station.endpoints["rain"].port)
    where = Path(tempfile.mkdtemp())  # a directory the user can reach, holding a link to it
    try:
        where.chmod(0o755)
        link = where / "ttyUSB0"
        link.symlink_to(pty)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run(
            [*nobody, sys.executable, "-c", "import provisioning"], capture_output=True, cwd="/"
        )
        if probe.returncode != 0:  # e.g. a checkout under a 0700 temporary directory
            pytest.skip("the checkout is not readable by an unprivileged user")
        result = run_cli("--port", str(link), "--profile", "dfrobot-sen0575", user=nobody)
    finally:
        shutil.rmtree(where)
    assert result.returncode == EXIT_PORT_PERMISSION, result.stderr
    assert result.stderr.strip() == f"Error: {link}: permission denied (need read and write access)"
