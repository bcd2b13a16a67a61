"""The HTTP API over a store (FastAPI TestClient), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from fleet.documents import Scope, build_document
from fleet.store import (
    ConfigReport,
    IngestBatch,
    StationInfo,
    StationUpdate,
    Store,
    StoredRecord,
)
from roadside import signing
from roadside.contract import Record

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC).timestamp()


def _seed(store: Store) -> None:
    rows = [
        Record(
            seq=i,
            kind="reading",
            time=datetime.fromtimestamp(T0 + 60 * i, UTC),
            sensor="wind",
            channel="wind_speed",
            value=3.0 + i,
            unit="m/s",
        )
        for i in range(1, 11)
    ]
    rows.append(
        Record(
            seq=11,
            kind="event",
            time=datetime.fromtimestamp(T0 + 300, UTC),
            payload={"signal": "gale", "level": "blue"},
        )
    )
    store.ingest([IngestBatch("st-001", "live", 1, 11, tuple(rows), T0 + 700, T0 + 699)])
    store.update_station(StationUpdate("st-001", seen=T0 + 701, online=True, grid_cell="c1"))


def test_stations_readings_and_events(api_client, store: Store) -> None:
    _seed(store)
    api = api_client()
    stations = api.get("/stations").json()
    assert [s["station"] for s in stations] == ["st-001"]
    assert stations[0]["online"] is True and stations[0]["records"] == 11
    assert stations[0]["clock_offset_s"] == -1.0
    got = api.get(
        "/readings",
        params={
            "station": "st-001",
            "channel": "wind_speed",
            "start": "2026-07-21T12:03:00Z",
            "end": "2026-07-21T12:06:00Z",
        },
    ).json()
    assert [r["seq"] for r in got] == [3, 4, 5]
    assert got[0]["value"] == 6.0 and got[0]["time"].startswith("2026-07-21T12:03:00")
    events = api.get("/events", params={"station": "st-001"}).json()
    assert [e["payload"]["signal"] for e in events] == ["gale"]
    assert api.get("/readings", params={"kind": "event"}).status_code == 422
    assert api.get("/readings", params={"limit": 0}).status_code == 422


def test_the_openapi_document_shows_the_record_and_the_registry_as_the_code_declares_them(
    api_client, store: Store
) -> None:
    _seed(store)
    api = api_client()
    doc = api.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert set(schemas["RecordOut"]["properties"]) == set(StoredRecord.__struct_fields__)
    assert set(schemas["RecordOut"]["required"]) == set(StoredRecord.__struct_fields__)
    assert set(schemas["StationOut"]["properties"]) == {f.name for f in fields(StationInfo)}
    readings = doc["paths"]["/readings"]["get"]["responses"]["200"]["content"]
    assert readings["application/json"]["schema"]["items"]["$ref"].endswith("/RecordOut")
    (got,) = api.get("/readings", params={"limit": 1}).json()
    assert set(got) == set(StoredRecord.__struct_fields__) and got["received"].startswith("2026")
    (event,) = api.get("/events").json()
    assert (event["sensor"], event["raw"], event["lane"]) == ("", None, "live")
    station = api.get("/stations/st-001").json()
    assert set(station) == {f.name for f in fields(StationInfo)}
    assert station["last_seen"].startswith("2026-07-21T12:11:41")


def test_unknown_things_are_404_and_pushing_without_a_key_is_503(api_client, store: Store) -> None:
    api = api_client()
    assert api.get("/stations/nope").status_code == 404
    assert api.get("/stations/nope/config").json()["detail"] == "station 'nope' is not known"
    assert api.get("/rollouts/r0").status_code == 404
    resp = api.post("/config/documents", json={"scope": "fleet", "body": {"qc": {}}})
    assert resp.status_code == 503 and "signing key" in resp.json()["detail"]


def test_config_status_desired_vs_reported(api_client, store: Store, fleet_key) -> None:
    _seed(store)
    issued = datetime.fromtimestamp(T0, UTC)

    def doc(scope: Scope, body: dict):
        return store.add_document(
            scope.key, lambda v: build_document(scope, v, body, issued, fleet_key), T0
        )

    fleet1 = doc(Scope("fleet"), {"qc": {"max_gap_s": 600.0}})
    fleet2 = doc(Scope("fleet"), {"qc": {"max_gap_s": 700.0}})
    grid = doc(Scope("grid", "c1"), {"warnings": {"hold_s": 1200}})
    doc(Scope("grid", "c2"), {"warnings": {"hold_s": 1300}})  # another cell: not this station's
    store.add_report(ConfigReport("st-001", "fleet", 1, fleet1.hash, "ack", "", T0))
    store.add_report(ConfigReport("st-001", "grid:c1", 1, grid.hash, "nack", "unsafe: x", T0 + 0.5))
    api = api_client()
    cfg = api.get("/stations/st-001/config").json()
    assert cfg["in_sync"] is False
    by_scope = {s["scope"]: s for s in cfg["scopes"]}
    assert set(by_scope) == {"fleet", "grid:c1"}
    assert by_scope["fleet"]["state"] == "pending"
    assert (by_scope["fleet"]["desired_version"], by_scope["fleet"]["reported_version"]) == (2, 1)
    assert by_scope["fleet"]["desired_hash"] == fleet2.hash
    assert by_scope["grid:c1"]["state"] == "nacked"
    assert by_scope["grid:c1"]["reason"] == "unsafe: x"
    store.add_report(ConfigReport("st-001", "fleet", 2, fleet2.hash, "ack", "", T0 + 1))
    assert api.get("/config/status").json()[0]["scopes"][0]["state"] == "in_sync"
    log = api.get("/stations/st-001/config/log").json()
    assert [(r["scope"], r["version"], r["result"]) for r in log] == [
        ("fleet", 1, "ack"), ("grid:c1", 1, "nack"), ("fleet", 2, "ack"),
    ]  # fmt: skip
    versions = api.get("/config/documents", params={"scope": "fleet"}).json()
    assert [d["version"] for d in versions] == [2, 1]
    signed = versions[0]["signed"]
    assert signing.verify(signed, fleet_key.public_key())["body"] == {"qc": {"max_gap_s": 700.0}}


def test_openapi_document_lists_the_api(api_client, store: Store) -> None:
    spec = api_client().get("/openapi.json").json()
    assert spec["info"]["title"] == "Roadside fleet controller"
    for path in ("/stations/{station}/config", "/events", "/config/documents", "/groups/{name}"):
        assert path in spec["paths"], path
    assert "post" in spec["paths"]["/rollouts"]


def test_an_unsafe_body_is_refused_before_signing_with_the_station_s_nack_code(
    api_client, store: Store, fleet_key
) -> None:
    from fleet.rollout import ConfigManager
    from roadside.clock import ManualClock

    sent: list[str] = []
    manager = ConfigManager(
        store, fleet_key, ManualClock(datetime.fromtimestamp(T0, UTC)), lambda t, *_: sent.append(t)
    )
    api = api_client(manager, role="operator")
    body = {"qc": {"channels": {"rain_intensity": {"high": 0.001}}}}  # flags every reading
    resp = api.post("/config/documents", json={"scope": "fleet", "body": body})
    assert resp.status_code == 400, resp.text
    answer = resp.json()
    assert answer["code"] == "bad_document" and answer["nack"] == "unsafe"
    assert store.documents() == [] and sent == []
