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
from fleet.response.config import ResponseConfig
from fleet.response.service import Response
from fleet.rollout import RolloutPolicy
from fleet.service import FleetService
from fleet.store import open_store
from roadside import signing
from roadside.clock import SystemClock
from roadside.testing.broker import MosquittoBroker
from roadside.testing.fixtures import broker, pki  # noqa: F401
from roadside.testing.pki import CONTROLLER_IDENTITY
from roadside.testing.receivers import (
    WEBHOOK_SECRET,
    SmsGateway,
    SmtpSink,
    WebhookReceiver,
    channel_specs,
)
from tests.console.browser import PASSWORD, USERS, Console, Server, chromium, free_port


@pytest.fixture
def cell_codes() -> list[str]:
    """Codes of the shipped district's cells, in file order."""
    return list(sample_register().cells)


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


@pytest.fixture
def console(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811 (the imported fixture, requested by name)
    receivers: dict[str, Any],
) -> Iterator[Console]:
    """The controller with the response chain over the sample district and every channel kind
    (real SMTP, webhook and SMS receivers, MQTT on the broker, Atom files), behind the console."""
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
    port = free_port()
    config = ResponseConfig(
        channels=tuple(channel_specs(receivers, broker, tmp_path)),
        base_url=f"http://127.0.0.1:{port}",
        poll_s=0.2,
    )
    response = Response(store, SystemClock(), config)
    response.grid.load_sample("admin", response.now())
    response.start()

    def app() -> Any:
        made = create_app(store, service.config, service.health, auth=auth)
        made.state.response = response
        return made

    server = Server(app, port)
    server.start()
    c = Console(f"http://127.0.0.1:{port}", store, service, auth, broker, key, server, receivers)
    try:
        yield c
    finally:
        for s in c.stations:
            s.stop()
        server.stop()
        response.close()
        service.stop()
        store.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()
