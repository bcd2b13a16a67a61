"""Issue 9 (9): replay protection that survives the loss of any one file, and documents nested
200,000 deep answered with a refusal instead of a RecursionError — on the station's real
configuration handler and its real state files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ruff: noqa: F811
import pytest
from test_remote_config import STATION, base, doc, key, make, payload  # noqa: F401  (fixtures)

from roadside import wire

TOPIC = wire.down_topic(STATION, "config")
BODY = {"sampling": {"hold_s": 600}}


def _apply_two_versions(tmp_path: Path, base: dict, key: Any) -> tuple[bytes, bytes]:
    old = payload(doc(1, BODY), key)
    new = payload(doc(2, {"sampling": {"hold_s": 900}}), key)
    rc = make(tmp_path, base, key)
    assert rc.handle(TOPIC, old).ok and rc.handle(TOPIC, new).ok
    return old, new


@pytest.mark.parametrize("lost", ["remote.json", "remote.versions.json"])
def test_an_old_document_is_refused_after_losing_any_one_state_file(
    tmp_path: Path, base: dict, key: Any, lost: str
) -> None:
    old, new = _apply_two_versions(tmp_path, base, key)
    assert {p.name for p in tmp_path.iterdir()} >= {"remote.json", "remote.versions.json"}
    (tmp_path / lost).unlink()
    rc = make(tmp_path, base, key)  # the station restarts
    replay = rc.handle(TOPIC, old)  # a captured older document, correctly signed
    assert replay is not None and not replay.ok and replay.reason.startswith("older:"), replay
    same = rc.handle(TOPIC, new)  # the newest one comes back (retained) and runs again
    assert same is not None and same.ok
    other = payload(doc(2, {"sampling": {"hold_s": 1200}}), key)
    assert not rc.handle(TOPIC, other).ok  # same version, other content
    assert rc.handle(TOPIC, payload(doc(3, BODY), key)).ok


def test_a_document_nested_200000_deep_gets_an_answer(tmp_path: Path, base: dict, key) -> None:
    rc = make(tmp_path, base, key)
    bomb = b'{"doc":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    ack = rc.handle(TOPIC, bomb)
    assert ack is not None and not ack.ok and ack.reason.startswith("malformed:"), ack
    deep: dict = {"x": 1}
    for _ in range(40):
        deep = {"a": deep}
    signed = payload(doc(1, {"qc": deep}), key)  # validly signed, but absurdly deep
    ack = rc.handle(TOPIC, signed)
    assert ack is not None and not ack.ok and "deeper than" in ack.reason
    huge = payload(doc(1, {"qc": {"x": "y" * 600_000}}), key)
    ack = rc.handle(TOPIC, huge)
    assert ack is not None and not ack.ok and "over" in ack.reason
    assert rc.handle(TOPIC, payload(doc(1, BODY), key)).ok  # and it still works
