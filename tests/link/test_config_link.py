"""Signed configuration end to end over the real broker: retained, applied, acked, refused."""

from __future__ import annotations

import json
import threading
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from link_helpers import new_buffer

from agent.remote_config import RemoteConfig
from agent.uplink import Uplink, UplinkSettings
from roadside import signing, wire
from roadside.clock import SystemClock
from roadside.testing.sink import CommittingSink
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

EXAMPLE = Path(__file__).resolve().parents[2] / "agent" / "examples" / "sim-station.toml"
ST, CELL = "bs-demo-01", "310113-G042"


def _doc(version: int, body: dict[str, Any], scope: str = "station", target: str = ST) -> dict:
    issued = datetime(2026, 7, 21, tzinfo=UTC).isoformat()
    return {
        "c": "1.0",
        "scope": scope,
        "target": target,
        "version": version,
        "issued": issued,
        "body": body,
    }


def _publish(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    c = wire.new_client(broker.settings(f"{CONTROLLER_IDENTITY}-publisher"), "publisher")
    done = threading.Event()
    c.on_publish = lambda *a: done.set()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=True)
    assert done.wait(5)
    c.disconnect()
    c.loop_stop()


def test_offline_station_gets_newest_retained_document_and_acks(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    key = signing.generate_key()
    fleet = _doc(2, {"warnings": {"rainstorm": {"preset": "national"}}}, "fleet", "")
    station = _doc(5, {"sampling": {"hold_s": 300}})
    # published while the station is offline: retained for it
    _publish(broker, wire.FLEET_CONFIG_TOPIC, signing.encode_envelope(signing.sign(fleet, key)))
    _publish(
        broker, wire.down_topic(ST, "config"), signing.encode_envelope(signing.sign(station, key))
    )

    base = tomllib.loads(EXAMPLE.read_text())
    clock = SystemClock()
    buf = new_buffer(tmp_path / "buf.db")
    holder: dict[str, RemoteConfig] = {}
    uplink = Uplink(
        ST,
        buf,
        broker.settings(ST),
        clock,
        grid_cell=CELL,
        settings=UplinkSettings(backoff_initial_s=0.05, idle_poll_s=0.05),
        on_config=lambda topic, payload: holder["rc"].handle(topic, payload),
        status_fn=lambda: {"remote_config": holder["rc"].versions()},
    )
    rc = RemoteConfig(
        ST,
        base,
        key.public_key(),
        tmp_path / "remote.json",
        clock,
        grid_cell=CELL,
        publish_ack=uplink.publish_config_ack,
        base_dir=EXAMPLE.parent,
    )
    holder["rc"] = rc
    with uplink:
        assert sink.wait_for(lambda: len(sink.config_acks) >= 2, 10)
        acks = {a.scope: a for a in sink.config_acks}
        assert acks["fleet"].ok and acks["fleet"].version == 2
        assert acks[f"station:{ST}"].ok and acks[f"station:{ST}"].version == 5
        assert acks["fleet"].hash == signing.document_hash(fleet)
        assert (
            rc.config.warnings["rainstorm"] == {"preset": "national"}
            and rc.config.sampling.hold_s == 300
        )

        # a forged document (another key) and an older one are refused with the reason
        forged = signing.sign(_doc(6, {"warnings": {"hold_s": 1e6}}), signing.generate_key())
        _publish(broker, wire.down_topic(ST, "config"), signing.encode_envelope(forged))
        assert sink.wait_for(lambda: len(sink.config_acks) >= 3, 10)
        nack = sink.config_acks[-1]
        assert not nack.ok and nack.reason.startswith("bad-signature: ") and nack.version == 6
        older = signing.sign(_doc(4, {"sampling": {"hold_s": 60}}), key)
        _publish(broker, wire.down_topic(ST, "config"), signing.encode_envelope(older))
        assert sink.wait_for(lambda: len(sink.config_acks) >= 4, 10)
        nack = sink.config_acks[-1]
        assert not nack.ok and nack.reason.startswith("older: ") and nack.running_version == 5
        unsigned = json.dumps({"doc": _doc(7, {"sampling": {"hold_s": 60}})}).encode()
        _publish(broker, wire.down_topic(ST, "config"), unsigned)
        assert sink.wait_for(lambda: len(sink.config_acks) >= 5, 10)
        assert sink.config_acks[-1].reason.startswith("unsigned: ")
        unreachable = {"rainstorm": {"levels": {"blue": {"rain_1h": 5000}}}}
        unsafe = signing.sign(_doc(3, {"warnings": unreachable}, "fleet", ""), key)
        _publish(broker, wire.FLEET_CONFIG_TOPIC, signing.encode_envelope(unsafe))
        assert sink.wait_for(lambda: len(sink.config_acks) >= 6, 10)
        nack = sink.config_acks[-1]
        assert nack.scope == "fleet" and nack.reason.startswith("unsafe: ")
        assert "can never be reached" in nack.reason and nack.running_version == 2
        assert rc.config.sampling.hold_s == 300
        assert rc.config.warnings["rainstorm"] == {"preset": "national"}
        time.sleep(0.1)
    # the retained status carried the versions the station runs
    assert sink.wait_for(lambda: ST in sink.statuses, 5)
    assert sink.statuses[ST].remote_config[f"station:{ST}"]["version"] == 5
