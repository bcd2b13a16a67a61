"""The response chain shown end to end on a fleet database: the demo's epilogue.

Given a fleet store whose station raised waterlogging (the demo's storm), it loads the SYNTHETIC
sample district, takes the station events in, shows the cell's proposed level rising, approves
the engine's draft as a second person, publishes it to local receivers (SMTP, SMS gateway,
signed webhooks, the Atom feed), acknowledges for one key unit through its personal link (the
controller's API when ``api`` is given), then publishes an Update, a Cancel and a drill's
Exercise; ``cap_dir`` keeps the four CAP messages (``docs/cap/`` holds one run's).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet.response import cap
from fleet.response.config import ResponseConfig
from fleet.response.errors import ResponseError
from fleet.response.plan import LEVELS
from fleet.response.service import Response
from fleet.store import Store
from roadside.clock import SystemClock


def _wait(cond: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise ResponseError("timed out waiting on the response chain")


def showcase(
    store: Store,
    cell: str,
    say: Callable[[str], None],
    *,
    cap_dir: Path | None = None,
    api: str | None = None,
    workdir: Path,
    positions: dict[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """Run the chain once on ``store``; return what happened (for the demo's verdict).

    ``positions`` places stations (lon, lat) whose status names no cell of the register."""
    from sim.receivers import WEBHOOK_SECRET, SmsGateway, SmtpSink, WebhookReceiver

    smtp, sms = SmtpSink().start(), SmsGateway().start()
    hooks = WebhookReceiver(WEBHOOK_SECRET).start()
    rx: list[Any] = [smtp, sms, hooks]
    channels = (
        {"name": "mail", "kind": "email", "port": smtp.port, "sender": "warnings@demo.example"},
        {"name": "sms", "kind": "sms", "url": f"{sms.url}/send"},
        {
            "name": "hooks",
            "kind": "webhook",
            "secret": WEBHOOK_SECRET,
            "targets": [f"{hooks.url}/partner/city-operations"],
        },
        {"name": "feed", "kind": "feed", "path": str(workdir / "feed.atom")},
        {
            "name": "drill-mail",
            "kind": "email",
            "mode": "drill",
            "port": smtp.port,
            "sender": "drill@demo.example",
        },
    )
    resp = Response(store, SystemClock(), ResponseConfig(channels=channels, poll_s=0.1))
    out: dict[str, Any] = {}
    try:
        resp.grid.load_sample("demo", resp.now())
        for station, (lon, lat) in (positions or {}).items():
            resp.field.place_station(station, lon, lat, "demo", resp.now())
        for change in resp.engine.poll(resp.now(), lookback_s=None):
            pr = change["proposal"]
            say(
                f"cell {pr['cell']}: proposed response level {change['previous'] or 'none'} -> "
                f"{pr['level'] or 'none'} ({'; '.join(pr['reasons']) or 'no active signal'})"
            )
        p = resp.grid.proposal(cell)
        out["level"] = p.level
        drafts = [m for m in resp.alerts.list("draft") if cell in m["cells"]]
        if not drafts:
            say("no draft warning for the cell: nothing to publish")
            return out
        resp.start()
        m = resp.alerts.approve(drafts[0]["id"], "duty-approver", resp.now())
        say(f"draft {m['id']} by {drafts[0]['author']} approved by {m['approver']}")
        alert = resp.publish(m["id"], "duty-officer")["message"]
        say(f"published {alert['identifier']}: {cap.fields(alert['xml'].encode())['headline']}")
        status = _wait(
            lambda: (
                (s := resp.outbox.status(alert["id"]))["units"]
                and all(u["reached_by"] for u in s["units"].values())
                and s
            )
        )
        for u in status["units"].values():
            say(f"  {u['unit']} reached by {', '.join(u['reached_by'])}")
        token, unit = resp.db.query(
            "SELECT token, unit FROM resp_acks WHERE message = ? ORDER BY unit", (alert["id"],)
        )[0]
        if api:
            req = urllib.request.Request(
                f"{api}/units/ack/{token}",
                data=b"",
                method="POST",
                headers={"Accept": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                json.loads(r.read())
        else:
            resp.outbox.ack(token, "link", resp.now())
        acked = resp.outbox.status(alert["id"])["units"][unit]["acknowledged"]
        say(f"  {unit} acknowledged through its personal link: {acked is not None}")
        out["acknowledged"] = acked is not None
        messages = {"alert": alert}
        time.sleep(1.0)  # a new second: Update and Cancel get their own sent time
        level = alert["content"]["level"]
        to = LEVELS[min(len(LEVELS) - 1, LEVELS.index(level) + 1)] if level != "I" else "II"
        upd = resp.alerts.draft_change(
            alert["identifier"], "Update", "duty-officer", resp.now(), level=to
        )
        resp.alerts.approve(upd["id"], "duty-approver", resp.now())
        messages["update"] = resp.publish(upd["id"], "duty-officer")["message"]
        say(f"update {messages['update']['identifier']} moves the warning to level {to}")
        time.sleep(1.0)
        cancel = resp.alerts.draft_change(
            messages["update"]["identifier"], "Cancel", "duty-officer", resp.now()
        )
        resp.alerts.approve(cancel["id"], "duty-approver", resp.now())
        messages["cancel"] = resp.publish(cancel["id"], "duty-officer")["message"]
        say(f"cancel {messages['cancel']['identifier']} ends it")
        drill = resp.drills.start("joint waterlogging drill (demo)", "duty-officer", resp.now())
        ex = resp.alerts.draft(
            cells=[cell],
            signal="waterlogging",
            level="III",
            author="duty-officer",
            now=resp.now(),
            drill=drill["id"],
        )
        resp.alerts.approve(ex["id"], "duty-approver", resp.now())
        messages["drill-exercise"] = resp.publish(ex["id"], "duty-officer")["message"]
        say(
            f"drill {drill['id']}: Exercise {messages['drill-exercise']['identifier']} "
            "(drill channels only)"
        )
        for m in messages.values():
            cap.validate(m["xml"].encode())
        if cap_dir is not None:
            cap_dir.mkdir(parents=True, exist_ok=True)
            for name, m in messages.items():
                (cap_dir / f"{name}.xml").write_text(m["xml"], encoding="utf-8")
            say(f"CAP messages written to {cap_dir}")
        out["published"] = {k: v["identifier"] for k, v in messages.items()}
        return out
    finally:
        resp.close()
        for r in rx:
            r.stop()
