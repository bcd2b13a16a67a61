"""Fleet warnings as CAP messages: draft -> approved -> published; updates and cancels.

A warning is a chain of messages. Each message is drafted (from a cell's proposal, by the engine
or an operator, or written by hand), approved by a second person when the configuration asks it
for that severity (``two_person``), then published: only then does it get its GB/T 35965.1
identifier and its ``sent`` time, is rendered, checked against the rules and the schema, signed
when a key is configured, and stored — never to be written again. An Update or Cancel is a new
message in the same chain that references the published ones. A drill's messages are Exercise
with ``DRILL <id>`` in the note.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet.response import cap
from fleet.response.config import ResponseConfig
from fleet.response.db import Cursor, ResponseDB, dump
from fleet.response.errors import NotFound, WorkflowError
from fleet.response.grid import Grid
from fleet.response.plan import LEVELS, NUMERALS, SEVERITY, Proposal

COLOUR_OF_LEVEL = {"IV": "blue", "III": "yellow", "II": "orange", "I": "red"}
COLUMNS = (
    "id, chain, identifier, msg_type, status, state, severity, author, approver, drill, cells, "
    "refs, content, created, approved, published, expires, xml"
)


def _row(r: Sequence[Any]) -> dict[str, Any]:
    import json

    keys = [k.strip() for k in COLUMNS.split(",")]
    d = dict(zip(keys, r, strict=True))
    d["cells"] = json.loads(d["cells"])
    d["refs"] = json.loads(d["refs"])
    d["content"] = json.loads(d["content"])
    return d


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Alerts:
    """The warning workflow over the database."""

    def __init__(self, db: ResponseDB, grid: Grid, config: ResponseConfig) -> None:
        self.db = db
        self.grid = grid
        self.config = config

    # -- reading ----------------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any]:
        """A message by draft id or CAP identifier."""
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM resp_messages WHERE id = ? OR identifier = ?", (key, key)
        )
        if not rows:
            raise NotFound(f"warning {key!r} is not known")
        return _row(rows[0])

    def list(
        self, state: str | None = None, drill: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM resp_messages WHERE (? IS NULL OR state = ?) "
            "AND (? IS NULL OR drill = ?) ORDER BY created, id",
            (state, state, drill, drill),
        )
        return [_row(r) for r in rows]

    def chain(self, chain: str) -> builtins.list[dict[str, Any]]:
        rows = self.db.query(
            f"SELECT {COLUMNS} FROM resp_messages WHERE chain = ? ORDER BY created, id", (chain,)
        )
        return [_row(r) for r in rows]

    def active_chain(self, cell: str, drill: str | None, now: float) -> dict[str, Any] | None:
        """The newest published, not cancelled, not expired message covering ``cell``."""
        for m in reversed(self.list("published", drill)):
            if m["drill"] != drill or cell not in m["cells"]:
                continue
            done = [x for x in self.chain(m["chain"]) if x["state"] == "published"]
            if any(x["msg_type"] == "Cancel" for x in done):
                continue
            latest = max(
                done, key=lambda x: (x["published"], x["created"], x["msg_type"] != "Alert")
            )
            if max(x["expires"] or 0 for x in done) > now:
                return latest
        return None

    def open_draft(self, cell: str, drill: str | None) -> dict[str, Any] | None:
        for m in self.list(None, drill):
            if m["state"] in ("draft", "approved") and cell in m["cells"] and m["drill"] == drill:
                return m
        return None

    # -- drafting ---------------------------------------------------------------------------------
    def draft(
        self,
        *,
        cells: Sequence[str],
        signal: str,
        level: str,
        author: str,
        now: float,
        colour: str | None = None,
        certainty: str = "Observed",
        urgency: str = "Immediate",
        onset: float | None = None,
        expires: float | None = None,
        msg_type: str = "Alert",
        references: Sequence[str] = (),
        drill: str | None = None,
        description: tuple[str, str] = ("", ""),
        instruction: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new draft; an Update or Cancel must reference published messages of one chain."""
        if level not in LEVELS:
            raise WorkflowError(f"level {level!r} is not one of {', '.join(LEVELS)}")
        if signal not in cap.EVENTS:
            raise WorkflowError(f"signal {signal!r} is not one of {', '.join(cap.EVENTS)}")
        if not cells:
            raise WorkflowError("a warning needs at least one grid cell")
        register = self.grid.register()
        for c in cells:
            if c not in register.cells:
                raise NotFound(f"cell {c!r} is not in the register")
        if drill is not None:
            self._open_drill(drill)
        chain = f"w-{uuid.uuid4().hex[:12]}"
        refs: list[str] = []
        if msg_type in ("Update", "Cancel"):
            if not references:
                raise WorkflowError(f"an {msg_type} must reference the message(s) it replaces")
            chains = set()
            for ref in references:
                m = self.get(ref)
                if m["state"] != "published":
                    raise WorkflowError(f"{ref}: only a published message can be referenced")
                if m["drill"] != drill:
                    raise WorkflowError(
                        f"{ref}: a drill and a live warning cannot reference each other"
                    )
                chains.add(m["chain"])
            if len(chains) != 1:
                raise WorkflowError("references must all belong to one warning")
            chain = chains.pop()
            refs = [
                cap.reference(self._message(m))
                for m in self.chain(chain)
                if m["state"] == "published"
            ]
        elif msg_type != "Alert":
            raise WorkflowError(f"msgType {msg_type!r}: drafts are Alert, Update or Cancel")
        elif references:
            raise WorkflowError("an Alert references nothing; use Update or Cancel")
        plan = self.grid.plan()
        if instruction is None:
            kinds = {register.cells[c].kind for c in cells}
            actions = {a.id: a for k in kinds for a in plan.actions_for(k, level)}.values()
            instruction = ("；".join(a.zh for a in actions), "; ".join(a.en for a in actions))
        if signal == "thunderstorm":
            description = self._lightning_note(cells, description, now)
        onset = now if onset is None else onset
        content = {
            "signal": signal,
            "colour": colour or COLOUR_OF_LEVEL[level],
            "level": level,
            "certainty": certainty,
            "urgency": urgency,
            "onset": onset,
            "expires": expires if expires is not None else onset + self.config.validity_s,
            "description": list(description),
            "instruction": list(instruction),
            "plan_version": plan.version,
        }
        ident = f"msg-{uuid.uuid4().hex[:12]}"
        with self.db.tx() as cur:
            cur.run(
                "INSERT INTO resp_messages (id, chain, identifier, msg_type, status, state, "
                "severity, author, approver, drill, cells, refs, content, created, approved, "
                "published, expires, xml) VALUES (?, ?, NULL, ?, ?, 'draft', ?, ?, NULL, ?, ?, ?, "
                "?, ?, NULL, NULL, NULL, NULL)",
                (
                    ident,
                    chain,
                    msg_type,
                    "Exercise" if drill else "Actual",
                    SEVERITY[level],
                    author,
                    drill,
                    dump(sorted(cells)),
                    dump(refs),
                    dump(content),
                    now,
                ),
            )
        return self.get(ident)

    def _lightning_note(
        self, cells: Sequence[str], description: tuple[str, str], now: float
    ) -> tuple[str, str]:
        """A thunderstorm warning names the key sites whose lightning inspection is overdue."""
        overdue = [i["unit"] for i in self.grid.inspections(now, cells) if i["overdue"]]
        if not overdue:
            return description
        names = ", ".join(sorted(set(overdue)))
        return (
            f"{description[0]}（防雷检测逾期的重点单位：{names}）".lstrip(),
            f"{description[1]} (overdue lightning-protection inspection: {names})".lstrip(),
        )

    def draft_from_proposal(
        self, p: Proposal, author: str, now: float, drill: str | None = None
    ) -> dict[str, Any] | None:
        """An Alert, Update or Cancel draft that brings the cell's warning in line with ``p``."""
        active = self.active_chain(p.cell, drill, now)
        if p.level is None:
            if active is None:
                return None
            return self.draft_change(active["identifier"], "Cancel", author, now)
        top = max(
            (s for s in p.signals if self.grid.plan().level_of(s.signal, s.colour)),
            key=lambda s: LEVELS.index(self.grid.plan().level_of(s.signal, s.colour) or "IV"),
        )
        update = active is not None and active["content"]["level"] != p.level
        if active is not None and not update:
            return None
        return self.draft(
            cells=active["cells"] if active is not None else [p.cell],
            signal=top.signal,
            level=p.level,
            colour=top.colour,
            certainty="Likely" if p.forecast_only else "Observed",
            urgency="Expected" if p.forecast_only else "Immediate",
            description=("；".join(p.reasons), "; ".join(p.reasons)),
            author=author,
            now=now,
            msg_type="Update" if update else "Alert",
            references=[active["identifier"]] if active is not None else [],
            drill=drill,
        )

    def draft_change(
        self, identifier: str, msg_type: str, author: str, now: float, level: str | None = None
    ) -> dict[str, Any]:
        """An Update (optionally to another level) or Cancel of a published message."""
        m = self.get(identifier)
        c = m["content"]
        return self.draft(
            cells=m["cells"],
            signal=c["signal"],
            level=level or c["level"],
            colour=None if level else c["colour"],
            certainty=c["certainty"],
            urgency=c["urgency"],
            author=author,
            now=now,
            msg_type=msg_type,
            references=[m["identifier"]],
            drill=m["drill"],
            description=(c["description"][0], c["description"][1]),
            expires=max(c["expires"], now + 600) if msg_type == "Cancel" else None,
        )

    # -- approval ---------------------------------------------------------------------------------
    def approve(self, key: str, approver: str, now: float) -> dict[str, Any]:
        m = self.get(key)
        self._mutable(m, "approve")
        if m["state"] != "draft":
            raise WorkflowError(f"{m['id']} is {m['state']}, not a draft")
        if self.config.two_person.get(m["severity"], True) and approver == m["author"]:
            raise WorkflowError(
                f"{m['id']}: {approver} wrote this {m['severity']} warning and cannot approve it"
            )
        with self.db.tx() as cur:
            if not cur.run(
                "UPDATE resp_messages SET state = 'approved', approver = ?, approved = ? "
                "WHERE id = ? AND state = 'draft'",
                (approver, now, m["id"]),
            ):
                raise WorkflowError(f"{m['id']} changed meanwhile; reload it")
        return self.get(m["id"])

    def reject(self, key: str, by: str, now: float) -> dict[str, Any]:
        m = self.get(key)
        self._mutable(m, "reject")
        with self.db.tx() as cur:
            cur.run(
                "UPDATE resp_messages SET state = 'rejected', approver = ?, approved = ? "
                "WHERE id = ? AND state IN ('draft', 'approved')",
                (by, now, m["id"]),
            )
        return self.get(m["id"])

    @staticmethod
    def _mutable(m: dict[str, Any], what: str) -> None:
        if m["state"] == "published":
            raise WorkflowError(
                f"{m['identifier']} is published and never changes; {what} refused "
                "(publish an Update or Cancel that references it)"
            )
        if m["state"] == "rejected":
            raise WorkflowError(f"{m['id']} was rejected; draft a new one")

    # -- publication ------------------------------------------------------------------------------
    def _message(
        self, m: dict[str, Any], identifier: str | None = None, sent: float | None = None
    ) -> cap.Message:
        register = self.grid.register()
        c = m["content"]
        cells = [register.cells[x] for x in m["cells"] if x in register.cells]
        area = cap.Area(
            desc_zh="、".join(x.name for x in cells),
            desc_en=", ".join(f"grid cell {x.code}" for x in cells),
            polygons=tuple(x.polygon for x in cells),
            geocodes=(
                (cap.GEOCODE_ADMIN, self.config.ids.admin_code),
                *((cap.GEOCODE_CELL, x.code) for x in cells),
            ),
        )
        content = cap.Content(
            signal=c["signal"],
            colour=c["colour"],
            level=c["level"],
            certainty=c["certainty"],
            urgency=c["urgency"],
            onset=_dt(c["onset"]),
            expires=_dt(c["expires"]),
            areas=(area,),
            description_zh=c["description"][0],
            description_en=c["description"][1],
            instruction_zh=c["instruction"][0],
            instruction_en=c["instruction"][1],
            parameters=(
                ("responseLevelNumeral", NUMERALS[c["level"]]),
                ("planVersion", c.get("plan_version", "")),
            ),
        )
        return cap.Message(
            identifier=identifier or m["identifier"] or "",
            sender=self.config.sender,
            sent=_dt(sent if sent is not None else (m["published"] or 0)),
            status=m["status"],
            msg_type=m["msg_type"],
            content=content,
            note=f"DRILL {m['drill']}" if m["drill"] else "",
            references=tuple(m["refs"]),
        )

    def publish(self, key: str, by: str, now: float, plan_outbox: Any = None) -> dict[str, Any]:
        """Publish an approved message: identifier, sent, CAP checked and stored, outbox rows.

        ``plan_outbox(cur, message_row)`` adds the delivery rows in the same transaction.
        """
        m = self.get(key)
        self._mutable(m, "publish")
        if m["state"] != "approved":
            raise WorkflowError(
                f"{m['id']} is {m['state']}: it must be approved before publication"
            )
        if m["drill"]:
            self._open_drill(m["drill"])
        sent = float(int(now))  # CAP times carry whole seconds
        with self.db.tx() as cur:
            serial = ResponseDB.next_serial(cur, self.config.ids.prefix(_dt(sent)))
            identifier = self.config.ids.identifier(_dt(sent), serial)
            msg = self._message(m, identifier, sent)
            xml = cap.build(msg)
            if self.config.sign_key:
                xml = cap.sign(
                    xml,
                    Path(self.config.sign_key).read_bytes(),
                    Path(self.config.sign_cert).read_bytes(),
                )
            if not cur.run(
                "UPDATE resp_messages SET state = 'published', identifier = ?, published = ?, "
                "expires = ?, xml = ? WHERE id = ? AND state = 'approved'",
                (identifier, sent, m["content"]["expires"], xml.decode(), m["id"]),
            ):
                raise WorkflowError(f"{m['id']} changed meanwhile; reload it")
            published = {
                **m,
                "identifier": identifier,
                "published": sent,
                "state": "published",
                "xml": xml.decode(),
                "expires": m["content"]["expires"],
            }
            self._supersede(cur, m["chain"], m["id"])
            if plan_outbox is not None:
                plan_outbox(cur, published)
        return self.get(m["id"])

    @staticmethod
    def _supersede(cur: Cursor, chain: str, newest: str) -> None:
        """Deliveries still waiting for older messages of the chain are not sent any more."""
        cur.run(
            "UPDATE resp_outbox SET state = 'superseded' WHERE state = 'pending' AND message IN "
            "(SELECT id FROM resp_messages WHERE chain = ? AND id != ?)",
            (chain, newest),
        )

    def _open_drill(self, drill: str) -> None:
        d = self.db.doc("drill", drill)
        if d is None:
            raise NotFound(f"drill {drill!r} is not known")
        if d.get("ended") is not None:
            raise WorkflowError(f"drill {drill} has ended")

    def check_draft(self, key: str, now: float) -> None:
        """Dry-run the CAP checks for a draft as if sent now (raises CapError)."""
        m = self.get(key)
        sent = float(int(now))
        msg = self._message(m, self.config.ids.identifier(_dt(sent), 1), sent)
        cap.build(msg)
