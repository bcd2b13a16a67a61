"""roadside-fleet response: against a real API server (uvicorn on loopback), exit codes, --json."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from fleet.api import create_app
from fleet.auth import Auth
from fleet.cli import main
from fleet.response.errors import ChannelError
from fleet.store import open_store
from sim.broker import free_port


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    conf = tmp_path / "response.toml"
    conf.write_text(
        f'[response]\n[[response.channels]]\nname = "feed"\nkind = "feed"\n'
        f'path = "{tmp_path / "feed.atom"}"\n'
    )
    monkeypatch.setenv("ROADSIDE_RESPONSE_CONFIG", str(conf))
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    runner = CliRunner()
    assert runner.invoke(main, ["response", "sample", "--db", db, "--json"]).exit_code == 0
    store = open_store(db)
    auth = Auth(store)
    tokens = {}
    for name, role in [("alice", "operator"), ("bob", "approver")]:
        auth.add_user(name, None, [role])
        tokens[name] = auth.issue_token(name, "cli-test")
    port = free_port()
    app = create_app(store, auth=auth, allowed_hosts=["127.0.0.1"])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    api = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {"api": api, **tokens}
    srv.should_exit = True
    t.join(10)
    store.close()


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["response", *args])
    return r.exit_code, r.output


def test_draft_approve_publish_from_the_command_line(server: dict[str, str]) -> None:
    api, alice, bob = server["api"], server["alice"], server["bob"]
    code, out = run(
        "draft",
        "--cell",
        "BS-G04",
        "--signal",
        "rainstorm",
        "--level",
        "IV",
        "--api",
        api,
        "--token",
        alice,
        "--json",
    )
    assert code == 0, out
    ident = json.loads(out)["id"]
    code, out = run("approve", ident, "--api", api, "--token", alice)
    assert code == 2 and "lacks the approver role" in out  # refused: bad input, exit 2
    assert run("approve", ident, "--api", api, "--token", bob)[0] == 0
    code, out = run("publish", ident, "--api", api, "--token", alice, "--json")
    assert code == 0, out
    identifier = json.loads(out)["message"]["identifier"]
    assert httpx.get(f"{api}/warnings/cap/{identifier}.xml").status_code == 200
    code, out = run("cells", "--api", api, "--token", alice, "--json")
    assert code == 0 and len(json.loads(out)) == 12
    code, out = run("status", identifier, "--api", api, "--token", alice)
    assert code == 0
    code, out = run(
        "incident",
        "leak",
        "--lon",
        "121.46",
        "--lat",
        "31.35",
        "--wind-from",
        "0",
        "--speed",
        "3",
        "--sigma",
        "10",
        "--api",
        api,
        "--token",
        alice,
    )
    assert code == 0 and "half-angle 20°" in out
    code, out = run("cells", "--api", "http://127.0.0.1:1", "--token", alice)
    assert code == 1 and "--api" in out  # unreachable: runtime failure


def test_publication_refused_without_channels(
    tmp_path: Path, make_response: Any, clock: Any
) -> None:
    """A process without channels would plan deliveries nobody sends: it refuses instead."""
    resp = make_response(open_store(f"sqlite:///{tmp_path / 'x.db'}"), clock, require_channels=True)
    m = resp.alerts.draft(cells=["BS-G01"], signal="gale", level="IV", author="a", now=resp.now())
    resp.alerts.approve(m["id"], "b", resp.now())
    with pytest.raises(ChannelError, match="no live channel is configured"):
        resp.publish(m["id"], "a")
