"""Issue 9 (2) and (3) on the real Mosquitto with the shipped configuration: a station is refused
at SUBSCRIBE outside its own topics (``$share`` included) and cannot black-hole the controller's
uplinks; the client id is the certificate's CN, so nobody takes over another's session; each
controller process has its own identity and they share the load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleet.loadgen import StationClient, readings
from fleet.service import FleetService
from fleet.store import Store, open_store
from roadside import wire
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

A, B = "st-a", "st-b"
T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


class Client:
    """A raw MQTT v5 client with one certificate and any client id it likes."""

    def __init__(self, broker: MosquittoBroker, identity: str, client_id: str, *, clean=True):
        self.client = wire.new_client(broker.settings(identity), client_id)
        self.connected = threading.Event()
        self.drops = 0
        self.suback: list[Any] = []
        self.messages: list[str] = []
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_disconnect = self._dropped
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.suback.extend(codes)
        self.client.on_message = lambda c, u, m: self.messages.append(m.topic)
        props = None if clean else wire.connect_properties(broker.settings(identity))
        self.client.connect("127.0.0.1", broker.port, clean_start=clean, properties=props)
        self.client.loop_start()
        assert self.connected.wait(10), f"{identity} could not connect"

    def _dropped(self, *_: Any) -> None:
        self.connected.clear()
        self.drops += 1

    def subscribe(self, topic: str) -> Any:
        n = len(self.suback)
        self.client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 10
        while len(self.suback) <= n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.suback) > n, f"no SUBACK for {topic}"
        return self.suback[n]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(broker: MosquittoBroker) -> Iterator[Any]:
    made: list[Client] = []

    def make(identity: str, client_id: str | None = None, **kw: Any) -> Client:
        made.append(Client(broker, identity, client_id or identity, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def fleet_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    yield s
    s.close()


def test_a_station_is_refused_at_subscribe_outside_its_own_topics(broker, clients) -> None:
    a = clients(A)
    for topic in (
        wire.FLEET_UPLINK_SUBSCRIPTION,  # the controller's share: the black hole of finding 2
        f"$share/other/{wire.PREFIX}/st/+/up/#",
        f"$share/fleet/{wire.PREFIX}/st/{A}/down/#",  # even its own topic, shared
        wire.down_topic(B, "config"),
        wire.up_topic(B, "data"),
        f"{wire.PREFIX}/st/+/down/#",
        f"{wire.PREFIX}/st/+/up/#",
        "#",
        "$SYS/#",
        "$CONTROL/dynamic-security/v1",
    ):
        code = a.subscribe(topic)
        assert code.is_failure and code.value == 135, (topic, code)  # Not authorized
    for topic in wire.station_subscriptions(A, "cell-7"):
        assert not a.subscribe(topic).is_failure, topic


def test_stations_in_the_share_cannot_black_hole_the_fleet(
    broker: MosquittoBroker, clients, fleet_store: Store
) -> None:
    # three persistent attacker sessions try to join the share, then leave (on main they kept
    # taking their share of every station's uplink, delivered to nobody)
    for n in range(3):
        c = clients(A, f"{A}-{n}", clean=False)
        assert c.subscribe(wire.FLEET_UPLINK_SUBSCRIPTION).is_failure
        c.close()
    with FleetService(
        fleet_store, SystemClock(), broker.settings(CONTROLLER_IDENTITY), None, tick_s=0.2
    ) as ctl:
        # a long ack timeout: no resend can hide a message lost to an attacker's share
        b = StationClient(broker.settings(B), B, ack_timeout_s=120).start()
        try:
            for i in range(20):
                b.send(readings(1 + 10 * i, 10, T0))
            assert b.drain(60), "uplink messages went missing"
        finally:
            b.stop()
        assert ctl.worker.stats.snapshot()["inserted"] == 200
    assert fleet_store.seqs(B) == list(range(1, 201))


def test_client_id_takeover_is_impossible(
    broker: MosquittoBroker, clients, fleet_store: Store
) -> None:
    with FleetService(
        fleet_store, SystemClock(), broker.settings(CONTROLLER_IDENTITY), None, tick_s=0.2,
        client_id=CONTROLLER_IDENTITY,
    ) as ctl:  # fmt: skip
        b = StationClient(broker.settings(B), B, ack_timeout_s=120).start()
        drops: list[Any] = []
        b.client.on_disconnect = lambda *a: drops.append(a)
        try:
            gone = threading.Event()
            ctl.client.on_disconnect = lambda *a: gone.set()
            # station A claims the controller's client id, then B's
            for victim in (CONTROLLER_IDENTITY, "fleet-controller-1", B, f"sim-{B}"):
                c = clients(A, victim)
                assert c.connected.is_set()
            time.sleep(1.0)  # any takeover has happened by now (the broker acts at CONNECT)
            assert not gone.is_set(), "the controller was kicked off"
            assert not drops, "station B was kicked off"
            for i in range(5):
                b.send(readings(1 + 10 * i, 10, T0))
            assert b.drain(60)
        finally:
            b.stop()
        assert ctl.connected
    assert "as st-a" in broker.log and "Client fleet-controller already connected" not in broker.log


def test_each_controller_process_has_its_own_identity_and_they_share_the_load(
    broker: MosquittoBroker, fleet_store: Store
) -> None:
    ids = [f"{CONTROLLER_IDENTITY}-1", f"{CONTROLLER_IDENTITY}-2"]
    ctls = [
        FleetService(fleet_store, SystemClock(), broker.settings(i), None, tick_s=0.2, client_id=i)
        for i in ids
    ]
    for c in ctls:
        c.start()
    try:
        stations = [
            StationClient(broker.settings(f"st-{n}"), f"st-{n}", ack_timeout_s=120).start()
            for n in range(4)
        ]
        try:
            for i in range(10):
                for st in stations:
                    st.send(readings(1 + 10 * i, 10, T0))
            assert all(st.drain(60) for st in stations)
        finally:
            for st in stations:
                st.stop()
        got = [c.worker.stats.snapshot()["inserted"] for c in ctls]
        assert sum(got) == 400 and all(g > 0 for g in got), got
        assert all(c.connected for c in ctls)
    finally:
        for c in ctls:
            c.stop()
