"""Contract tests: real agents (drivers on simulated devices, buffer, uplink, remote configuration)
against the real fleet service (ingest, registry, documents, rollouts) through a real Mosquitto.

One broker, one fleet and three stations per module (starting them is the slow part): ``bs-a``
and ``bs-b`` in grid cell ``G1``, ``bs-c`` in ``G2``. Each test uses scopes of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from contract_env import CELLS, Station, wait_for
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config
from agent.runner import Agent
from fleet.rollout import RolloutPolicy
from fleet.service import FleetService
from fleet.store import Store, open_store
from roadside import signing
from roadside.clock import ScaledClock, SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY, TestPKI
from sim.scenario import load_scenario
from sim.station import SimStation


def _toml(st: str, cell: str, sim: SimStation, tmp: Path, broker: MosquittoBroker, pki: TestPKI,
          fleet_pub: Path) -> str:  # fmt: skip
    ep = sim.endpoints["rain"]
    files = pki.client(st)
    return "\n".join(
        [
            'version = "contract-1"',
            "[station]",
            f'id = "{st}"',
            "lat = 31.4",
            "lon = 121.4",
            f'grid_cell = "{cell}"',
            "[[sensors]]",
            f'name = "{ep.device}"',
            f'profile = "{ep.profile}"',
            f'port = "{ep.port}"',
            *([f"slave = {ep.slave}"] if ep.slave is not None else []),
            "interval_s = 10",
            "[sampling]",
            "adaptive = false",
            "[buffer]",
            f'path = "{tmp / "buffer.db"}"',
            "max_mb = 64",
            'synchronous = "normal"',
            "[metrics]",
            "port = 0",
            "[time]",
            'sync_check = "none"',
            "[uplink]",
            'host = "127.0.0.1"',
            f"port = {broker.port}",
            f'ca = "{files.ca}"',
            f'cert = "{files.cert}"',
            f'key = "{files.key}"',
            f'fleet_key = "{fleet_pub}"',
            "backoff_initial_s = 0.5",
            "idle_poll_s = 0.5",
            "status_interval_s = 5",
        ]
    )


@pytest.fixture(scope="module")
def contract_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def contract_broker(
    tmp_path_factory: pytest.TempPathFactory, contract_pki: TestPKI
) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path_factory.mktemp("broker"), contract_pki)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def fleet_key() -> Ed25519PrivateKey:
    return signing.generate_key()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'fleet.db'}")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def fleet(
    store: Store, contract_broker: MosquittoBroker, fleet_key: Ed25519PrivateKey
) -> Iterator[FleetService]:
    from fleet.response.db import ResponseDB
    from fleet.response.grid import Grid

    service = FleetService(
        store,
        SystemClock(),
        contract_broker.settings(CONTROLLER_IDENTITY),
        fleet_key,
        tick_s=0.1,
        policy=RolloutPolicy(canary_timeout_s=60, retry_s=1.0, max_retries=5),
        cells=Grid(ResponseDB(store)).assigned_cells,  # as `roadside-fleet run` wires it
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def stations(
    tmp_path_factory: pytest.TempPathFactory,
    contract_broker: MosquittoBroker,
    contract_pki: TestPKI,
    fleet_key: Ed25519PrivateKey,
    fleet: FleetService,
) -> Iterator[dict[str, Station]]:
    """The three real stations, started and registered with the fleet."""
    scenario = load_scenario("dry")
    clock = ScaledClock(scenario.start + timedelta(minutes=10), speed=10.0, anchor=time.time())
    keys = tmp_path_factory.mktemp("keys")
    fleet_pub = keys / "fleet.pub"
    signing.save_public_key(fleet_key.public_key(), fleet_pub)
    running: dict[str, Station] = {}
    try:
        for st, cell in CELLS.items():
            tmp = tmp_path_factory.mktemp(st)
            sim = SimStation(scenario, clock, tmp / "links", pacing=False)
            sim.start()
            path = tmp / "station.toml"
            path.write_text(_toml(st, cell, sim, tmp, contract_broker, contract_pki, fleet_pub))
            agent = Agent(load_config(path), clock, serve_metrics=False)
            station = Station(st, cell, agent, sim)
            running[st] = station
            agent.start()
            station.thread = threading.Thread(target=station.loop, name=f"agent-{st}")
            station.thread.start()
        wait_for(
            lambda: all(fleet.store.station(s) is not None for s in CELLS),
            what="three stations in the registry",
        )
        yield running
    finally:
        for station in running.values():
            station.stop.set()
            if station.thread is not None:
                station.thread.join(10)
            station.agent.stop()
            station.sim.stop()
