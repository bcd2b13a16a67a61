"""Console test fixtures: a real controller (broker, ingest, signed configuration) serving the API
and the console over HTTP on a free loopback port, users of each role, and Debian's chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.api import create_app
from fleet.auth import Auth
from fleet.console.register import sample_register
from fleet.rollout import RolloutPolicy
from fleet.service import FleetService
from fleet.store import open_store
from roadside import signing
from roadside.clock import SystemClock
from roadside.testing.broker import MosquittoBroker
from roadside.testing.fixtures import broker, pki  # noqa: F401
from roadside.testing.pki import CONTROLLER_IDENTITY
from tests.console.browser import PASSWORD, USERS, Console, Server, chromium, free_port


@pytest.fixture
def cell_codes() -> list[str]:
    """Codes of the shipped district's cells, in file order."""
    return list(sample_register().cells)


@pytest.fixture
def console(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811 (the imported fixture, requested by name)
) -> Iterator[Console]:
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    key = signing.generate_key()
    service = FleetService(
        store,
        SystemClock(),
        broker.settings(CONTROLLER_IDENTITY),
        key,
        tick_s=0.1,
        policy=RolloutPolicy(canary_timeout_s=30, retry_s=0.5, max_retries=3),
    )
    service.start()
    auth = Auth(store)
    for name, role in USERS.items():
        auth.add_user(name, name + PASSWORD, [role])
    server = Server(
        lambda: create_app(store, service.config, service.health, auth=auth), free_port()
    )
    server.start()
    c = Console(f"http://127.0.0.1:{server.port}", store, service, auth, broker, key, server)
    try:
        yield c
    finally:
        for s in c.stations:
            s.stop()
        server.stop()
        service.stop()
        store.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()
