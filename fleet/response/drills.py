"""Drills: the whole chain with CAP status Exercise, the drill id in every note, and a report.

A drill is opened, warnings are drafted under it (status Exercise), approved and published like
live ones, and go only through drill-mode channels (enforced by every channel sender). The
report gives per message the approval and publication times, deliveries per channel, units
reached and acknowledged with their delays, and units never reached.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any

from fleet.response.alerts import Alerts
from fleet.response.db import ResponseDB
from fleet.response.errors import NotFound, WorkflowError
from fleet.response.outbox import Outbox


class Drills:
    def __init__(self, db: ResponseDB, alerts: Alerts, outbox: Outbox) -> None:
        self.db = db
        self.alerts = alerts
        self.outbox = outbox

    def start(self, name: str, by: str, now: float) -> dict[str, Any]:
        ident = f"DR-{datetime.fromtimestamp(now, UTC):%Y%m%d}-{uuid.uuid4().hex[:6]}"
        doc = {"id": ident, "name": name, "by": by, "started": now, "ended": None}
        self.db.put_doc("drill", ident, now, doc)
        return doc

    def get(self, ident: str) -> dict[str, Any]:
        doc = self.db.doc("drill", ident)
        if doc is None:
            raise NotFound(f"drill {ident!r} is not known")
        return doc

    def list(self) -> builtins.list[dict[str, Any]]:
        return self.db.docs("drill")

    def end(self, ident: str, by: str, now: float) -> dict[str, Any]:
        doc = self.get(ident)
        if doc["ended"] is not None:
            raise WorkflowError(f"drill {ident} has already ended")
        doc.update(ended=now, ended_by=by)
        self.db.put_doc("drill", ident, doc["started"], doc)
        return doc

    def report(self, ident: str) -> dict[str, Any]:
        doc = self.get(ident)
        messages = []
        for m in self.alerts.list(drill=ident):
            st = self.outbox.status(m["id"]) if m["state"] == "published" else None
            units = list((st or {}).get("units", {}).values())
            pub = m["published"]
            messages.append(
                {
                    "id": m["id"],
                    "identifier": m["identifier"],
                    "msg_type": m["msg_type"],
                    "status": m["status"],
                    "state": m["state"],
                    "author": m["author"],
                    "approver": m["approver"],
                    "created": m["created"],
                    "approved": m["approved"],
                    "published": pub,
                    "channels": (st or {}).get("channels", {}),
                    "units": len(units),
                    "reached": sum(bool(u["reached_by"]) for u in units),
                    "acknowledged": sum(u["acknowledged"] is not None for u in units),
                    "escalated": sum(u["escalated"] for u in units),
                    "ack_delay_s": sorted(
                        u["acknowledged"] - pub
                        for u in units
                        if u["acknowledged"] is not None and pub
                    ),
                    "unreached": [u["unit"] for u in units if not u["reached_by"]],
                }
            )
        return {"drill": doc, "messages": messages}
