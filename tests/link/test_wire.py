"""The wire contract: topics, batch codecs, version refusal, acks, status and signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from roadside import signing, wire

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


def _records(n: int, start_seq: int = 1) -> tuple[wire.WireRecord, ...]:
    return tuple(
        wire.WireRecord(
            seq=start_seq + i,
            kind="reading",
            time=T0 + timedelta(minutes=i),
            sensor="rain",
            channel="rain_total",
            value=round(0.1 * i, 4),
            unit="mm",
            raw=i,
            status="ok",
            flag=0,
        )
        for i in range(n)
    )


def test_topics_follow_the_contract_and_parse_back() -> None:
    assert wire.up_topic("st-001", "data") == "roadside/v1/st/st-001/up/data"
    assert wire.down_topic("st-001", "ack") == "roadside/v1/st/st-001/down/ack"
    assert wire.grid_config_topic("g12") == "roadside/v1/grid/g12/down/config"
    assert wire.FLEET_CONFIG_TOPIC == "roadside/v1/fleet/down/config"
    assert wire.FLEET_UPLINK_SUBSCRIPTION == "$share/fleet/roadside/v1/st/+/up/#"
    assert wire.parse_topic("roadside/v1/st/st-001/up/events") == wire.Topic(
        "st", "st-001", "up", "events"
    )
    assert wire.parse_topic(wire.grid_config_topic("g12")).target == "g12"
    assert wire.parse_topic(wire.FLEET_CONFIG_TOPIC).scope == "fleet"
    with pytest.raises(wire.ContractVersionError, match="v2"):
        wire.parse_topic("roadside/v2/st/st-001/up/data")
    with pytest.raises(wire.WireError, match="does not follow"):
        wire.parse_topic("roadside/v1/st/st-001/up/nonsense")


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "x" * 65, "-lead"])
def test_station_ids_that_would_break_topics_are_refused(bad: str) -> None:
    with pytest.raises(wire.WireError, match="station id"):
        wire.up_topic(bad, "data")


@pytest.mark.parametrize("codec", wire.CODECS)
def test_batch_round_trips_in_every_codec_and_decoding_is_self_describing(codec: str) -> None:
    batch = wire.Batch("st-001", "backlog", _records(50), sent=T0)
    data = wire.encode_batch(batch, codec)  # type: ignore[arg-type]
    back = wire.decode_batch(data)
    assert back == batch
    assert (back.first_seq, back.last_seq) == (1, 50)


def test_default_codec_is_much_smaller_than_plain_json() -> None:
    batch = wire.Batch("st-001", "live", _records(500))
    plain = len(wire.encode_batch(batch, "json"))
    packed = len(wire.encode_batch(batch))
    assert packed * 5 < plain


def test_batch_with_unknown_major_version_is_refused_with_reason() -> None:
    batch = wire.Batch("st-001", "live", _records(3), contract="2.0")
    data = wire.encode_batch(batch)
    with pytest.raises(wire.ContractVersionError, match=r"2\.0 refused: this side speaks 1\.0"):
        wire.decode_batch(data)
    # a newer minor of a major we speak is accepted
    newer = wire.encode_batch(wire.Batch("st-001", "live", _records(3), contract="1.7"))
    assert wire.decode_batch(newer).contract == "1.7"


def test_out_of_order_or_garbled_batches_are_refused() -> None:
    recs = _records(3)
    with pytest.raises(wire.WireError, match="ascending"):
        wire.encode_batch(wire.Batch("st-001", "live", (recs[1], recs[0])))
    with pytest.raises(wire.WireError, match="undecodable"):
        wire.decode_batch(b"\x28\xb5\x2f\xfdgarbage")
    doc = json.loads(wire.encode_batch(wire.Batch("st-001", "live", recs), "json"))
    doc["last"] = 99
    with pytest.raises(wire.WireError, match=r"header says 1\.\.99"):
        wire.decode_batch(json.dumps(doc).encode())


def test_negotiation_picks_highest_shared_version() -> None:
    assert wire.negotiate(["1.0", "2.3"], ours=("1.2", "2.1")) == "2.1"
    assert wire.negotiate(["1.5"], ours=("1.2",)) == "1.2"
    assert wire.negotiate(["3.0", "junk"], ours=("1.0",)) is None


def test_ack_ranges_round_trip() -> None:
    ranges = wire.seq_ranges([5, 1, 2, 3, 7, 8, 3])
    assert ranges == ((1, 3), (5, 5), (7, 8))
    ack = wire.Ack("st-001", ranges, lane="live")
    back = wire.decode_ack(wire.encode_ack(ack))
    assert back == ack
    assert back.seqs() == [1, 2, 3, 5, 7, 8]


def test_status_and_config_ack_round_trip() -> None:
    st = wire.Status(
        "st-001",
        "online",
        T0,
        software="0.1.0",
        config_version="3",
        config_hash="ab",
        model_version="m1",
        health={"backlog": 4},
        remote_config={"fleet": {"version": 2, "hash": "x"}},
    )
    assert wire.decode_status(wire.encode_status(st)) == st
    ack = wire.ConfigAck(
        "st-001", False, "fleet", 4, "cd", reason="older", running_version=5, time=T0
    )
    assert wire.decode_config_ack(wire.encode_config_ack(ack)) == ack
    with pytest.raises(wire.ContractVersionError):
        wire.decode_status(json.dumps({"c": "9.0", "st": "x", "state": "online"}).encode())


def test_signature_verifies_and_every_tampering_is_named() -> None:
    key, other = signing.generate_key(), signing.generate_key()
    doc = {"scope": "fleet", "version": 3, "body": {"warnings": {"preset": "shanghai"}}}
    env = signing.sign(doc, key)
    published = signing.decode_envelope(signing.encode_envelope(env))
    assert signing.verify(published, key.public_key()) == doc
    with pytest.raises(signing.SignatureError, match="unsigned"):
        signing.verify({"doc": doc}, key.public_key())
    with pytest.raises(signing.SignatureError, match="expected"):
        signing.verify(signing.sign(doc, other), key.public_key())
    tampered = {**env, "doc": {**doc, "version": 4}}
    with pytest.raises(signing.SignatureError, match="tampered"):
        signing.verify(tampered, key.public_key())
    with pytest.raises(signing.SignatureError, match="not a signed"):
        signing.verify([1, 2], key.public_key())
    # key order does not change the canonical bytes, so not the hash either
    assert signing.document_hash({"b": 1, "a": 2}) == signing.document_hash({"a": 2, "b": 1})


def test_key_files_round_trip(tmp_path) -> None:
    key = signing.generate_key()
    signing.save_private_key(key, tmp_path / "k.pem")
    signing.save_public_key(key.public_key(), tmp_path / "k.pub")
    env = signing.sign({"v": 1}, signing.load_private_key(tmp_path / "k.pem"))
    assert signing.verify(env, signing.load_public_key(tmp_path / "k.pub")) == {"v": 1}
    with pytest.raises(signing.SignatureError, match=r"k\.pub"):
        signing.load_private_key(tmp_path / "k.pub")
