"""The risk register: imports with row-naming errors, versions, inspections, the plan."""

from __future__ import annotations

import json

import pytest

from fleet.response import register as reg
from fleet.response.errors import PlanError, RegisterError
from fleet.response.plan import ActiveSignal, load_plan_text, propose, sample_plan_text
from fleet.response.service import Response

CSV = (
    "code,name,kind,vulnerability,wkt\n"
    'C1,One,residential,0.5,"POLYGON((121.40 31.30, 121.41 31.30, 121.41 31.31, 121.40 31.30))"\n'
    'C2,Two,harbour,0.5,"POLYGON((121.41 31.30, 121.42 31.30, 121.42 31.31, 121.41 31.30))"\n'
)


def test_csv_error_names_file_and_row() -> None:
    with pytest.raises(RegisterError, match=r"cells.csv: row 3: 'kind' is 'harbour'"):
        reg.parse_cells(CSV, "cells.csv")


def test_csv_missing_column_and_bad_wkt() -> None:
    with pytest.raises(RegisterError, match=r"row 1: missing column\(s\) wkt"):
        reg.parse_cells("code,name,kind,vulnerability\n", "c.csv")
    bad = "code,name,kind,vulnerability,wkt\nC1,One,residential,0.5,POLYGON((1 2\n"
    with pytest.raises(RegisterError, match=r"c.csv: row 2: 'wkt' is not a WKT polygon"):
        reg.parse_cells(bad, "c.csv")


def test_geojson_errors_name_the_feature() -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"code": "A", "name": "a", "kind": "residential", "vulnerability": 2},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
            }
        ],
    }
    with pytest.raises(RegisterError, match=r"x.geojson: feature 1: 'vulnerability' 2.0 is out"):
        reg.parse_cells(json.dumps(doc), "x.geojson")
    with pytest.raises(RegisterError, match="not JSON"):
        reg.parse_cells("{", "x.geojson")


def test_sample_register_is_complete(resp: Response) -> None:
    r = resp.grid.register()
    assert len(r.cells) == 12 and len(r.hazards) == 8 and len(r.units) == 12
    assert all(u.contacts and u.cell in r.cells for u in r.units.values())
    assert all(h.cell in r.cells for h in r.hazards.values())


def test_unit_outside_district_refused(resp: Response) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [100.0, 20.0]},
                "properties": {
                    "id": "X",
                    "kind": "school",
                    "name": "far",
                    "contacts": [{"channel": "sms", "address": "1"}],
                },
            }
        ],
    }
    with pytest.raises(RegisterError, match=r"u.geojson: feature 1: .* lies in no grid cell"):
        resp.grid.import_units(json.dumps(doc), "u.geojson", "admin", 0)


def test_versions_only_on_change(resp: Response) -> None:
    cells = resp.db.entities("cell")
    assert cells["BS-G01"]["_version"] == 1
    resp.grid.load_sample("admin", 10)  # same content: no new version
    assert resp.db.entities("cell")["BS-G01"]["_version"] == 1
    doc = reg.feature_collection([resp.grid.cell("BS-G01")])
    doc["features"][0]["properties"]["vulnerability"] = 0.99
    resp.grid.import_cells(json.dumps(doc), "c.geojson", "bob", 20)
    hist = resp.db.history("cell", "BS-G01")
    assert [h["version"] for h in hist] == [1, 2] and hist[1]["by"] == "bob"
    assert resp.grid.cell("BS-G01").vulnerability == 0.99


def test_inspections_overdue(resp: Response) -> None:
    a = resp.grid.add_inspection("KU-003", due=100.0, by="admin")
    b = resp.grid.add_inspection("KU-004", due=500.0, by="admin")
    resp.grid.record_inspection(b["id"], 90.0, "fail", "down conductor corroded")
    rows = {r["id"]: r for r in resp.grid.inspections(now=200.0)}
    assert rows[a["id"]]["overdue"] is True
    assert rows[b["id"]]["overdue"] is False and rows[b["id"]]["findings"]


def test_plan_levels_and_cumulative_actions(resp: Response) -> None:
    plan = load_plan_text(sample_plan_text(), "plan.toml")
    cell = resp.grid.cell("BS-G01")  # residential, low vulnerability
    p = propose(plan, cell, [ActiveSignal("rainstorm", "yellow", "st-1")], [])
    assert p.level == "III"
    ids = [a.id for a in p.actions]
    assert "duty" in ids and "notify_units" in ids and "suspend" not in ids
    forecast = propose(plan, cell, [ActiveSignal("waterlogging", "blue", "st-1", "Likely")], [])
    assert forecast.level == "IV" and forecast.forecast_only


def test_vulnerable_cell_with_hazards_goes_one_up(resp: Response) -> None:
    plan = resp.grid.plan()
    cell = resp.grid.cell("BS-G05")  # riverside, vulnerability 0.9, hazard points inside
    hazards = resp.grid.register().hazards.values()
    p = propose(plan, cell, [ActiveSignal("waterlogging", "blue", "st-1")], hazards)
    assert p.level == "III" and any("vulnerability" in r for r in p.reasons)


def test_bad_plan_names_the_field() -> None:
    with pytest.raises(PlanError, match=r"signals.rainstorm.blue = 'V'"):
        load_plan_text('version = "x"\n[signals]\nrainstorm = { blue = "V" }\n', "p.toml")
