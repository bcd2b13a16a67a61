"""The shipped broker configuration on a real Mosquitto: who may say and hear what."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from roadside import signing, wire
from roadside.testing.sink import CommittingSink
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

A, B = "st-a", "st-b"


class Probe:
    """A connected client with one identity that records what it hears and what the broker says."""

    def __init__(self, broker: MosquittoBroker, identity: str, client_id: str | None = None):
        self.client = wire.new_client(broker.settings(identity), client_id or identity)
        self.messages: list[mqtt.MQTTMessage] = []
        self.suback: list[Any] = []
        self.puback: dict[int, Any] = {}
        self.ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: self.ready.set()
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.suback.extend(codes)
        self.client.on_publish = lambda c, u, mid, rc, p: self.puback.__setitem__(mid, rc)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.ready.wait(5), f"{identity} could not connect"

    def subscribe(self, topic: str) -> Any:
        n = len(self.suback)
        self.client.subscribe(topic, qos=1)
        _wait(lambda: len(self.suback) > n)
        return self.suback[n]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> Any:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        _wait(lambda: info.mid in self.puback)
        return self.puback[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(pred: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pred(), "timed out"


@pytest.fixture
def probes(broker: MosquittoBroker):
    made: list[Probe] = []

    def make(identity: str, client_id: str | None = None) -> Probe:
        made.append(Probe(broker, identity, client_id))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_station_cannot_publish_as_another(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink, probes
) -> None:
    a = probes(A)
    batch = wire.encode_batch(wire.Batch(B, "live", ()))
    rc = a.publish(wire.up_topic(B, "data"), batch)
    assert rc.is_failure and rc.value == 135  # "Not authorized" in the PUBACK
    # its own topic works, and a payload claiming to be B on A's topic is not stored as B
    assert not a.publish(wire.up_topic(A, "status"), b"{}").is_failure
    a.publish(wire.up_topic(A, "data"), batch)
    time.sleep(0.3)
    assert sink.count(B) == 0 and sink.count(A) == 0
    # nor may a station forge downlink: acks for itself or configuration for everyone
    assert a.publish(wire.down_topic(A, "ack"), b"{}").is_failure
    assert a.publish(wire.FLEET_CONFIG_TOPIC, b"{}", retain=True).is_failure


def test_station_cannot_read_another_stations_config_or_uplink(
    broker: MosquittoBroker, probes
) -> None:
    ctl = probes(CONTROLLER_IDENTITY, "ctl")
    key = signing.generate_key()
    doc = {"c": "1.0", "scope": "station", "target": B, "version": 1, "issued": "x", "body": {}}
    secret = signing.encode_envelope(signing.sign(doc, key))
    assert not ctl.publish(wire.down_topic(B, "config"), secret, retain=True).is_failure
    assert not ctl.publish(wire.FLEET_CONFIG_TOPIC, b"fleet-doc", retain=True).is_failure

    a = probes(A)
    # refused at SUBSCRIBE (dynamic-security plugin), and nothing of B's is delivered either
    assert a.subscribe(wire.down_topic(B, "config")).is_failure
    assert a.subscribe("roadside/v1/st/+/down/#").is_failure
    assert a.subscribe(f"$share/fleet/{wire.PREFIX}/st/+/up/#").is_failure
    assert not a.subscribe(wire.FLEET_CONFIG_TOPIC).is_failure
    assert not a.subscribe(wire.down_topic(A, "config")).is_failure
    b = probes(B)
    b.publish(wire.up_topic(B, "data"), b"b-private")
    b_got = b.subscribe(wire.down_topic(B, "config"))
    assert not b_got.is_failure
    _wait(lambda: any(m.topic == wire.down_topic(B, "config") for m in b.messages))
    time.sleep(0.3)
    heard = {m.topic for m in a.messages}
    assert heard == {wire.FLEET_CONFIG_TOPIC}  # fleet-wide only; nothing of B's


def test_certificate_from_another_ca_is_refused(broker: MosquittoBroker) -> None:
    files = broker.pki.foreign_client(A)
    settings = wire.BrokerSettings("127.0.0.1", broker.port, broker.pki.ca, files.cert, files.key)
    client = wire.new_client(settings, A)
    refused = False
    try:
        client.connect("127.0.0.1", broker.port)
        for _ in range(50):
            if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                refused = True
                break
        refused = refused or not client.is_connected()
    except OSError:  # the TLS handshake fails
        refused = True
    assert refused
