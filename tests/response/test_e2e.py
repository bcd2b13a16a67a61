"""End to end over the real broker: a station's waterlogging event to acknowledged deliveries.

Station (its own certificate) -> Mosquitto -> fleet controller (commits the event) -> engine
(cell's proposed level, a draft) -> approval by a second person -> publication -> real SMTP
(aiosmtpd), a webhook receiver verifying signatures with the standardwebhooks library, real
MQTT, the Atom feed -> acknowledgement through the personal link -> escalation to the backup of
the unit that does not answer -> cancel.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.loadgen import StationClient
from fleet.response import cap
from fleet.response.channels import Delivery, build_channel
from fleet.response.config import ResponseConfig
from fleet.response.errors import DrillViolation
from fleet.response.service import Response
from fleet.service import FleetService
from fleet.store import Store, open_store
from roadside import signing
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY
from sim.receivers import MqttSubscriber, channel_specs, send_waterlogging_event

CELL = "BS-G07"  # industrial, vulnerable, a ponding spot inside; units KU-003 and KU-011


@pytest.fixture
def fleet(tmp_path: Path, broker: MosquittoBroker) -> Iterator[tuple[Store, FleetService]]:
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    service = FleetService(
        store,
        SystemClock(),
        broker.settings(CONTROLLER_IDENTITY),
        signing.generate_key(),
        tick_s=0.2,
    )
    service.start()
    yield store, service
    service.stop()
    store.close()


def test_station_event_to_acknowledged_and_escalated_delivery_then_cancel(
    tmp_path: Path,
    broker: MosquittoBroker,
    fleet: tuple[Store, FleetService],
    receivers: dict[str, Any],
    wait_for: Callable[..., None],
) -> None:
    store, _service = fleet
    ops = MqttSubscriber(broker)
    config = ResponseConfig(
        channels=tuple(channel_specs(receivers, broker, tmp_path)),
        step_s=6.0,
        escalate_after_s=8.0,
        poll_s=0.1,
    )
    resp = Response(store, SystemClock(), config)
    resp.grid.load_sample("admin", resp.now())
    resp.start()
    station = StationClient(broker.settings("st-101"), "st-101", grid_cell=CELL).start()
    try:
        wait_for(
            lambda: (s := store.station("st-101")) is not None and s.grid_cell == CELL,
            what="the station's cell in the registry",
        )
        send_waterlogging_event(station, 1, "blue")
        wait_for(lambda: resp.alerts.list("draft"), what="the engine's draft")
        proposal = resp.grid.proposal(CELL)
        assert proposal.level == "III"  # blue ponding -> IV, one up: vulnerable cell with hazard
        draft = resp.alerts.list("draft")[0]
        assert draft["author"] == "engine" and draft["cells"] == [CELL]

        resp.alerts.approve(draft["id"], "bob", resp.now())
        out = resp.publish(draft["id"], "alice")
        assert all(t["ok"] for t in out["link_tests"]), out["link_tests"]
        alert = out["message"]
        xml = alert["xml"].encode()
        cap.validate(xml)
        ident = alert["identifier"]

        # every broadcast route
        wait_for(
            lambda: any(t == "roadside/v1/alerts/cap" for _, t, _ in ops.messages),
            what="CAP on MQTT",
        )
        mq = next(p for _, t, p in ops.messages if t == "roadside/v1/alerts/cap")
        cap.validate(mq)
        assert cap.fields(mq)["identifier"] == ident
        hooks = receivers["webhook"]
        wait_for(
            lambda: any(p == "/partner/drainage" for _, p, _ in hooks.accepted),
            what="signed webhook",
        )
        assert not hooks.refused
        feed_file = tmp_path / "feed.atom"
        wait_for(lambda: feed_file.exists() and ident in feed_file.read_text(), what="the feed")

        # units: KU-003 answers its first SMS; KU-011 never answers
        sms = receivers["sms"]
        wait_for(lambda: sms.to("+8613900000301") and sms.to("+8613900001101"), what="SMS")
        link = re.search(r"/units/ack/(\S+)", sms.to("+8613900000301")[0]["text"])
        assert link is not None
        resp.outbox.ack(link.group(1), "link", resp.now())
        assert {u["unit"] for u in resp.outbox.unreached(alert["id"])} == set()
        mail = receivers["smtp"]
        wait_for(
            lambda: mail.to("duty-011@units.example.invalid"),
            timeout=30,
            what="KU-011's second channel (e-mail) after step_s",
        )
        wait_for(
            lambda: sms.to("+8613900001102"),
            timeout=30,
            what="escalation to KU-011's backup contact",
        )
        wait_for(
            lambda: resp.outbox.status(alert["id"])["units"]["KU-011"]["escalated"],
            what="the escalation recorded (receivers see it before the record)",
        )
        status = resp.outbox.status(alert["id"])
        assert status["units"]["KU-011"]["acknowledged"] is None
        assert status["units"]["KU-003"]["acknowledged"] is not None
        assert not mail.to("duty-003@units.example.invalid")  # acked: no second channel
        assert not sms.to("+8613900000302")  # and no escalation
        email_msg = mail.to("duty-011@units.example.invalid")[0]
        attachment = next(p for p in email_msg.iter_attachments())
        cap.validate(attachment.get_content())

        # cancel: a new message referencing the alert
        cancel = resp.alerts.draft_change(ident, "Cancel", "alice", resp.now())
        resp.alerts.approve(cancel["id"], "bob", resp.now())
        cancel = resp.publish(cancel["id"], "alice")["message"]
        f = cap.fields(cancel["xml"].encode())
        assert f["msgType"] == "Cancel" and f["references"][0].split(",")[1] == ident
        wait_for(
            lambda: any(
                cap.fields(p)["msgType"] == "Cancel"
                for _, t, p in ops.messages
                if t == "roadside/v1/alerts/cap"
            ),
            what="Cancel on MQTT",
        )
        wait_for(lambda: cancel["identifier"] in feed_file.read_text(), what="Cancel in the feed")
        assert ident in feed_file.read_text()  # the cancelled alert is kept for 24 h
        assert resp.alerts.get(alert["id"])["xml"] == alert["xml"]  # never changed
    finally:
        station.stop()
        ops.stop()
        resp.close()


def test_a_drill_never_reaches_a_live_channel(
    tmp_path: Path,
    broker: MosquittoBroker,
    sqlite_store: Store,
    receivers: dict[str, Any],
    wait_for: Callable[..., None],
) -> None:
    ops = MqttSubscriber(broker)
    config = ResponseConfig(channels=tuple(channel_specs(receivers, broker, tmp_path)), poll_s=0.1)
    resp = Response(sqlite_store, SystemClock(), config)
    resp.grid.load_sample("admin", resp.now())
    resp.start()
    try:
        drill = resp.drills.start("joint flood drill", "alice", resp.now())
        m = resp.alerts.draft(
            cells=[CELL],
            signal="waterlogging",
            level="II",
            author="alice",
            now=resp.now(),
            drill=drill["id"],
        )
        resp.alerts.approve(m["id"], "bob", resp.now())
        out = resp.publish(m["id"], "alice")
        assert {t["channel"] for t in out["link_tests"]} == {
            "drill-mail",
            "drill-mqtt",
            "drill-feed",
        }
        published = out["message"]
        f = cap.fields(published["xml"].encode())
        assert f["status"] == "Exercise" and f["note"] == f"DRILL {drill['id']}"
        assert f["headline"].startswith("【演练】")
        drill_mail = receivers["smtp_drill"]
        wait_for(lambda: len(drill_mail.messages) >= 2, what="drill e-mails")
        wait_for(
            lambda: any(t == "roadside/v1/alerts/drill" for _, t, _ in ops.messages),
            what="drill MQTT",
        )
        wait_for(
            lambda: (
                not any(
                    d["state"] in ("pending", "sending")
                    for d in resp.outbox.deliveries(published["id"])
                    if d["step"] == 0
                )
            ),
            what="first-step deliveries settled",
        )
        assert receivers["smtp"].messages == []
        assert receivers["sms"].sent == [] and receivers["webhook"].accepted == []
        assert not any(t == "roadside/v1/alerts/cap" for _, t, _ in ops.messages)
        assert (
            published["identifier"] not in (tmp_path / "feed.atom").read_text()
            if (tmp_path / "feed.atom").exists()
            else True
        )
        states = {
            d["state"]
            for d in resp.outbox.deliveries(published["id"])
            if d["channel"].startswith("none:")
        }
        assert states == {"unroutable"}  # SMS contacts: no drill SMS route, so not sent at all
        report = resp.drills.report(drill["id"])
        assert report["messages"][0]["status"] == "Exercise"
        assert report["messages"][0]["reached"] == 2
    finally:
        ops.stop()
        resp.close()


def test_each_sender_refuses_the_other_mode(receivers: dict[str, Any], tmp_path: Path) -> None:
    """The separation lives in every channel, not only in the planner."""
    live = build_channel(
        {
            "name": "m",
            "kind": "email",
            "mode": "live",
            "host": "127.0.0.1",
            "port": receivers["smtp"].port,
            "sender": "a@b.example",
        }
    )
    drill = build_channel(
        {"name": "d", "kind": "sms", "mode": "drill", "url": receivers["sms"].url}
    )
    d = Delivery("x", "i", "Exercise", "Alert", b"<alert/>", "h", "h", "a@b.example")
    with pytest.raises(DrillViolation, match="refuses a message with status Exercise"):
        live.deliver(d)
    with pytest.raises(DrillViolation, match="refuses a message with status Actual"):
        drill.deliver(Delivery("y", "i", "Actual", "Alert", b"<alert/>", "h", "h", "1"))
    with pytest.raises(DrillViolation, match="status Test is never sent"):
        live.deliver(Delivery("z", "i", "Test", "Alert", b"<alert/>", "h", "h", "a@b.example"))
    assert receivers["smtp"].messages == [] and receivers["sms"].sent == []
    live.close()
    drill.close()
