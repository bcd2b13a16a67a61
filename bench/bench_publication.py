"""One warning to 1,000 key units over four channels: seconds from the station's event to the
last delivery.

Set-up (all real, all on loopback): a Mosquitto with the shipped TLS/ACL configuration, the fleet
controller (:class:`fleet.service.FleetService`, SQLite store) and the response chain
(:class:`fleet.response.service.Response`, its worker thread, 8 delivery threads); 1,000
synthetic key units in one grid cell, each with one contact, a quarter each on SMS (an HTTP
gateway), e-mail (aiosmtpd), webhooks (a receiver verifying every signature with the
``standardwebhooks`` library) and MQTT (a subscriber on the broker).

Ours, per round: a station publishes a waterlogging event through the contract; the controller
commits it; the engine proposes the cell's level and drafts the warning; the bench approves it
as a second user the moment the draft appears and publishes it (link test of every channel,
CAP built and validated, 1,000 outbox rows committed with it); the clock stops at the receivers'
last delivery. Reported: p50 and p99 over rounds of that last-delivery time, and the p50/p99 of
every delivery's own event-to-receipt time.

Baseline, same receivers, same run: the same 1,000 messages sent by a bare loop (one SMTP
connection, one HTTP client, one MQTT client waiting for each PUBACK), no database, no outbox,
no CAP checks. ``ratio`` = ours p50 / baseline p50.

    python bench/bench_publication.py [--units 1000] [--rounds 3]

Last line: one JSON object (``bench: "publication"``, ``value`` = p99 seconds).
"""

from __future__ import annotations

import argparse
import json
import smtplib
import statistics
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from fleet.loadgen import StationClient
from fleet.response.channels import webhook_signature
from fleet.response.config import ResponseConfig
from fleet.response.service import Response
from fleet.service import FleetService
from fleet.store import open_store
from roadside import signing, wire
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY, TestPKI
from sim.receivers import (
    WEBHOOK_SECRET,
    MqttSubscriber,
    SmsGateway,
    SmtpSink,
    WebhookReceiver,
    send_waterlogging_event,
)

CELL = "BS-G01"
KINDS = ("sms", "email", "webhook", "mqtt")


def units_geojson(n: int, hook_url: str) -> str:
    """``n`` SYNTHETIC key units inside cell BS-G01, contacts round-robin over four channels."""
    feats = []
    for i in range(n):
        kind = KINDS[i % 4]
        address = {
            "sms": f"+86138{i:08d}",
            "email": f"unit{i}@bench.example.invalid",
            "webhook": f"{hook_url}/unit/{i}",
            "mqtt": f"u{i}",
        }[kind]
        lon, lat = 121.401 + 0.028 * (i % 50) / 50, 31.381 + 0.018 * (i // 50) / (n / 50 + 1)
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "id": f"BU-{i:04d}",
                    "kind": "school",
                    "name": f"unit {i}",
                    "cell": CELL,
                    "contacts": [{"channel": kind, "address": address}],
                },
            }
        )
    return json.dumps(
        {"type": "FeatureCollection", "note": "SYNTHETIC bench units", "features": feats}
    )


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pki = TestPKI(tmp / "pki")
        self.broker = MosquittoBroker(tmp / "broker", self.pki)
        self.broker.start()
        self.smtp = SmtpSink().start()
        self.hooks = WebhookReceiver(WEBHOOK_SECRET).start()
        self.sms = SmsGateway().start()
        self.ops = MqttSubscriber(self.broker, topic="roadside/v1/alerts/cap/#")

    def channels(self) -> tuple[dict[str, Any], ...]:
        f = self.pki.client("fleet-response")
        return (
            {
                "name": "mqtt",
                "kind": "mqtt",
                "port": self.broker.port,
                "ca": str(f.ca),
                "cert": str(f.cert),
                "key": str(f.key),
                "topic": "roadside/v1/alerts/cap",
            },
            {"name": "hooks", "kind": "webhook", "secret": WEBHOOK_SECRET},
            {"name": "mail", "kind": "email", "port": self.smtp.port, "sender": "w@b.example"},
            {"name": "sms", "kind": "sms", "url": f"{self.sms.url}/send"},
        )

    def clear(self) -> None:
        self.smtp.messages.clear()
        self.hooks.accepted.clear()
        self.sms.sent.clear()
        self.ops.messages.clear()

    def receipts(self) -> list[float]:
        return (
            [t for t, _ in self.smtp.messages]
            + [t for t, _, p in self.hooks.accepted if p.get("type", "").startswith("cap.")]
            + [t for t, _ in self.sms.sent]
            + [t for t, topic, _ in self.ops.messages if "/unit/" in topic]
        )

    def stop(self) -> None:
        self.ops.stop()
        for r in (self.smtp, self.hooks, self.sms):
            r.stop()
        self.broker.stop()


def ours(rig: Rig, units: int, round_no: int) -> tuple[float, list[float], bytes]:
    """One round: (seconds to the last delivery, every delivery's seconds, the CAP sent)."""
    store = open_store(f"sqlite:///{rig.tmp / f'fleet-{round_no}.db'}")
    service = FleetService(
        store,
        SystemClock(),
        rig.broker.settings(CONTROLLER_IDENTITY),
        signing.generate_key(),
        client_id=f"bench-{round_no}",
        tick_s=0.2,
    )
    service.start()
    config = ResponseConfig(
        channels=rig.channels(), step_s=3600, escalate_after_s=7200, poll_s=0.05, workers=8
    )
    resp = Response(store, SystemClock(), config)
    resp.grid.load_sample("bench", resp.now())
    resp.grid.import_units(
        units_geojson(units, rig.hooks.url), "bench-units.geojson", "bench", resp.now()
    )
    resp.start()
    station = StationClient(
        rig.broker.settings(f"st-b{round_no}"), f"st-b{round_no}", grid_cell=CELL
    ).start()
    try:
        deadline = time.monotonic() + 30
        while (s := store.station(station.station)) is None or s.grid_cell != CELL:
            if time.monotonic() > deadline:
                raise RuntimeError("the station's cell never reached the registry")
            time.sleep(0.02)
        rig.clear()
        t0 = send_waterlogging_event(station, 1, "blue")
        draft = None
        while draft is None:
            drafts = resp.alerts.list("draft")
            draft = drafts[0] if drafts else None
            if time.monotonic() > deadline + 60:
                raise RuntimeError("no draft from the engine")
            time.sleep(0.005)
        resp.alerts.approve(draft["id"], "approver", resp.now())
        xml = resp.publish(draft["id"], "operator")["message"]["xml"].encode()
        while len(rig.receipts()) < units:
            if time.monotonic() > deadline + 600:
                raise RuntimeError(f"only {len(rig.receipts())} of {units} deliveries arrived")
            time.sleep(0.02)
        times = [t - t0 for t in rig.receipts()]
        return max(times), times, xml
    finally:
        station.stop()
        resp.close()
        service.stop()
        store.close()


def baseline(rig: Rig, units: int, xml: bytes) -> float:
    """The same messages by a bare loop: seconds from the first send to the last delivery."""
    rig.clear()
    http = httpx.Client(timeout=10)
    smtp = smtplib.SMTP("127.0.0.1", rig.smtp.port)
    settings = rig.broker.settings("fleet-response")
    mq = wire.new_client(settings, "bench-baseline")
    mq.connect(settings.host, settings.port)
    mq.loop_start()
    run = uuid.uuid4().hex[:8]  # webhook ids are taken once per receiver
    t0 = time.time()
    for i in range(units):
        kind = KINDS[i % 4]
        if kind == "sms":
            http.post(
                f"{rig.sms.url}/send", json={"to": f"+86138{i:08d}", "text": "h", "ref": str(i)}
            )
        elif kind == "email":
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "w@b.example", f"unit{i}@b.example", "h"
            msg.set_content("h")
            msg.add_attachment(xml, maintype="application", subtype="cap+xml", filename="a.xml")
            smtp.send_message(msg)
        elif kind == "webhook":
            body = json.dumps({"type": "cap.alert", "cap": xml.decode()}).encode()
            ts = int(time.time())
            http.post(
                f"{rig.hooks.url}/unit/{i}",
                content=body,
                headers={
                    "webhook-id": f"b{run}-{i}",
                    "webhook-timestamp": str(ts),
                    "webhook-signature": webhook_signature(WEBHOOK_SECRET, f"b{run}-{i}", ts, body),
                },
            )
        else:
            mq.publish(f"roadside/v1/alerts/cap/unit/u{i}", xml, qos=1).wait_for_publish(10)
    deadline = time.monotonic() + 600
    while len(rig.receipts()) < units:
        if time.monotonic() > deadline:
            raise RuntimeError(f"bare loop: only {len(rig.receipts())} of {units} arrived")
        time.sleep(0.01)
    elapsed = max(rig.receipts()) - t0
    smtp.quit()
    http.close()
    mq.disconnect()
    mq.loop_stop()
    return elapsed


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        rig = Rig(Path(d))
        try:
            lasts, every, base = [], [], []
            for r in range(args.rounds):
                last, times, xml = ours(rig, args.units, r)
                lasts.append(last)
                every += times
                base.append(baseline(rig, args.units, xml))
                print(
                    f"round {r + 1}: event -> last delivery {last:.2f} s; "
                    f"bare loop {base[-1]:.2f} s"
                )
        finally:
            rig.stop()
    p50, p99 = pct(lasts, 0.5), pct(lasts, 0.99)
    b50 = statistics.median(base)
    print(
        f"{args.units} units over {len(KINDS)} channels: event -> last delivery p50 {p50:.2f} s, "
        f"p99 {p99:.2f} s over {args.rounds} rounds (each delivery: p50 {pct(every, 0.5):.2f} s, "
        f"p99 {pct(every, 0.99):.2f} s); bare loop p50 {b50:.2f} s"
    )
    print(
        json.dumps(
            {
                "bench": "publication",
                "metric": "event_to_last_delivery_p99",
                "value": round(p99, 3),
                "unit": "s",
                "baseline": round(b50, 3),
                "ratio": round(p50 / b50, 2),
                "p50": round(p50, 3),
                "delivery_p50": round(pct(every, 0.5), 3),
                "delivery_p99": round(pct(every, 0.99), 3),
                "units": args.units,
                "channels": len(KINDS),
                "rounds": args.rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
