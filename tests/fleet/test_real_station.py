"""The controller against the real station side of configuration (agent.remote_config).

A station here is the agent's :class:`RemoteConfig` (schema, signature, version and safety checks,
atomic apply) behind a plain MQTT client with the station's certificate.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from agent.remote_config import RemoteConfig
from fleet.errors import DocumentError
from fleet.service import FleetService
from fleet.store import Store
from roadside import signing, wire
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker

EXAMPLE = Path(__file__).resolve().parents[2] / "agent" / "examples" / "sim-station.toml"
NATIONAL = {"warnings": {"rainstorm": {"preset": "national"}}}
UNREACHABLE = {
    "warnings": {"rainstorm": {"levels": {"blue": {"rain_1h": 5000}, "red": {"rain_1h": 9000}}}}
}


@pytest.fixture
def agent_station(broker: MosquittoBroker, fleet_key, tmp_path: Path, wait_for) -> Iterator[Any]:
    base = tomllib.loads(EXAMPLE.read_text())
    station, cell = base["station"]["id"], base["station"]["grid_cell"]
    client = wire.new_client(broker.settings(station), f"agent-{station}")

    def publish_ack(ack: wire.ConfigAck) -> None:
        client.publish(wire.up_topic(station, "cfg_ack"), wire.encode_config_ack(ack), qos=1)

    rc = RemoteConfig(
        station,
        base,
        fleet_key.public_key(),
        tmp_path / "remote-config.json",
        SystemClock(),
        grid_cell=cell,
        base_dir=EXAMPLE.parent,
        publish_ack=publish_ack,
    )
    ready: list[bool] = []

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        c.subscribe([(t, 1) for t in wire.station_subscriptions(station, cell)])
        status = wire.Status(station, "online", SystemClock().now(), grid_cell=cell)
        c.publish(wire.up_topic(station, "status"), wire.encode_status(status), 1, retain=True)
        ready.append(True)

    client.on_connect = on_connect
    client.on_message = lambda _c, _u, msg: rc.handle(msg.topic, msg.payload)
    client.connect(broker.settings(station).host, broker.port)
    client.loop_start()
    wait_for(lambda: bool(ready), what="agent station connected")
    try:
        yield rc
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_agent_applies_a_pushed_document_and_refuses_an_unsafe_one(
    api_client,
    controller: FleetService,
    agent_station: RemoteConfig,
    store: Store,
    fleet_key,
    wait_for,
) -> None:
    assert controller.config is not None
    api = api_client(controller.config)
    station = agent_station.station
    wait_for(lambda: store.station(station) is not None, what="registered")
    good = controller.config.push("fleet", NATIONAL)
    wait_for(lambda: api.get(f"/stations/{station}/config").json()["in_sync"], what="in sync")
    assert agent_station.config.warnings["rainstorm"] == {"preset": "national"}
    assert agent_station.versions()["fleet"] == {"version": good.version, "hash": good.hash}
    cell = store.station(station).grid_cell  # type: ignore[union-attr]
    assert cell == agent_station.grid_cell  # the status told the registry
    # the fleet refuses to sign what the station would refuse ...
    with pytest.raises(DocumentError) as refused:
        controller.config.push(f"grid:{cell}", UNREACHABLE)
    assert refused.value.code == "unsafe"
    assert store.documents(f"grid:{cell}") == []  # nothing signed, nothing sent
    # ... and the station, handed the same body signed anyway, refuses it with the same code
    doc = {
        "c": wire.CONTRACT_VERSION,
        "scope": "grid",
        "target": cell,
        "version": 1,
        "issued": SystemClock().now().isoformat(),
        "body": UNREACHABLE,
    }
    payload = signing.encode_envelope(signing.sign(doc, fleet_key))
    ack = agent_station.handle(wire.grid_config_topic(cell), payload)
    assert ack is not None and not ack.ok
    assert ack.reason.split(":")[0] == refused.value.code
    assert agent_station.config.warnings["rainstorm"] == {"preset": "national"}  # good one kept
