"""The response router inside the controller's app: roles, errors as {code, detail}, the flow."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fleet.api import create_app
from fleet.auth import Auth
from fleet.response import cap
from fleet.response.service import Response
from fleet.store import Store


@pytest.fixture
def api(sqlite_store: Store, resp: Response) -> Iterator[dict[str, TestClient]]:
    auth = Auth(sqlite_store)
    app = create_app(sqlite_store, auth=auth, allowed_hosts=["127.0.0.1"])
    app.state.response = resp
    clients = {}
    for name, role in [
        ("alice", "operator"),
        ("bob", "approver"),
        ("root", "admin"),
        ("vera", "viewer"),
    ]:
        auth.add_user(name, None, [role])
        c = TestClient(app, base_url="http://127.0.0.1")
        c.headers["Authorization"] = f"Bearer {auth.issue_token(name, 'test')}"
        clients[name] = c
    clients["anon"] = TestClient(app, base_url="http://127.0.0.1")
    yield clients


def test_warning_flow_through_the_api(api: dict[str, TestClient]) -> None:
    alice, bob, anon, vera = api["alice"], api["bob"], api["anon"], api["vera"]
    body = {"cells": ["BS-G03"], "signal": "rainstorm", "level": "III"}
    assert anon.post("/warnings", json=body).status_code == 401
    assert vera.post("/warnings", json=body).status_code == 403
    r = alice.post("/warnings", json=body)
    assert r.status_code == 201, r.text
    ident = r.json()["id"]
    r = alice.post(f"/warnings/{ident}/approve")
    assert r.status_code == 403  # operator is no approver
    r = api["root"].post(f"/warnings/{ident}/publish")
    assert r.status_code == 409 and r.json()["code"] == "workflow_refused"
    assert bob.post(f"/warnings/{ident}/approve").status_code == 200
    r = alice.post(f"/warnings/{ident}/publish")
    assert r.status_code == 200, r.text
    identifier = r.json()["message"]["identifier"]
    xml = anon.get(f"/warnings/cap/{identifier}.xml")
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/cap+xml")
    cap.validate(xml.content)
    assert identifier in anon.get("/warnings/feed.atom").text
    r = alice.post("/warnings", json={**body, "msg_type": "Update"})
    assert r.status_code == 409 and "must reference" in r.json()["detail"]
    r = alice.post(f"/warnings/{identifier}/cancel")
    assert r.status_code == 201 and r.json()["refs"]
    assert vera.get(f"/warnings/{identifier}/deliveries").status_code == 200
    assert vera.get("/warnings/nope").json()["code"] == "not_found"


def test_author_cannot_approve_through_the_api(api: dict[str, TestClient]) -> None:
    bob = api["bob"]
    r = bob.post("/warnings", json={"cells": ["BS-G01"], "signal": "gale", "level": "II"})
    r = bob.post(f"/warnings/{r.json()['id']}/approve")
    assert r.status_code == 409 and "cannot approve" in r.json()["detail"]


def test_grid_decision_actions_and_reports(api: dict[str, TestClient]) -> None:
    alice, bob, vera = api["alice"], api["bob"], api["vera"]
    cells = vera.get("/grid/cells").json()
    assert len(cells["features"]) == 12
    assert alice.post("/grid/cells/BS-G02/decision", json={"level": "IV"}).status_code == 403
    r = bob.post("/grid/cells/BS-G02/decision", json={"level": "III", "note": "防汛办确认"})
    assert r.status_code == 201 and r.json()["by"] == "bob"
    acts = vera.get("/grid/actions", params={"cell": "BS-G02"}).json()
    assert {a["action"] for a in acts} >= {"duty", "notify_units"}
    r = alice.post(f"/grid/actions/{acts[0]['id']}", json={"state": "done"})
    assert r.status_code == 200 and r.json()["done"] is not None
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    r = alice.post(
        "/reports",
        json={
            "lon": 121.475,
            "lat": 31.37,
            "depth_class": "15-30cm",
            "note": "积水",
            "photo_base64": png,
        },
    )
    assert r.status_code == 201, r.text
    assert vera.get(f"/reports/photos/{r.json()['photo']}").content.startswith(b"\x89PNG")
    r = alice.post(
        "/incidents",
        json={
            "name": "leak",
            "lon": 121.45,
            "lat": 31.33,
            "wind": {"from_deg": 0, "speed_ms": 3, "sigma_deg": 12},
        },
    )
    assert r.status_code == 201 and r.json()["sector"]["type"] == "FeatureCollection"
    r = vera.get("/reports/after-action/BS-G02", params={"start": 0, "end": 4e9})
    assert r.status_code == 200 and r.json()["decisions"][0]["level"] == "III"
    r = api["root"].post("/grid/cells/import", json={"source": "c.csv", "text": "code\n"})
    assert r.status_code == 400 and r.json()["code"] == "bad_register"


def test_partner_routes_need_a_partner_token(api: dict[str, TestClient]) -> None:
    root, anon = api["root"], api["anon"]
    assert api["alice"].post("/partners", json={"name": "traffic"}).status_code == 403
    token = root.post("/partners", json={"name": "traffic"}).json()["token"]
    assert anon.get("/partners/v1.1/Things").status_code == 404
    user_token = root.headers["Authorization"]
    assert (
        anon.get("/partners/v1.1/Things", headers={"Authorization": user_token}).status_code == 404
    )
    h = {"Authorization": f"Bearer {token}"}
    assert anon.get("/partners/v1.1/Things", headers=h).status_code == 200
    assert anon.get("/partners/v1.1/Things('st-1')/Datastreams", headers=h).json()["value"] == []
    assert len(anon.get("/partners/geojson/units", headers=h).json()["features"]) == 12
    assert anon.get("/partners/cap/feed.atom", headers=h).status_code == 200
    assert anon.post("/partners", headers=h, json={"name": "x"}).status_code == 401
