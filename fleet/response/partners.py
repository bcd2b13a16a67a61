"""Read-only sharing with partner departments, each with its own token.

Shapes: observations as the OGC SensorThings API (Things = stations, Datastreams = a station's
channels, Observations with ``phenomenonTime``/``result``/``resultQuality``), warnings as CAP
(the live Atom feed and each message's XML), cells, hazard points and key units as GeoJSON.
Tokens are kept as SHA-256 digests; a partner token grants reading only these routes.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from fleet.response.db import ResponseDB
from fleet.response.errors import NotFound, WorkflowError


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Partners:
    def __init__(self, db: ResponseDB) -> None:
        self.db = db

    def add(self, name: str, by: str, now: float) -> str:
        """Create a partner (or replace its token); returns the token, shown once."""
        if not name.replace("-", "").replace("_", "").isalnum():
            raise WorkflowError(f"partner name {name!r}: letters, digits, - and _ only")
        token = "rsp_" + secrets.token_urlsafe(32)
        self.db.put_doc(
            "partner", name, now, {"name": name, "digest": _digest(token), "by": by, "created": now}
        )
        return token

    def list(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in p.items() if k != "digest"} for p in self.db.docs("partner")]

    def revoke(self, name: str) -> None:
        if self.db.doc("partner", name) is None:
            raise NotFound(f"partner {name!r} is not known")
        with self.db.tx() as cur:
            cur.run("DELETE FROM resp_docs WHERE kind = 'partner' AND id = ?", (name,))

    def who(self, token: str) -> str | None:
        """The partner a token belongs to (constant-time over the stored digests)."""
        want = _digest(token)
        found = None
        for p in self.db.docs("partner"):
            if secrets.compare_digest(p["digest"], want):
                found = p["name"]
        return found


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def things(db: ResponseDB, base: str) -> dict[str, Any]:
    """SensorThings ``Things`` (stations) with their ``Locations`` when known."""
    value = []
    for s in db.store.stations():
        value.append(
            {
                "@iot.id": s.station,
                "name": s.station,
                "description": "roadside station",
                "properties": {"grid_cell": s.grid_cell, "online": s.online},
                "Datastreams@iot.navigationLink": f"{base}/Things('{s.station}')/Datastreams",
            }
        )
    return {"@iot.count": len(value), "value": value}


def datastreams(db: ResponseDB, base: str, station: str) -> dict[str, Any]:
    rows = db.query(
        "SELECT channel, unit, COUNT(*) FROM records WHERE station = ? AND kind = 'reading' "
        "AND channel IS NOT NULL GROUP BY channel, unit ORDER BY channel",
        (station,),
    )
    value = [
        {
            "@iot.id": f"{station}:{ch}",
            "name": f"{station} {ch}",
            "unitOfMeasurement": {"name": unit or "", "symbol": unit or "", "definition": ""},
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "ObservedProperty": {"name": ch},
            "Observations@iot.navigationLink": f"{base}/Datastreams('{station}:{ch}')/Observations",
        }
        for ch, unit, _n in rows
    ]
    return {"@iot.count": len(value), "value": value}


def observations(db: ResponseDB, datastream: str, top: int, start: float | None) -> dict[str, Any]:
    station, _, channel = datastream.partition(":")
    if not channel:
        raise NotFound(f"datastream {datastream!r}: expected station:channel")
    rows = db.store.records(station=station, channel=channel, start=start, limit=top)
    value = [
        {
            "@iot.id": f"{station}:{r.seq}",
            "phenomenonTime": _iso(r.time.timestamp()),
            "resultTime": _iso(r.received.timestamp()),
            "result": r.value,
            "resultQuality": {"flag": r.flag, "reason": r.reason},
        }
        for r in rows
    ]
    return {"@iot.count": len(value), "value": value}
