"""Durable delivery: the outbox, per-unit channel sequences, acknowledgements, escalation.

Publishing a message writes, in the publication's own transaction, one outbox row per delivery:

- one per broadcast target of every channel in the message's mode (MQTT topic, partner webhooks,
  mailing lists, the feed);
- per key unit in the message's cells: its contacts in order, contact ``k`` due ``k * step_s``
  after publication, then its backup contacts from ``escalate_after_s``; a row whose unit has
  acknowledged by the time it is due is skipped, so channels are tried in order until the unit
  answers, and backups are reached only when it does not.

:meth:`Outbox.run_once` sends the due rows (a thread pool), marks them sent, or schedules a retry
with exponential backoff, and after the last attempt moves the row to the dead letters
(``state = 'dead'``; :meth:`Outbox.retry` requeues one). Rows are claimed (``sending``) and
marked in transactions; a worker stopping gracefully finishes and records its batch, and a fresh
worker resumes exactly the rows not yet recorded: a restart neither loses nor repeats a delivery.
After a crash between a send and its record, the row is sent again with the same idempotency key.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fleet.response import cap
from fleet.response.channels import Channel, Delivery
from fleet.response.config import ResponseConfig
from fleet.response.db import Cursor, ResponseDB
from fleet.response.errors import ChannelError, DrillViolation, NotFound
from fleet.response.grid import Grid

log = logging.getLogger(__name__)
BACKUP_STEP = 100
OUTBOX_COLUMNS = (
    "id, message, channel, target, unit, address, step, backup, not_before, state, attempts, "
    "next_try, last_error, sent_at"
)


class Outbox:
    """Plans and sends deliveries; answers delivery status, acknowledgements, unreached units."""

    def __init__(
        self,
        db: ResponseDB,
        grid: Grid,
        config: ResponseConfig,
        channels: Mapping[str, Channel],
    ) -> None:
        self.db = db
        self.grid = grid
        self.config = config
        self.channels = dict(channels)
        self._pool = ThreadPoolExecutor(max(1, config.workers), thread_name_prefix="deliver")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for ch in self.channels.values():
            ch.close()

    def in_mode(self, mode: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.mode == mode]

    # -- planning --------------------------------------------------------------------------------
    def plan(self, cur: Cursor, m: Mapping[str, Any]) -> None:
        """Insert the message's delivery rows and the units' acknowledgement tokens."""
        mode = "drill" if m["status"] == "Exercise" else "live"
        t0 = float(m["published"])
        rows: list[tuple[Any, ...]] = []
        for ch in self.in_mode(mode):
            for target in ch.broadcast:
                rows.append((ch.name, f"broadcast:{target}", None, target, 0, 0, t0))
        by_kind: dict[str, Channel] = {}
        for ch in self.in_mode(mode):
            if ch.contact_kind:
                by_kind.setdefault(ch.contact_kind, ch)
        units = [u for u in self.grid.register().units.values() if u.cell in m["cells"]]
        for u in units:
            cur.run(
                "INSERT INTO resp_acks (token, message, unit, acked, via) "
                "VALUES (?, ?, ?, NULL, NULL)",
                (secrets.token_urlsafe(18), m["id"], u.id),
            )
            routed = 0  # a contact no channel of this mode serves is passed over at once
            for k, c in enumerate(u.contacts):
                due = t0 + routed * self.config.step_s
                routed += c.channel in by_kind
                rows.append(self._unit_row(by_kind, u.id, c, k, 0, due))
            routed = 0
            for j, c in enumerate(u.backups):
                due = t0 + self.config.escalate_after_s + routed * self.config.step_s
                routed += c.channel in by_kind
                rows.append(self._unit_row(by_kind, u.id, c, BACKUP_STEP + j, 1, due))
        for channel, target, unit, address, step, backup, due in rows:
            routable = channel in self.channels
            cur.run(
                f"INSERT INTO resp_outbox ({OUTBOX_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, NULL)",
                (
                    uuid.uuid4().hex,
                    m["id"],
                    channel,
                    target,
                    unit,
                    address,
                    step,
                    backup,
                    due,
                    "pending" if routable else "unroutable",
                    due,
                    "" if routable else f"no {channel.split(':', 1)[-1]} channel in {mode} mode",
                ),
            )

    @staticmethod
    def _unit_row(
        by_kind: Mapping[str, Channel], unit: str, contact: Any, step: int, backup: int, due: float
    ) -> tuple[Any, ...]:
        ch = by_kind.get(contact.channel)
        name = ch.name if ch is not None else f"none:{contact.channel}"
        return (name, f"unit:{unit}:{step}", unit, contact.address, step, backup, due)

    # -- sending ---------------------------------------------------------------------------------
    def recover(self) -> int:
        """Rows a stopped worker had claimed but not recorded go back to pending."""
        with self.db.tx() as cur:
            return cur.run("UPDATE resp_outbox SET state = 'pending' WHERE state = 'sending'")

    def run_once(self, now: float, limit: int = 2000) -> int:
        """Send every due row (up to ``limit``); return how many rows were handled."""
        due = self.db.query(
            f"SELECT {OUTBOX_COLUMNS} FROM resp_outbox WHERE state = 'pending' AND next_try <= ? "
            "ORDER BY not_before, id LIMIT ?",
            (now, limit),
        )
        if not due:
            return 0
        acked = {
            (m, u)
            for m, u in self.db.query(
                "SELECT message, unit FROM resp_acks WHERE acked IS NOT NULL AND message IN "
                "(SELECT DISTINCT message FROM resp_outbox WHERE state = 'pending')"
            )
        }
        claimed: list[tuple[Any, ...]] = []
        skipped: list[str] = []
        with self.db.tx() as cur:
            for row in due:
                if row[4] is not None and (row[1], row[4]) in acked:
                    skipped.append(row[0])
                    continue
                if cur.run(
                    "UPDATE resp_outbox SET state = 'sending' WHERE id = ? AND state = 'pending'",
                    (row[0],),
                ):
                    claimed.append(row)
            for ident in skipped:
                cur.run(
                    "UPDATE resp_outbox SET state = 'skipped', last_error = 'acknowledged' "
                    "WHERE id = ?",
                    (ident,),
                )
        messages = {r[1]: self._delivery_base(r[1]) for r in claimed}
        tokens = self._tokens({r[1] for r in claimed})
        futures = [
            (row, self._pool.submit(self._send, row, messages[row[1]], tokens)) for row in claimed
        ]
        results = [(row, f.result()) for row, f in futures]
        with self.db.tx() as cur:
            for row, (ok, detail, final) in results:
                attempts = int(row[10]) + 1
                if ok:
                    cur.run(
                        "UPDATE resp_outbox SET state = 'sent', attempts = ?, sent_at = ?, "
                        "last_error = '' WHERE id = ?",
                        (attempts, detail, row[0]),
                    )
                elif final or attempts >= self.config.retry.attempts:
                    cur.run(
                        "UPDATE resp_outbox SET state = 'dead', attempts = ?, last_error = ? "
                        "WHERE id = ?",
                        (attempts, detail, row[0]),
                    )
                else:
                    cur.run(
                        "UPDATE resp_outbox SET state = 'pending', attempts = ?, next_try = ?, "
                        "last_error = ? WHERE id = ?",
                        (attempts, now + self.config.retry.delay(attempts), detail, row[0]),
                    )
        return len(claimed) + len(skipped)

    def _delivery_base(self, message_id: str) -> dict[str, Any]:
        row = self.db.query(
            "SELECT identifier, status, msg_type, xml FROM resp_messages WHERE id = ?",
            (message_id,),
        )[0]
        f = cap.fields(row[3].encode())
        heads = _headlines(row[3].encode())
        return {
            "identifier": row[0],
            "status": row[1],
            "msg_type": row[2],
            "xml": row[3].encode(),
            "headline": f["headline"],
            **heads,
        }

    def _tokens(self, messages: Iterable[str]) -> dict[tuple[str, str], str]:
        out = {}
        for m in messages:
            for token, unit in self.db.query(
                "SELECT token, unit FROM resp_acks WHERE message = ?", (m,)
            ):
                out[(m, unit)] = token
        return out

    def _send(
        self, row: tuple[Any, ...], base: Mapping[str, Any], tokens: Mapping[tuple[str, str], str]
    ) -> tuple[bool, Any, bool]:
        """(ok, sent time or error, final): one delivery; never raises."""
        import time

        ident, message, channel, _target, unit, address = row[:6]
        token = tokens.get((message, unit)) if unit else None
        d = Delivery(
            id=ident,
            identifier=base["identifier"],
            status=base["status"],
            msg_type=base["msg_type"],
            xml=base["xml"],
            headline_zh=base["zh"],
            headline_en=base["en"],
            address=address,
            unit=unit,
            ack_url=f"{self.config.base_url}/units/ack/{token}" if token else None,
        )
        try:
            self.channels[channel].deliver(d)
        except DrillViolation as exc:
            log.error("%s", exc)
            return False, str(exc), True
        except ChannelError as exc:
            return False, str(exc), False
        except Exception as exc:  # a channel bug must not kill the worker; the row retries
            log.exception("channel %s failed", channel)
            return False, f"{type(exc).__name__}: {exc}", False
        return True, time.time(), False

    def retry(self, ident: str, now: float) -> None:
        """Requeue a dead-letter row."""
        with self.db.tx() as cur:
            if not cur.run(
                "UPDATE resp_outbox SET state = 'pending', attempts = 0, next_try = ? "
                "WHERE id = ? AND state = 'dead'",
                (now, ident),
            ):
                raise NotFound(f"dead letter {ident!r} is not known")

    # -- acknowledgements and status ------------------------------------------------------------
    def ack(self, token: str, via: str, now: float) -> dict[str, Any]:
        """A unit's acknowledgement through its personal link (idempotent)."""
        with self.db.tx() as cur:
            row = cur.one("SELECT message, unit, acked FROM resp_acks WHERE token = ?", (token,))
            if row is None:
                raise NotFound("this acknowledgement link is not known")
            if row[2] is None:
                cur.run(
                    "UPDATE resp_acks SET acked = ?, via = ? WHERE token = ?", (now, via, token)
                )
        return {"message": row[0], "unit": row[1], "acked": row[2] or now}

    def deliveries(self, message: str) -> list[dict[str, Any]]:
        keys = [k.strip() for k in OUTBOX_COLUMNS.split(",")]
        rows = self.db.query(
            f"SELECT {OUTBOX_COLUMNS} FROM resp_outbox WHERE message = ? ORDER BY not_before, id",
            (message,),
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def status(self, message: str) -> dict[str, Any]:
        """Per channel counts by state, and per unit: reached by, acknowledged, escalated."""
        rows = self.deliveries(message)
        channels: dict[str, dict[str, int]] = {}
        for r in rows:
            per = channels.setdefault(r["channel"], {})
            per[r["state"]] = per.get(r["state"], 0) + 1
        acks = {
            u: (t, a, v)
            for t, u, a, v in self.db.query(
                "SELECT token, unit, acked, via FROM resp_acks WHERE message = ?", (message,)
            )
        }
        units: dict[str, dict[str, Any]] = {}
        for u, (_t, acked, via) in acks.items():
            mine = [r for r in rows if r["unit"] == u]
            units[u] = {
                "unit": u,
                "reached_by": [r["channel"] for r in mine if r["state"] == "sent"],
                "first_reached": min((r["sent_at"] for r in mine if r["sent_at"]), default=None),
                "acknowledged": acked,
                "ack_via": via,
                "escalated": any(r["backup"] and r["state"] == "sent" for r in mine),
                "pending": sum(r["state"] in ("pending", "sending") for r in mine),
                "failed": [r["last_error"] for r in mine if r["state"] in ("dead", "unroutable")],
            }
        return {"message": message, "channels": channels, "units": units}

    def unreached(self, message: str | None = None) -> list[dict[str, Any]]:
        """Units of published messages that no channel has reached yet (live list)."""
        rows = self.db.query(
            "SELECT a.message, a.unit, m.identifier FROM resp_acks a JOIN resp_messages m "
            "ON m.id = a.message WHERE (? IS NULL OR a.message = ? OR m.identifier = ?) "
            "AND NOT EXISTS (SELECT 1 FROM resp_outbox o WHERE o.message = a.message "
            "AND o.unit = a.unit AND o.state = 'sent') ORDER BY a.message, a.unit",
            (message, message, message),
        )
        return [{"message": m, "identifier": i, "unit": u} for m, u, i in rows]

    def link_test(self, mode: str, now: float) -> list[dict[str, Any]]:
        """Test every channel of a mode; results are kept (``resp_linktests``)."""
        out: list[dict[str, Any]] = []
        for ch in self.in_mode(mode):
            try:
                detail, ok = ch.link_test(), True
            except ChannelError as exc:
                detail, ok = str(exc), False
            out.append(
                {"channel": ch.name, "kind": ch.kind, "mode": mode, "ok": ok, "detail": detail}
            )
        with self.db.tx() as cur:
            for r in out:
                cur.run(
                    "INSERT INTO resp_linktests (channel, t, ok, detail) VALUES (?, ?, ?, ?)",
                    (r["channel"], now, int(r["ok"]), r["detail"]),
                )
        return out

    def dead_letters(self) -> list[dict[str, Any]]:
        keys = [k.strip() for k in OUTBOX_COLUMNS.split(",")]
        rows = self.db.query(
            f"SELECT {OUTBOX_COLUMNS} FROM resp_outbox WHERE state = 'dead' ORDER BY next_try"
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]


def _headlines(xml: bytes) -> dict[str, str]:
    from lxml import etree

    root = etree.fromstring(xml)
    out = {}
    for info in root.findall(f"{{{cap.NS}}}info"):
        lang = info.findtext(f"{{{cap.NS}}}language") or ""
        out["zh" if lang.startswith("zh") else "en"] = info.findtext(f"{{{cap.NS}}}headline") or ""
    return out
