"""Issue 9 (4): nobody unauthenticated reads or changes anything; roles, tokens, sessions with
CSRF, the Host allow-list, body limits, the audit log — on SQLite and PostgreSQL, through the
real API app and the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet.auth import Auth, Principal, implied
from fleet.cli import main
from fleet.errors import AuthError
from fleet.store import Store

PUSH = {"scope": "fleet", "body": {"warnings": {"rainstorm": {"blue_1h_mm": 25}}}}


def _is_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"], body


def test_without_credentials_nothing_is_read_and_nothing_pushed(api_client, store: Store) -> None:
    api = api_client(role=None)
    for path in ("/stations", "/readings", "/events", "/config/status", "/health", "/audit"):
        _is_error(api.get(path), 401, "unauthenticated")
    _is_error(api.post("/config/documents", json=PUSH), 401, "unauthenticated")
    _is_error(api.put("/groups/canary", json={"stations": ["st-1"]}), 401, "unauthenticated")
    _is_error(api.post("/rollouts", json=PUSH), 401, "unauthenticated")
    assert store.documents() == [] and store.groups() == {}
    api.headers["Authorization"] = "Bearer rst_forged"
    _is_error(api.get("/stations"), 401, "bad_credentials")
    api.headers["Authorization"] = "Basic YWRtaW46YWRtaW4="
    _is_error(api.get("/stations"), 401, "bad_credentials")
    assert api.get("/livez").json() == {"ok": True, "broker_connected": False}


def test_roles_viewer_reads_operator_changes_admin_manages_users(api_client, store) -> None:
    viewer, operator, admin = api_client(role="viewer"), api_client(role="operator"), api_client()
    assert viewer.get("/stations").status_code == 200
    _is_error(viewer.put("/groups/canary", json={"stations": ["st-1"]}), 403, "forbidden")
    _is_error(viewer.post("/config/documents", json=PUSH), 403, "forbidden")
    assert store.groups() == {}
    assert operator.put("/groups/canary", json={"stations": ["st-1"]}).status_code == 200
    _is_error(operator.post("/config/documents", json=PUSH), 503, "cannot_push")  # no key
    _is_error(operator.get("/users"), 403, "forbidden")
    _is_error(operator.post("/users", json={"name": "x", "roles": ["admin"]}), 403, "forbidden")
    made = admin.post("/users", json={"name": "script", "roles": ["viewer"]})
    assert made.status_code == 201
    token = admin.post("/users/script/tokens", json={"label": "cron"}).json()["token"]
    script = api_client(role=None)
    script.headers["Authorization"] = f"Bearer {token}"
    assert script.get("/auth/me").json() == {"name": "script", "roles": ["viewer"], "via": "token"}
    assert admin.delete("/users/script/tokens").json() == {"revoked": 1}
    _is_error(script.get("/stations"), 401, "bad_credentials")
    log = admin.get("/audit").json()
    actions = [(e["action"], e["target"], e["principal"].split("-")[0]) for e in log]
    assert ("group_set", "canary", "operator") in actions
    assert ("user_add", "script", "admin") in actions
    assert ("token_create", "script", "admin") in actions
    assert ("token_revoke", "script", "admin") in actions
    assert not any(a[2] == "viewer" for a in actions)  # refused attempts changed nothing


def test_console_session_needs_the_csrf_header_on_changes(api_client, store) -> None:
    Auth(store).add_user("ana", "correct horse battery", ["operator"])
    console = api_client(role=None)
    _is_error(
        console.post("/auth/login", json={"name": "ana", "password": "wrong password!"}),
        401,
        "bad_credentials",
    )
    _is_error(
        console.post("/auth/login", json={"name": "nobody", "password": "x" * 12}),
        401,
        "bad_credentials",
    )
    logged = console.post("/auth/login", json={"name": "ana", "password": "correct horse battery"})
    assert logged.status_code == 200
    csrf = logged.json()["csrf_token"]
    cookie = logged.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert console.get("/auth/me").json()["via"] == "session"
    # a cross-site form post carries the cookie but cannot know the CSRF token
    _is_error(console.put("/groups/canary", json={"stations": ["a"]}), 403, "csrf_failed")
    wrong = {
        "X-CSRF-Token": csrf[:-1] + ("y" if csrf.endswith("x") else "x")
    }  # one in 64 ends in x
    _is_error(
        console.put("/groups/canary", json={"stations": ["a"]}, headers=wrong), 403, "csrf_failed"
    )
    assert store.groups() == {}
    ok = console.put("/groups/canary", json={"stations": ["a"]}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and store.groups() == {"canary": ["a"]}
    assert console.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    _is_error(console.get("/stations"), 401, "unauthenticated")
    entries = Auth(store).audit_log()
    assert [(e.principal, e.via, e.action) for e in entries if e.action != "login_failed"] == [
        ("ana", "session", "group_set")
    ]
    assert {e.principal for e in entries if e.action == "login_failed"} == {"ana", "nobody"}


def test_a_foreign_host_header_is_refused_even_with_a_good_token(api_client) -> None:
    """DNS rebinding: a web page resolving evil.example to 127.0.0.1 sends Host: evil.example."""
    api = api_client()
    _is_error(api.get("/stations", headers={"Host": "evil.example"}), 421, "host_not_allowed")
    _is_error(api.get("/livez", headers={"Host": "evil.example:8080"}), 421, "host_not_allowed")
    assert api.get("/stations", headers={"Host": "localhost:8080"}).status_code == 200
    assert api.get("/stations", headers={"Host": "[::1]:8080"}).status_code == 200
    wide = api_client(allowed_hosts=("fleet.example",))
    assert wide.get("/stations", headers={"Host": "fleet.example"}).status_code == 200
    _is_error(wide.get("/stations"), 421, "host_not_allowed")


def test_bodies_over_the_limit_are_refused_declared_or_streamed(api_client, store) -> None:
    api = api_client(max_body_bytes=10_000)
    big = {"scope": "fleet", "body": {"qc": {"x": "y" * 20_000}}}
    _is_error(api.post("/config/documents", json=big), 413, "body_too_large")

    def chunks():
        yield b'{"stations": ["'
        for _ in range(50):
            yield b"a" * 1000
        yield b'"]}'

    streamed = api.put("/groups/g", content=chunks(), headers={"Content-Type": "application/json"})
    _is_error(streamed, 413, "body_too_large")
    assert store.groups() == {}


def test_every_error_is_json_with_code_and_detail(api_client) -> None:
    api = api_client()
    _is_error(api.get("/nope"), 404, "not_found")
    _is_error(api.delete("/stations"), 405, "method_not_allowed")
    _is_error(api.get("/stations/nope"), 404, "unknown_station")
    _is_error(api.get("/rollouts/r0"), 404, "unknown_rollout")
    _is_error(api.get("/readings", params={"limit": 0}), 422, "invalid_request")
    _is_error(api.post("/config/documents", content=b"{not json"), 422, "invalid_request")
    _is_error(api.post("/users", json={"name": "bad name!", "roles": ["viewer"]}), 400, "bad_user")


def test_auth_rules(store: Store) -> None:
    auth = Auth(store)
    assert implied(["approver"]) == {"viewer", "operator", "approver"}
    assert Principal("a", frozenset({"admin"}), "token").has("operator")
    assert not Principal("v", frozenset({"viewer"}), "token").has("operator")
    with pytest.raises(AuthError, match="roles must be among"):
        auth.add_user("x", None, ["root"])
    with pytest.raises(AuthError, match="at least 10"):
        auth.add_user("x", "short", ["viewer"])
    auth.add_user("x", "long enough pw", ["viewer"])
    with pytest.raises(AuthError, match="exists already"):
        auth.add_user("x", None, ["viewer"])
    stored = store._query("SELECT password FROM auth_users WHERE name = 'x'")[0][0]  # type: ignore[attr-defined]
    assert stored.startswith("scrypt$") and "long enough" not in stored
    token = auth.issue_token("x", "t")
    assert token not in str(store._query("SELECT * FROM auth_tokens"))  # type: ignore[attr-defined]
    auth.disable_user("x")
    assert auth.by_token(token) is None
    with pytest.raises(AuthError):
        auth.login("x", "long enough pw")


def test_cli_user_add_and_token_create(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        main,
        ["user", "add", "ops", "--role", "operator", "--password-stdin", "--db", store_url],
        input="a long password\n",
    )
    assert added.exit_code == 0 and "user ops added" in added.output, added.output
    again = runner.invoke(main, ["user", "add", "ops", "--role", "viewer", "--no-password",
                                 "--db", store_url])  # fmt: skip
    assert again.exit_code == 1 and "exists already" in again.output
    bad_role = runner.invoke(main, ["user", "add", "x", "--role", "root", "--db", store_url])
    assert bad_role.exit_code == 2
    made = runner.invoke(main, ["token", "create", "ops", "--json", "--db", store_url])
    assert made.exit_code == 0, made.output
    unknown = runner.invoke(main, ["token", "create", "ghost", "--db", store_url])
    assert unknown.exit_code == 1 and "not known" in unknown.output
    listed = runner.invoke(main, ["user", "list", "--db", store_url])
    assert "ops" in listed.output and "operator" in listed.output
    body = tmp_path / "b.json"
    body.write_text("{}")
    no_token = runner.invoke(main, ["push", "fleet", str(body)], env={"ROADSIDE_TOKEN": ""})
    assert no_token.exit_code == 2 and "--token" in no_token.output
