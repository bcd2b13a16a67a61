"""The four commands: one exit-code table (README = roadside.exitcodes), and no traceback for a
user's mistake — each case named in issue 8 item 7, run as a user runs it."""

from __future__ import annotations

import importlib
import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from roadside import exitcodes
from roadside.testing.fixtures import broker, pki  # noqa: F401
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY, TestPKI

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

STATION = """
version = "1"
[station]
id = "st-1"
lat = 31.4
lon = 121.4
grid_cell = "G1"
[[sensors]]
name = "s"
profile = "{profile}"
port = "/dev/ttyUSB0"
[buffer]
path = "buffer.db"
max_mb = {max_mb}
{extra}
"""


ENTRY = {
    "roadside-agent": "agent.cli",
    "roadside-fleet": "fleet.cli",
    "roadside-provision": "provisioning.cli",
    "roadside-sim": "sim.cli",
}


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_process(*args: str, timeout: float = 60) -> Ran:
    """Run an installed command in its own process, as a user would."""
    cmd, *rest = args
    out = subprocess.run([str(BIN / cmd), *rest], capture_output=True, text=True, timeout=timeout)
    return Ran(out.returncode, out.stdout, out.stderr)


def cli(*args: str, cwd: Path | None = None) -> Ran:
    """Run a command's click entry point in this process (an escaping exception counts as a
    traceback: click would print one)."""
    cmd, *rest = args
    main = importlib.import_module(ENTRY[cmd]).main
    old = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        result = CliRunner().invoke(main, rest)
    finally:
        os.chdir(old)
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    stderr = result.stderr + ("Traceback (escaped exception)\n" if escaped else "")
    return Ran(result.exit_code, result.stdout, stderr)


def one_line(out: Ran, code: int, *needles: str) -> None:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_the_readme_table_is_the_code_table() -> None:
    rows = re.findall(r"^\| (\d) \| ([^|]+) \|", (ROOT / "README.md").read_text(), re.M)
    assert {int(code): text.strip() for code, text in rows} == {
        **exitcodes.EXIT_CODES,
        1: "runtime failure (device, broker, database, disk, port taken)",
        2: "bad usage or input (options, configuration, profile, scenario, key file, "
        "document body)",
    }
    assert set(exitcodes.EXIT_CODES) == {0, 1, 2, 3, 4, 5, 6, 7}


def test_fleet_run_with_a_bad_pem_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    db = f"sqlite:///{tmp_path / 'f.db'}"
    args = ("--ca", str(bad), "--cert", str(bad), "--key", str(bad), "--db", db, "--http", "off")
    one_line(run_process("roadside-fleet", "run", *args), 2, "bad.pem", "PEM")
    signing = ("--signing-key", str(bad))
    one_line(cli("roadside-fleet", "run", *args, *signing), 2, "bad.pem", "signing key")


def test_fleet_run_with_its_http_port_taken(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811
    pki: TestPKI,  # noqa: F811
) -> None:
    files = pki.client(CONTROLLER_IDENTITY)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_process(
            "roadside-fleet", "run", "--db", f"sqlite:///{tmp_path / 'f.db'}",
            "--broker", f"127.0.0.1:{broker.port}", "--ca", str(files.ca),
            "--cert", str(files.cert), "--key", str(files.key), "--http", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert out.returncode == exitcodes.FAILURE, out.stderr
    assert "Traceback" not in out.stderr
    assert f"--http 127.0.0.1:{port}: cannot listen" in out.stderr


def test_a_read_only_fleet_command_never_creates_a_database(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    one_line(cli("roadside-fleet", "stations", "--db", f"sqlite:///{db}"), 1, "no fleet database")
    assert not db.exists()


def test_sim_demo_with_an_unknown_or_broken_scenario(tmp_path: Path) -> None:
    one_line(cli("roadside-sim", "demo", "--scenario", "no-such-storm"), 2, "unknown scenario")
    broken = tmp_path / "broken.toml"
    broken.write_text("[scenario\n")
    one_line(cli("roadside-sim", "demo", "--scenario", str(broken)), 2, "broken.toml", "TOML")


def _station(tmp_path: Path, profile: str = "dfrobot-sen0575", max_mb: str = "8",
             extra: str = "") -> Path:  # fmt: skip
    path = tmp_path / "station.toml"
    path.write_text(STATION.format(profile=profile, max_mb=max_mb, extra=extra))
    return path


def check(path: Path, cwd: Path | None = None) -> Ran:
    return cli("roadside-agent", "check-config", str(path), cwd=cwd)


def test_check_config_refuses_bad_profile_files_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "adir.toml").mkdir()
    one_line(check(_station(tmp_path, "adir.toml")), 2, "sensors[0].profile", "is a directory")
    (tmp_path / "latin1.toml").write_bytes(b'[device]\nmodel = "caf\xe9"\n')
    one_line(check(_station(tmp_path, "latin1.toml")), 2, "latin1.toml", "not UTF-8")
    if os.geteuid() != 0:  # root reads anything
        unreadable = tmp_path / "secret.toml"
        unreadable.write_text("[device]\n")
        unreadable.chmod(0)
        one_line(check(_station(tmp_path, "secret.toml")), 2, "secret.toml", "cannot read")


def test_an_ascii_field_the_driver_does_not_know_is_refused_when_the_profile_loads(
    tmp_path: Path,
) -> None:
    shipped = (ROOT / "drivers" / "profiles" / "gill-windsonic.toml").read_text()
    assert 'field = "speed"' in shipped
    (tmp_path / "ws.toml").write_text(shipped.replace('field = "speed"', 'field = "velocity"'))
    one_line(check(_station(tmp_path, "ws.toml")), 2, "velocity", "windsonic driver")


def test_max_mb_inf_and_the_uplink_table_are_validated_in_full(tmp_path: Path) -> None:
    one_line(check(_station(tmp_path, max_mb="inf")), 2, "buffer.max_mb")
    for f in ("ca.pem", "st.pem", "st.key"):
        (tmp_path / f).write_text("x")
    tls = 'host = "fleet"\nca = "ca.pem"\ncert = "st.pem"\nkey = "st.key"\n'
    many = _station(tmp_path, extra=f'[uplink]\n{tls}batch_size = "many"\n')
    one_line(check(many), 2, "uplink.batch_size")
    unknown = _station(tmp_path, extra=f"[uplink]\n{tls}bach_size = 10\n")
    one_line(check(unknown), 2, "uplink.bach_size", "unknown key")
    missing = _station(tmp_path, extra='[uplink]\nhost = "fleet"\nca = "nope.pem"\n'
                       'cert = "st.pem"\nkey = "st.key"\n')  # fmt: skip
    one_line(check(missing), 2, "uplink.ca", "nope.pem")
    good = _station(tmp_path, extra=f"[uplink]\n{tls}batch_size = 100\n")
    assert check(good).returncode == 0


def test_a_relative_profile_path_resolves_from_the_configuration_folder(tmp_path: Path) -> None:
    shipped = (ROOT / "drivers" / "profiles" / "dfrobot-sen0575.toml").read_text()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "gauge.toml").write_text(shipped)
    path = _station(tmp_path, "profiles/gauge.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = check(path, cwd=elsewhere)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("command", ["roadside-agent", "roadside-fleet", "roadside-provision",
                                     "roadside-sim"])  # fmt: skip
def test_bad_usage_is_exit_code_2(command: str) -> None:
    out = cli(command, "--no-such-option")
    assert out.returncode == exitcodes.USAGE and "Traceback" not in out.stderr
