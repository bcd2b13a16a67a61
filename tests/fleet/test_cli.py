"""roadside-fleet commands: keygen, stations, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fleet.cli import main
from fleet.store import StationUpdate, open_store
from roadside import signing


def test_keygen_writes_a_usable_pair_and_refuses_to_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["keygen", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    key = signing.load_private_key(Path(out["private"]))
    pub = signing.load_public_key(Path(out["public"]))
    assert signing.key_id(pub) == signing.key_id(key.public_key()) == out["key_id"]
    assert Path(out["private"]).stat().st_mode & 0o077 == 0
    again = runner.invoke(main, ["keygen", str(tmp_path)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert "Traceback" not in again.output


def test_stations_lists_the_registry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    store = open_store(url)
    store.update_station(StationUpdate("st-001", seen=1.0e9, online=True, software="1.0"))
    store.close()
    result = CliRunner().invoke(main, ["stations", "--db", url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["software"] == "1.0"
    text = CliRunner().invoke(main, ["stations", "--db", url]).output
    assert "st-001" in text and "online" in text


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_db = runner.invoke(main, ["stations", "--db", "mysql://x"])
    assert bad_db.exit_code == 1 and "expected sqlite" in bad_db.output
    missing = tmp_path / "nope.pem"
    run = runner.invoke(
        main,
        ["run", "--db", f"sqlite:///{tmp_path / 'f.db'}", "--ca", str(missing),
         "--cert", str(missing), "--key", str(missing), "--http", "off"],
    )  # fmt: skip
    assert run.exit_code == 1 and f"broker TLS file {missing} does not exist" in run.output
    port = runner.invoke(main, ["run", "--broker", "host:99999", "--ca", "a", "--cert", "b",
                                "--key", "c"])  # fmt: skip
    assert port.exit_code == 2 and "port out of range" in port.output
    key = runner.invoke(
        main,
        ["run", "--db", f"sqlite:///{tmp_path / 'f.db'}", "--ca", "a", "--cert", "b", "--key",
         "c", "--signing-key", str(missing)],
    )  # fmt: skip
    assert key.exit_code == 2 and str(missing) in key.output and "Traceback" not in key.output


def test_push_without_a_controller_or_with_a_bad_file_is_one_line(tmp_path: Path) -> None:
    from sim.broker import free_port

    body = tmp_path / "b.json"
    body.write_text('{"warnings": {}}')
    down = CliRunner().invoke(
        main,
        ["push", "fleet", str(body), "--api", f"http://127.0.0.1:{free_port()}", "--token", "t"],
    )
    assert down.exit_code == 1 and down.output.startswith("Error: --api http://127.0.0.1:")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    broken = CliRunner().invoke(main, ["push", "fleet", str(bad), "--token", "t"])
    assert broken.exit_code == 1 and "not a JSON document" in broken.output
