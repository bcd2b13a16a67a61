"""Pure parts of configuration: scopes, signing, desired state, rollout state machine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleet.documents import (
    Scope,
    build_document,
    check_body,
    desired_documents,
    parse_scope,
    scope_status,
)
from fleet.errors import DocumentError
from fleet.rollout import advance
from fleet.store import ConfigReport, Document, Rollout
from roadside import signing, wire

T0 = 1_784_635_200.0


def test_scopes_parse_and_name_their_topics() -> None:
    assert parse_scope("fleet").topic == wire.FLEET_CONFIG_TOPIC
    assert parse_scope("grid:c7").topic == wire.grid_config_topic("c7")
    assert parse_scope("station:st-1").topic == wire.down_topic("st-1", "config")
    assert parse_scope("station:st-1").key == "station:st-1"
    for bad in ("", "fleet:x", "grid:", "grid:a/b", "region:x"):
        with pytest.raises(DocumentError, match="scope"):
            parse_scope(bad)


def test_body_sections_are_checked() -> None:
    assert check_body({"qc": {"max_gap_s": 600}}) == {"qc": {"max_gap_s": 600}}
    with pytest.raises(DocumentError, match="cannot be set remotely"):
        check_body({"uplink": {"host": "evil"}})
    with pytest.raises(DocumentError, match="expected an object"):
        check_body({"qc": 3})
    with pytest.raises(DocumentError, match="non-empty"):
        check_body({})
    with pytest.raises(DocumentError, match="not a finite number") as nan:
        check_body({"qc": {"max_gap_s": float("nan")}})
    assert nan.value.code == "schema"
    with pytest.raises(DocumentError, match="unknown key") as unknown:
        check_body({"warnings": {"rainstorm": {"blue_1h_mm": 20}}})  # the old API example
    assert unknown.value.code == "schema"
    with pytest.raises(DocumentError, match="can never be reached") as unsafe:
        check_body({"warnings": {"rainstorm": {"levels": {"blue": {"rain_1h": 5000}}}}})
    assert unsafe.value.code == "unsafe"


def test_signed_document_verifies_and_its_hash_is_the_station_hash(fleet_key) -> None:
    issued = datetime(2026, 7, 21, tzinfo=UTC)
    envelope, digest = build_document(
        Scope("grid", "c7"), 3, {"qc": {"max_gap_s": 600}}, issued, fleet_key
    )
    doc = signing.verify(envelope, fleet_key.public_key())
    assert (doc["scope"], doc["target"], doc["version"]) == ("grid", "c7", 3)
    assert digest == signing.document_hash(doc)
    envelope["doc"]["version"] = 4
    with pytest.raises(signing.SignatureError):
        signing.verify(envelope, fleet_key.public_key())


def _doc(scope: str, version: int) -> Document:
    return Document(scope, version, f"{scope}-{version}", T0, {"doc": {}})


def _rollout(state: str, canaries=("a",), released=False, version=2) -> Rollout:
    return Rollout("r", "fleet", version, "canary", canaries, state, "", T0, T0,
                   {"released": released})  # fmt: skip


def test_desired_is_the_newest_version_released_to_the_station() -> None:
    docs = [_doc("fleet", 1), _doc("fleet", 2), _doc("grid:c1", 1), _doc("station:b", 1)]
    staged = [_rollout("canary")]
    assert desired_documents("a", "c1", docs, staged)["fleet"].version == 2  # a canary
    assert desired_documents("b", None, docs, staged)["fleet"].version == 1  # not yet
    assert set(desired_documents("b", None, docs, staged)) == {"fleet", "station:b"}
    released = [_rollout("rolling", released=True)]
    assert desired_documents("b", "c1", docs, released)["fleet"].version == 2


def _report(station: str, version: int, result: str, reason: str = "") -> ConfigReport:
    return ConfigReport(station, "fleet", version, "h", result, reason, T0)


def test_scope_status_states() -> None:
    d = _doc("fleet", 2)
    assert scope_status(d, None, "fleet").state == "pending"
    assert scope_status(d, _report("a", 1, "ack"), "fleet").state == "pending"
    assert scope_status(d, _report("a", 2, "ack"), "fleet").state == "in_sync"
    assert scope_status(d, _report("a", 2, "nack", "unsafe"), "fleet").state == "nacked"
    assert scope_status(None, None, "fleet").state == "in_sync"


def test_rollout_state_machine() -> None:
    r = _rollout("canary", canaries=("a", "b"))
    targets = ["a", "b", "c"]
    assert advance(r, {"a": _report("a", 2, "ack")}, targets, T0 + 1, 60) == r  # b still out
    both = {"a": _report("a", 2, "ack"), "b": _report("b", 2, "ack")}
    rolling = advance(r, both, targets, T0 + 2, 60)
    assert rolling.state == "rolling" and rolling.extra["released"] is True
    assert advance(rolling, both, targets, T0 + 3, 60) == rolling  # c still out
    done = advance(rolling, {**both, "c": _report("c", 3, "ack")}, targets, T0 + 4, 60)
    assert done.state == "done"  # c already runs something newer
    halted = advance(r, {"b": _report("b", 2, "nack", "unsafe: never warns")}, targets, T0, 60)
    assert halted.state == "halted"
    assert halted.reason == "b refused version 2: unsafe: never warns"
    late = advance(r, {}, targets, T0 + 61, 60)
    assert late.state == "halted" and "did not answer within 60 s: a, b" in late.reason
    stale_nack = {"a": _report("a", 1, "nack"), "b": _report("b", 2, "ack")}
    assert advance(r, stale_nack, targets, T0, 60).state == "canary"  # old nack is not this one
    assert advance(halted, both, targets, T0, 60) is halted  # halted stays halted
