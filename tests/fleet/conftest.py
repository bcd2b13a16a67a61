"""Fleet test fixtures: a store on SQLite and on PostgreSQL, a real broker, a signing key."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from fleet.api import create_app
from fleet.auth import Auth
from fleet.service import FleetService
from fleet.store import Store, open_store
from roadside import signing
from roadside.clock import SystemClock
from roadside.testing.fixtures import broker, pki, wait_for  # noqa: F401
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

PG_URL = os.environ.get("ROADSIDE_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_schema_url() -> Iterator[str]:
    """A fresh schema in the test database, dropped afterwards; yields a URL that selects it."""
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    schema = f"fleet_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty store, once per back end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.db'}"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An initialised empty store, once per back end."""
    s = open_store(store_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def fleet_key() -> Ed25519PrivateKey:
    """The controller's signing key for the session."""
    return signing.generate_key()


@pytest.fixture
def controller(
    store: Store,
    broker: MosquittoBroker,  # noqa: F811 (the imported fixture, requested by name)
    fleet_key: Ed25519PrivateKey,
) -> Iterator[FleetService]:
    """A running controller on the test store and broker (ingest, acks, configuration)."""
    service = FleetService(
        store, SystemClock(), broker.settings(CONTROLLER_IDENTITY), fleet_key, tick_s=0.2
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


ApiClient = Callable[..., TestClient]


@pytest.fixture
def api_client(store: Store) -> ApiClient:
    """``api_client(config=None, health=None, role="admin")``: a TestClient on the API over the
    test store, sending a bearer token of a fresh user with ``role`` (None: no credentials)."""
    auth = Auth(store)
    made = 0

    def make(config=None, health=None, role: str | None = "admin", **kw) -> TestClient:
        nonlocal made
        app = create_app(store, config, health, auth=auth, **kw)
        client = TestClient(app, base_url="http://127.0.0.1")
        if role is not None:
            made += 1
            name = f"{role}-{made}"
            auth.add_user(name, None, [role])
            client.headers["Authorization"] = f"Bearer {auth.issue_token(name, 'test')}"
        return client

    return make
