"""Data checks, the downwind sector, field reports, after-action reports, partner shapes."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime

import pytest

from fleet.response import checks, onsite
from fleet.response.errors import RegisterError, WorkflowError
from fleet.response.partners import datastreams, observations, things
from fleet.response.service import Response
from fleet.store import IngestBatch, StationUpdate
from roadside.contract import Record

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


def obs(name: str, east_m: float, value: float) -> checks.Observation:
    lon = 121.45 + east_m / (111_195 * math.cos(math.radians(31.35)))
    return checks.Observation(name, lon, 31.35, value)


def test_dry_gauge_among_wet_neighbours_is_flagged() -> None:
    rain = [obs("a", 0, 0.0), obs("b", 800, 22.0), obs("c", 1500, 18.5), obs("far", 9000, 0.0)]
    found = checks.gauge_checks(rain)
    assert [(e.station, e.check) for e in found] == [("a", "gauge_dry")]
    assert set(found[0].neighbours) == {"b", "c"}
    assert checks.gauge_checks([obs("a", 0, 0.0), obs("b", 800, 22.0)]) == []  # one neighbour


def test_level_sensor_disagreeing_with_agreeing_neighbours() -> None:
    depth = [obs("a", 0, 420.0), obs("b", 700, 40.0), obs("c", 1200, 55.0)]
    assert [e.station for e in checks.level_checks(depth)] == ["a"]
    spread = [obs("a", 0, 420.0), obs("b", 700, 40.0), obs("c", 1200, 300.0)]
    assert checks.level_checks(spread) == []  # neighbours disagree: local ponding plausible


def test_sector_narrow_in_steady_wind_and_a_circle_when_calm(resp: Response) -> None:
    steady = onsite.Wind(from_deg=0.0, speed_ms=5.0, sigma_deg=8.0)
    poly = onsite.sector(121.45, 31.37, steady)
    _, miny, _, maxy = poly.bounds
    assert maxy == pytest.approx(31.37) and miny < 31.37  # wind from north: sector to the south
    assert onsite.half_angle(steady) == 16.0
    assert onsite.half_angle(onsite.Wind(0.0, 1.5, 8.0)) > 90  # widening at low speed
    calm = onsite.sector(121.45, 31.37, onsite.Wind(0.0, 0.6, 8.0))
    assert calm.contains(onsite.sector(121.45, 31.37, steady).centroid)
    assert calm.bounds[3] > 31.37 and calm.bounds[1] < 31.37  # all around
    _, sigma = onsite.yamartino([350.0, 10.0, 0.0, 5.0, 355.0])
    assert 0 < sigma < 15


def test_incident_sector_lists_cells_and_units(resp: Response) -> None:
    ku3 = resp.grid.unit("KU-003")  # the chemical store
    wind = onsite.Wind(from_deg=270.0, speed_ms=4.0, sigma_deg=10.0)  # from the west
    west = resp.field.open_incident("chemical leak", ku3.lon - 0.01, ku3.lat, "alice", 0, wind)
    kinds = {f["properties"]["kind"] for f in west["sector"]["features"]}
    assert kinds >= {"downwind_sector", "incident", "cell", "key_unit"}
    units = [
        f["properties"]["id"]
        for f in west["sector"]["features"]
        if f["properties"]["kind"] == "key_unit"
    ]
    assert "KU-003" in units
    east = resp.field.set_wind(west["id"], onsite.Wind(90.0, 4.0, 10.0), 1)
    units = [f["properties"].get("id") for f in east["sector"]["features"]]
    assert "KU-003" not in units  # blowing away from it now
    assert resp.field.incident(west["id"], 2)["wind"]["from_deg"] == 90.0


def test_field_report_raises_the_cell_and_drafts(resp: Response) -> None:
    cell = resp.grid.cell("BS-G06")  # residential, not very vulnerable
    c = cell.geometry().centroid
    out = resp.field.report(
        by="grid-worker-7",
        lon=c.x,
        lat=c.y,
        depth_class=">30cm",
        note="路口积水没过路沿",
        photo_b64=PNG,
        now=resp.now(),
    )
    assert out["cell"] == "BS-G06" and out["proposal"]["level"] == "III"
    assert out["draft"] is not None and out["draft"]["content"]["signal"] == "waterlogging"
    assert resp.field.photo(out["photo"]).startswith(b"\x89PNG")
    cleared = resp.field.report(
        by="grid-worker-7",
        lon=c.x,
        lat=c.y,
        depth_class="none",
        note="退水",
        photo_b64=None,
        now=resp.now() + 60,
    )
    assert cleared["proposal"]["level"] is None
    with pytest.raises(RegisterError, match="lies in no grid cell"):
        resp.field.report(by="w", lon=0, lat=0, depth_class="none", note="", photo_b64=None, now=0)
    with pytest.raises(WorkflowError, match="expected a JPEG or PNG"):
        resp.field.report(
            by="w",
            lon=c.x,
            lat=c.y,
            depth_class="none",
            note="",
            photo_b64=base64.b64encode(b"<script>").decode(),
            now=0,
        )


def _ingest(resp: Response, station: str, cell: str, rows: list[Record]) -> None:
    store = resp.db.store
    store.update_station(StationUpdate(station, seen=resp.now(), grid_cell=cell))
    store.ingest([IngestBatch(station, "live", rows[0].seq, rows[-1].seq, tuple(rows), resp.now())])


def test_data_checks_and_after_action_from_stored_records(resp: Response) -> None:
    t = resp.now()
    for i, (st, cell, rain) in enumerate(
        [("s1", "BS-G02", 0.0), ("s2", "BS-G02", 25.0), ("s3", "BS-G02", 30.0)]
    ):
        _ingest(
            resp,
            st,
            cell,
            [
                Record(
                    seq=1,
                    kind="derived",
                    time=datetime.fromtimestamp(t - 60, UTC),
                    channel="rain_1h",
                    value=rain,
                    unit="mm",
                ),
                Record(
                    seq=2,
                    kind="reading",
                    time=datetime.fromtimestamp(t - 30, UTC),
                    channel="water_depth",
                    value=40.0 + i,
                    unit="mm",
                ),
            ],
        )
    found = resp.field.data_checks(t + 1)
    assert [(e["station"], e["check"]) for e in found] == [("s1", "gauge_dry")]
    report = resp.after_action("BS-G02", t - 3600, t + 3600)
    assert report["peak_rain_1h"]["mm"] == 30.0 and report["peak_rain_1h"]["station"] == "s3"
    assert set(report["stations"]) == {"s1", "s2", "s3"}
    sta = things(resp.db, "http://x/partners/v1.1")
    assert {v["@iot.id"] for v in sta["value"]} == {"s1", "s2", "s3"}
    ds = datastreams(resp.db, "http://x", "s2")
    assert [d["@iot.id"] for d in ds["value"]] == ["s2:water_depth"]
    o = observations(resp.db, "s2:water_depth", 10, None)
    assert o["value"][0]["result"] == 41.0 and o["value"][0]["phenomenonTime"].endswith("Z")


def test_partner_tokens(resp: Response) -> None:
    token = resp.partners.add("drainage", "admin", 0)
    assert resp.partners.who(token) == "drainage" and resp.partners.who("rsp_x") is None
    assert "digest" not in resp.partners.list()[0]
    resp.partners.revoke("drainage")
    assert resp.partners.who(token) is None
