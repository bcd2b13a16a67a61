"""Durable delivery: a restart mid-publication neither loses nor repeats; retries; dead letters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from fleet.response.channels import webhook_signature
from fleet.response.config import Retry
from fleet.response.service import Response
from fleet.store import Store, open_store
from roadside.clock import ManualClock
from sim.receivers import WEBHOOK_SECRET, WebhookReceiver

ALL_CELLS = [f"BS-G{i:02d}" for i in range(1, 13)]


def _publish(resp: Response, cells: list[str]) -> dict[str, Any]:
    m = resp.alerts.draft(
        cells=cells, signal="rainstorm", level="III", author="alice", now=resp.now()
    )
    resp.alerts.approve(m["id"], "bob", resp.now())
    return resp.publish(m["id"], "alice")["message"]


def _broadcast(resp: Response, message: str) -> dict[str, Any]:
    return next(r for r in resp.outbox.deliveries(message) if r["target"].startswith("broadcast:"))


def test_restart_mid_publication_loses_nothing_and_repeats_nothing(
    any_store: Store, receivers: dict[str, Any], make_response: Callable[..., Response]
) -> None:
    specs = (
        {
            "name": "mail",
            "kind": "email",
            "host": "127.0.0.1",
            "port": receivers["smtp"].port,
            "sender": "w@d.example",
        },
        {"name": "sms", "kind": "sms", "url": receivers["sms"].url},
        {
            "name": "hooks",
            "kind": "webhook",
            "secret": WEBHOOK_SECRET,
            "endpoints": {
                f"unit-{n:03d}": f"{receivers['webhook'].url}/u{n}" for n in range(1, 13)
            },
        },
    )
    db = any_store.url  # SQLite and PostgreSQL
    clock = ManualClock()
    first = make_response(open_store(db), clock, channels=specs, step_s=0.0, escalate_after_s=1e9)
    m = _publish(first, ALL_CELLS)
    rows = first.outbox.deliveries(m["id"])
    due = [r for r in rows if r["backup"] == 0]
    assert len(due) > 20
    assert first.outbox.run_once(clock.now().timestamp(), limit=7) == 7  # then the process stops
    # a crash: three rows claimed, never recorded (the worker died before sending them)
    with first.db.tx() as cur:
        cur.run(
            "UPDATE resp_outbox SET state = 'sending' WHERE id IN (SELECT id FROM "
            "resp_outbox WHERE state = 'pending' AND backup = 0 LIMIT 3)"
        )
    first.close()

    second = make_response(open_store(db), clock, channels=specs, step_s=0.0, escalate_after_s=1e9)
    assert second.outbox.recover() == 3
    while second.outbox.run_once(clock.now().timestamp()):
        pass
    states = Counter(r["state"] for r in second.outbox.deliveries(m["id"]) if r["backup"] == 0)
    assert states == {"sent": len(due)}
    sms = Counter(p["to"] for _, p in receivers["sms"].sent)
    mails = Counter(msg["To"] for _, msg in receivers["smtp"].messages)
    hooks = Counter(p for _, p, b in receivers["webhook"].accepted if b["type"] != "link.test")
    expected_sms = {r["address"] for r in due if r["channel"] == "sms"}
    assert set(sms) == expected_sms and set(sms.values()) == {1}
    assert set(mails.values()) == {1} and len(mails) == sum(r["channel"] == "mail" for r in due)
    assert set(hooks.values()) == {1} and not receivers["webhook"].duplicates


def test_webhook_retries_with_backoff_then_dead_letter_and_requeue(
    sqlite_store: Any, clock: ManualClock, make_response: Callable[..., Response]
) -> None:
    flaky = WebhookReceiver(WEBHOOK_SECRET, fail_first=2).start()
    try:
        resp = make_response(
            sqlite_store,
            clock,
            retry=Retry(attempts=3, base_s=10.0),
            link_test_before_publish=False,
            channels=(
                {
                    "name": "hooks",
                    "kind": "webhook",
                    "secret": WEBHOOK_SECRET,
                    "targets": [f"{flaky.url}/partner"],
                },
            ),
        )
        m = _publish(resp, ["BS-G02"])  # a cell without webhook contacts: the broadcast only
        t = clock.now().timestamp()
        resp.outbox.run_once(t)
        row = _broadcast(resp, m["id"])
        assert row["state"] == "pending" and row["attempts"] == 1 and row["next_try"] == t + 10
        assert resp.outbox.run_once(t + 5) == 0  # not yet due: backoff
        resp.outbox.run_once(t + 10)
        row = _broadcast(resp, m["id"])
        assert row["attempts"] == 2 and row["next_try"] == t + 10 + 20  # doubled
        resp.outbox.run_once(t + 30)
        assert _broadcast(resp, m["id"])["state"] == "sent"
        assert len(flaky.accepted) == 1 and [c for c, _ in flaky.refused] == [503, 503]
    finally:
        flaky.stop()
    # now the receiver is gone: three attempts, then the dead letters
    m2 = _publish(resp, ["BS-G02"])
    for k in range(3):
        resp.outbox.run_once(t + 100 + 1000 * k)
    dead = resp.outbox.dead_letters()
    assert [d["message"] for d in dead] == [m2["id"]] and dead[0]["attempts"] == 3
    resp.outbox.retry(dead[0]["id"], t + 5000)
    assert resp.outbox.dead_letters() == []


def test_receiver_refuses_forged_and_stale_webhooks(receivers: dict[str, Any]) -> None:
    url = receivers["webhook"].url + "/x"
    body = b'{"type":"cap.alert"}'
    now = int(time.time())
    good = {
        "webhook-id": "m1",
        "webhook-timestamp": str(now),
        "webhook-signature": webhook_signature(WEBHOOK_SECRET, "m1", now, body),
    }
    assert httpx.post(url, content=body, headers=good).status_code == 200
    forged_key = base64.b64encode(b"not the secret").decode()
    sig = base64.b64encode(
        hmac.new(
            base64.b64decode(forged_key), f"m2.{now}.".encode() + body, hashlib.sha256
        ).digest()
    ).decode()
    forged = {**good, "webhook-id": "m2", "webhook-signature": f"v1,{sig}"}
    assert httpx.post(url, content=body, headers=forged).status_code == 401
    old = now - 3600  # a replay of a captured request an hour later
    stale = {
        "webhook-id": "m3",
        "webhook-timestamp": str(old),
        "webhook-signature": webhook_signature(WEBHOOK_SECRET, "m3", old, body),
    }
    assert httpx.post(url, content=body, headers=stale).status_code == 401
    assert len(receivers["webhook"].accepted) == 1
