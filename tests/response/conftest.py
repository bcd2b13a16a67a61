"""Response-chain fixtures: stores on SQLite and PostgreSQL, the sample district, receivers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fleet.response.config import ResponseConfig
from fleet.response.service import Response
from fleet.store import Store, open_store
from roadside.clock import ManualClock

PG_URL = os.environ.get("ROADSIDE_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)


def pg_schema_url() -> Iterator[str]:
    """A fresh schema (dropped afterwards); PostgreSQL must be there: fail loudly, not skip."""
    admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    schema = f"resp_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty fleet store, once per back end."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
        yield s
        s.close()
    else:
        for url in pg_schema_url():
            s = open_store(url)
            yield s
            s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    yield s
    s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def sample_response(store: Store, clock: ManualClock, **config: object) -> Response:
    """A Response over the sample district with no channels (unless given)."""
    config.setdefault("require_channels", False)  # workflow tests: no receivers needed
    resp = Response(store, clock, ResponseConfig(**config))  # type: ignore[arg-type]
    resp.grid.load_sample("admin", clock.now().timestamp())
    return resp


@pytest.fixture
def make_response() -> Iterator[Callable[..., Response]]:
    """``make_response(store, clock, **config)``: closed at the end of the test."""
    made: list[Response] = []

    def make(store: Store, clock: ManualClock, **config: object) -> Response:
        made.append(sample_response(store, clock, **config))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def resp(sqlite_store: Store, clock: ManualClock) -> Iterator[Response]:
    r = sample_response(sqlite_store, clock)
    yield r
    r.close()


# -- the end-to-end rig: a real broker and controller, real receivers ------------------------------
from roadside.testing.fixtures import broker, pki, wait_for  # noqa: E402, F401
from sim.receivers import (  # noqa: E402
    WEBHOOK_SECRET,
    SmsGateway,
    SmtpSink,
    WebhookReceiver,
)


@pytest.fixture
def receivers() -> Iterator[dict[str, Any]]:
    """Live and drill SMTP servers, a webhook receiver, an SMS gateway (all listening)."""
    rx = {
        "smtp": SmtpSink().start(),
        "smtp_drill": SmtpSink().start(),
        "webhook": WebhookReceiver(WEBHOOK_SECRET).start(),
        "sms": SmsGateway().start(),
    }
    yield rx
    for r in rx.values():
        r.stop()
