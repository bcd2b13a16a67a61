"""Station side of signed configuration: every refusal has its reason; bad never replaces good."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config import StationConfig
from agent.errors import ConfigError
from agent.remote_config import RemoteConfig, deep_merge, write_atomically
from roadside import signing, wire
from roadside.clock import ManualClock

EXAMPLE = Path(__file__).resolve().parents[2] / "agent" / "examples" / "sim-station.toml"
STATION, CELL = "bs-demo-01", "310113-G042"
ISSUED = datetime(2026, 7, 21, 12, 0, tzinfo=UTC).isoformat()


@pytest.fixture
def key() -> Any:
    return signing.generate_key()


@pytest.fixture
def base() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def doc(version: int, body: dict[str, Any], scope: str = "station", target: str = STATION) -> dict:
    return {
        "c": "1.0",
        "scope": scope,
        "target": target,
        "version": version,
        "issued": ISSUED,
        "body": body,
    }


def payload(d: dict[str, Any], key: Any) -> bytes:
    return signing.encode_envelope(signing.sign(d, key))


def make(tmp_path: Path, base: dict, key: Any, **kw: Any) -> RemoteConfig:
    return RemoteConfig(
        STATION,
        base,
        key.public_key(),
        tmp_path / "remote.json",
        ManualClock(),
        grid_cell=CELL,
        base_dir=EXAMPLE.parent,
        **kw,
    )


ST_TOPIC = wire.down_topic(STATION, "config")
UNREACHABLE = {"rainstorm": {"levels": {"blue": {"rain_1h": 5000}, "red": {"rain_1h": 9000}}}}
NATIONAL = {"rainstorm": {"preset": "national"}}
SHANGHAI = {"rainstorm": {"preset": "shanghai"}}
BODY = {"warnings": NATIONAL, "sampling": {"hold_s": 600}}


def test_valid_document_is_applied_persisted_and_acked(tmp_path: Path, base, key) -> None:
    applied: list[StationConfig] = []
    sent: list[wire.ConfigAck] = []
    rc = make(tmp_path, base, key, apply=applied.append, publish_ack=sent.append)
    d = doc(1, BODY)
    ack = rc.handle(ST_TOPIC, payload(d, key))
    assert ack is not None and ack.ok and ack.reason == ""
    assert (ack.scope, ack.version, ack.hash) == (f"station:{STATION}", 1, signing.document_hash(d))
    assert sent == [ack]
    assert applied[-1].warnings["rainstorm"] == {"preset": "national"}
    assert applied[-1].sampling.hold_s == 600
    # a fresh process (restart) runs the same documents, re-verified from disk
    again = make(tmp_path, base, key)
    assert again.config.warnings["rainstorm"] == {"preset": "national"}
    assert again.versions() == {f"station:{STATION}": {"version": 1, "hash": ack.hash}}
    # the retained document redelivered on reconnect is acknowledged again, not re-applied
    n = len(applied)
    assert rc.handle(ST_TOPIC, payload(d, key)).ok  # type: ignore[union-attr]
    assert len(applied) == n


def test_scopes_merge_fleet_then_grid_then_station(tmp_path: Path, base, key) -> None:
    rc = make(tmp_path, base, key)
    fleet = doc(4, {"warnings": {**NATIONAL, "release_fraction": 0.8}}, "fleet", "")
    grid = doc(2, {"warnings": SHANGHAI}, "grid", CELL)
    assert rc.handle(wire.FLEET_CONFIG_TOPIC, payload(fleet, key)).ok  # type: ignore[union-attr]
    assert rc.handle(wire.grid_config_topic(CELL), payload(grid, key)).ok  # type: ignore[union-attr]
    assert rc.config.warnings == {"hold_s": 1800, **SHANGHAI, "release_fraction": 0.8}
    # another cell's document is not ours: no answer, nothing changes
    other = doc(9, {"warnings": NATIONAL}, "grid", "OTHER")
    assert rc.handle(wire.grid_config_topic("OTHER"), payload(other, key)) is None
    assert rc.config.warnings["rainstorm"] == {"preset": "shanghai"}


def _nack(rc: RemoteConfig, topic: str, data: bytes) -> wire.ConfigAck:
    ack = rc.handle(topic, data)
    assert ack is not None and not ack.ok
    return ack


def test_refusals_carry_code_version_hash_and_keep_the_good_document(
    tmp_path: Path, base, key
) -> None:
    applied: list[StationConfig] = []
    rc = make(tmp_path, base, key, apply=applied.append)
    good = doc(3, BODY)
    assert rc.handle(ST_TOPIC, payload(good, key)).ok  # type: ignore[union-attr]
    state_before = (tmp_path / "remote.json").read_bytes()
    other_key = signing.generate_key()

    cases = {
        "malformed": b"not json at all",
        "unsigned": json.dumps({"doc": doc(4, BODY)}).encode(),
        "bad-signature": payload(doc(4, BODY), other_key),
        "older": payload(doc(2, {"warnings": SHANGHAI}), key),
        "unsafe": payload(doc(5, {"warnings": UNREACHABLE}), key),
        "schema": payload(doc(6, {"buffer": {"max_mb": 1}}), key),
        "contract": payload({**doc(7, BODY), "c": "2.0"}, key),
        "scope": payload(doc(8, BODY, "station", "someone-else"), key),
    }
    for code, data in cases.items():
        ack = _nack(rc, ST_TOPIC, data)
        assert ack.reason.startswith(f"{code}: "), (code, ack.reason)
        assert ack.running_version == 3
        assert code in wire.NACK_CODES
    # tampered: a valid envelope with its document changed after signing
    env = signing.sign(doc(9, BODY), key)
    env["doc"]["body"] = {"warnings": UNREACHABLE}
    ack = _nack(rc, ST_TOPIC, signing.encode_envelope(env))
    assert ack.reason.startswith("bad-signature: ") and ack.version == 9
    assert ack.hash == signing.document_hash(env["doc"])
    # same version, other content
    ack = _nack(rc, ST_TOPIC, payload(doc(3, {"warnings": SHANGHAI}), key))
    assert ack.reason == "older: version 3 is already running with different content"
    # nothing replaced the good one: not in memory, not on disk, not in what was applied
    assert rc.versions()[f"station:{STATION}"]["version"] == 3
    assert rc.config.warnings["rainstorm"] == {"preset": "national"}
    assert (tmp_path / "remote.json").read_bytes() == state_before
    assert len(applied) == 1


def test_unsafe_negative_threshold_and_invalid_resulting_config(tmp_path: Path, base, key) -> None:
    rc = make(tmp_path, base, key)
    negative = {"rainstorm": {"levels": {"blue": {"rain_1h": -5}}}}
    ack = _nack(rc, ST_TOPIC, payload(doc(1, {"warnings": negative}), key))
    assert ack.reason == "unsafe: warnings.rainstorm.blue.rain_1h: threshold -5.0 is not positive"
    ack = _nack(rc, ST_TOPIC, payload(doc(1, {"warnings": {"enabled": False}}), key))
    assert ack.reason.startswith("schema: ") and "warnings.enabled: unknown key" in ack.reason
    ack = _nack(rc, ST_TOPIC, payload(doc(1, {"sampling": {"hold_s": "soon"}}), key))
    assert ack.reason.startswith("schema: ") and "sampling" in ack.reason


def test_failed_apply_restores_previous_state(tmp_path: Path, base, key) -> None:
    calls = {"n": 0}

    def apply(cfg: StationConfig) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("QC engine rejected the parameters")

    rc = make(tmp_path, base, key, apply=apply)
    assert rc.handle(ST_TOPIC, payload(doc(1, BODY), key)).ok  # type: ignore[union-attr]
    before = (tmp_path / "remote.json").read_bytes()
    ack = _nack(rc, ST_TOPIC, payload(doc(2, {"warnings": SHANGHAI}), key))
    assert ack.reason == "apply: RuntimeError: QC engine rejected the parameters"
    assert (tmp_path / "remote.json").read_bytes() == before
    assert rc.versions()[f"station:{STATION}"]["version"] == 1


def test_tampered_state_file_is_not_trusted_at_start(tmp_path: Path, base, key) -> None:
    rc = make(tmp_path, base, key)
    assert rc.handle(ST_TOPIC, payload(doc(1, BODY), key)).ok  # type: ignore[union-attr]
    state = json.loads((tmp_path / "remote.json").read_text())
    state["documents"][f"station:{STATION}"]["doc"]["body"]["warnings"] = UNREACHABLE
    (tmp_path / "remote.json").write_text(json.dumps(state))
    again = make(tmp_path, base, key)
    assert again.versions() == {}
    assert again.config.warnings == {"hold_s": 1800, **SHANGHAI}  # back to the local file


def test_write_atomically_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    write_atomically(target, b"one")
    write_atomically(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_deep_merge_overrides_leaves_and_keeps_siblings() -> None:
    base = {"a": {"x": 1, "y": {"p": 1}}, "b": 2}
    assert deep_merge(base, {"a": {"y": {"q": 2}}}) == {
        "a": {"x": 1, "y": {"p": 1, "q": 2}},
        "b": 2,
    }
    assert base == {"a": {"x": 1, "y": {"p": 1}}, "b": 2}


def test_for_station_reads_key_and_base_from_the_station_file(tmp_path: Path, key) -> None:
    from agent.config import load_config

    signing.save_public_key(key.public_key(), tmp_path / "fleet-signing.pub")
    text = (
        EXAMPLE.read_text()
        .replace("[uplink]", '[uplink]\nfleet_key = "fleet-signing.pub"', 1)
        .replace("${ROADSIDE_STATE_DIR:-/tmp/roadside-agent}", str(tmp_path / "state"))
    )
    (tmp_path / "station.toml").write_text(text)
    cfg = load_config(tmp_path / "station.toml")
    rc = RemoteConfig.for_station(cfg, ManualClock())
    assert rc is not None and rc.grid_cell == CELL
    assert rc.handle(ST_TOPIC, payload(doc(1, BODY), key)).ok  # type: ignore[union-attr]
    assert (tmp_path / "state" / "remote-config.json").exists()
    (tmp_path / "fleet-signing.pub").write_text("garbage")
    with pytest.raises(ConfigError, match=r"uplink\.fleet_key"):
        RemoteConfig.for_station(cfg, ManualClock())
    without = load_config(EXAMPLE)
    assert RemoteConfig.for_station(without, ManualClock()) is None


def test_canary_copy_of_a_fleet_or_own_grid_document_on_the_station_topic_applies(
    tmp_path: Path, base, key
) -> None:
    """Staged rollouts deliver fleet/grid documents to canaries on their own station topic."""
    rc = make(tmp_path, base, key)
    fleet_ack = rc.handle(ST_TOPIC, payload(doc(4, BODY, "fleet", ""), key))
    assert fleet_ack is not None and fleet_ack.ok and fleet_ack.scope == "fleet"
    grid_ack = rc.handle(ST_TOPIC, payload(doc(2, BODY, "grid", CELL), key))
    assert grid_ack is not None and grid_ack.ok and grid_ack.scope == f"grid:{CELL}"
    assert rc.versions()["fleet"]["version"] == 4
    other = _nack(rc, ST_TOPIC, payload(doc(3, BODY, "grid", "310113-G999"), key))
    assert other.reason.startswith("scope: ")
    # a station document still cannot arrive on the fleet-wide topic
    wrong = _nack(rc, wire.FLEET_CONFIG_TOPIC, payload(doc(5, BODY), key))
    assert wrong.reason.startswith("scope: ")
