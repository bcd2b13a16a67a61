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
from fleet.service import FleetService
from fleet.store import Store
from roadside import wire
from roadside.clock import SystemClock
from roadside.testing.broker import MosquittoBroker

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
        status = wire.Status(station, "online", SystemClock().now(), health={"grid_cell": cell})
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
    api_client, controller: FleetService, agent_station: RemoteConfig, store: Store, wait_for
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
    bad = controller.config.push(f"grid:{cell}", UNREACHABLE)

    def grid_state() -> dict:
        scopes = api.get(f"/stations/{station}/config").json()["scopes"]
        return next((s for s in scopes if s["scope"] == f"grid:{cell}"), {})

    wait_for(lambda: grid_state().get("state") == "nacked", what="nack")
    assert grid_state()["desired_version"] == bad.version
    assert grid_state()["reason"].startswith("unsafe")
    assert agent_station.config.warnings["rainstorm"] == {"preset": "national"}  # good one kept
