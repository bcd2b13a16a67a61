"""The console in Debian's chromium against a real controller: sign-in, a storm turning a station
and its cell orange live, a canary rollout with its acks, roles, CSRF, and reconnect."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from fleet.loadgen import refuse_when
from roadside import wire
from tests.console.browser import Console, free_port, ready, sign_in, wait

pytestmark = pytest.mark.slow

THRESHOLDS = {"warnings": {"rainstorm": {"levels": {"blue": {"rain_1h": 30}}}}}
NEVER_WARNS = refuse_when(
    ("warnings", "rainstorm", "levels", "blue", "rain_1h"),
    lambda v: v > 500,
    "unsafe: rainstorm never warns",
)


def _event(seq: int, level: str) -> wire.WireRecord:
    index = ["none", "blue", "yellow", "orange", "red"].index(level)
    return wire.WireRecord(
        seq=seq,
        kind="event",
        time=datetime.now(UTC),
        channel="rainstorm",
        value=float(index),
        reason="raise",
        payload={"kind": "raise", "signal": "rainstorm", "level": level, "rule": "rain_1h >= 80"},
    )


def _css(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_wrong_password_is_refused_and_the_right_one_signs_in(
    console: Console, browser: Any
) -> None:
    browser.get(f"{console.url}/console/?lang=en")
    ready(browser, "signin")
    browser.find_element(By.NAME, "name").send_keys("duty")
    browser.find_element(By.NAME, "password").send_keys("not-the-password")
    browser.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
    wait(browser, lambda d: "Sign-in failed" in d.find_element(By.ID, "signin-error").text, "error")
    sign_in(browser, console.url, "duty", "en")
    assert "duty (operator)" in browser.find_element(By.ID, "who").text
    browser.find_element(By.ID, "lang").click()
    wait(browser, lambda d: d.find_element(By.ID, "nav").text.startswith("辖区总览"), "Chinese nav")


def test_a_storm_turns_the_station_and_its_cell_orange_without_a_reload(
    console: Console, browser: Any, cell_codes: list[str]
) -> None:
    cell = cell_codes[5]
    station = console.station("st-101", cell)
    wait(browser, lambda _: console.store.station("st-101") is not None, "station registered")
    sign_in(browser, console.url, "guest")
    row = 'tr[data-station="st-101"]'
    wait(browser, lambda d: _css(d, f'{row}[data-level="none"]'), "station listed, no warning")
    assert _css(browser, f"path.cell-{cell}.level-none")
    browser.execute_script("window.__same_page = true")
    station.send([_event(1, "blue")], lane="event")
    wait(browser, lambda d: _css(d, f'{row}[data-level="blue"]'), "station turns blue")
    station.send([_event(2, "orange")], lane="event")
    wait(browser, lambda d: _css(d, f'{row}[data-level="orange"]'), "station turns orange")
    wait(browser, lambda d: _css(d, f"path.cell-{cell}.level-orange"), "cell turns orange")
    marker = "return window.__district.markers['st-101']?.options.fillColor"
    wait(browser, lambda d: d.execute_script(marker) == "#f07f00", "marker turns orange")
    assert browser.execute_script("return window.__same_page") is True  # live, not reloaded
    assert not _css(browser, f"path.cell-{cell_codes[0]}.level-orange")


def test_a_threshold_change_goes_to_the_canary_group_first_and_its_acks_show(
    console: Console, browser: Any, cell_codes: list[str]
) -> None:
    for name in ("st-201", "st-202", "st-203"):
        console.station(name, cell_codes[0], refuse=NEVER_WARNS)
    wait(browser, lambda _: len(console.store.stations()) == 3, "three stations registered")
    sign_in(browser, console.url, "duty", "en", route="config")
    members = browser.find_element(By.ID, "members")
    members.clear()
    members.send_keys("st-201, st-202")
    browser.find_element(By.ID, "save-group").click()
    wait(browser, lambda _: console.store.groups().get("canary") == ["st-201", "st-202"], "group")
    body = browser.find_element(By.ID, "body")
    body.clear()
    body.send_keys(json.dumps(THRESHOLDS))
    wait(browser, lambda d: "rain_1h" in d.find_element(By.ID, "diff").text, "diff shows change")
    browser.find_element(By.ID, "rollout").click()
    wait(browser, lambda d: _css(d, "#rollouts tr[data-state]"), "rollout listed")
    for name in ("st-201", "st-202", "st-203"):
        wait(
            browser,
            lambda d, n=name: _css(d, f'#status tr[data-station="{n}"][data-result="ack"]'),
            f"{name} acked",
        )
    wait(browser, lambda d: _css(d, '#rollouts tr[data-state="done"]'), "rollout done")
    # every station now runs what the editor holds: nothing left to change on any of them
    changes = (
        "return [...document.querySelectorAll('#status td[data-changes]')].map(c => c.innerText)"
    )
    wait(browser, lambda d: d.execute_script(changes) == ["0", "0", "0"], "no changes left")
    canaries = [s.answers[0].received for s in console.stations[:2]]
    assert max(canaries) < console.stations[2].answers[0].received  # canaries first

    # a value every station would refuse (no storm reaches it): the console's check, which is
    # the contract's own, refuses it with the station's reason before anything is signed
    body.clear()
    body.send_keys(json.dumps({"warnings": {"rainstorm": {"levels": {"blue": {"rain_1h": 900}}}}}))
    browser.find_element(By.ID, "rollout").click()
    wait(browser, lambda d: "unsafe" in d.find_element(By.ID, "check").text, "refusal shown")
    assert "error" in browser.find_element(By.ID, "check").get_attribute("class")
    assert not _css(browser, '#rollouts tr[data-state="halted"]')
    assert [a.version for a in console.stations[2].answers] == [1]


def test_a_viewer_cannot_push(console: Console, browser: Any) -> None:
    sign_in(browser, console.url, "guest", "en", route="config")
    assert not browser.find_element(By.ID, "push").is_enabled()
    assert not browser.find_element(By.ID, "rollout").is_enabled()
    # with the buttons bypassed, the API itself refuses the viewer's session (CSRF token and all)
    answer = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const me = await (await fetch('/console/api/me')).json();
        const r = await fetch('/config/documents', {method: 'POST', headers: {
          'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
          body: JSON.stringify({scope: 'fleet', body: {warnings: {}}})});
        done([r.status, await r.json()]);"""
    )
    assert answer[0] == 403 and answer[1]["code"] == "forbidden"
    assert console.store.documents() == []


class _Attacker(BaseHTTPRequestHandler):
    """A page on another origin that posts a document to the console's controller."""

    target = ""

    def do_GET(self) -> None:
        field = """name='{"scope":"fleet","body":{"warnings":{}},"x":"' value='"}'"""
        page = f"""<!doctype html><body><form id=f method=POST enctype=text/plain
          action="{self.target}/config/documents"><input {field}></form>
          <script>
          fetch("{self.target}/config/documents", {{method: "POST", mode: "no-cors",
            credentials: "include", headers: {{"Content-Type": "text/plain"}},
            body: JSON.stringify({{scope: "fleet", body: {{warnings: {{}}}}}})}})
            .finally(() => {{ document.title = "sent"; document.getElementById("f").submit(); }});
          </script></body>"""
        data = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


def test_a_cross_site_request_is_refused(console: Console, browser: Any) -> None:
    sign_in(browser, console.url, "admin", "en")
    _Attacker.target = console.url
    attacker = ThreadingHTTPServer(("127.0.0.1", free_port()), _Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        # the same site on another port (the cookie goes along, the CSRF token cannot), then
        # another site (the SameSite=Strict cookie stays home)
        for host, code in (("127.0.0.1", "csrf_failed"), ("localhost", "unauthenticated")):
            browser.get(f"http://{host}:{attacker.server_address[1]}/")
            wait(browser, lambda d: "/config/documents" in d.current_url, f"form posted ({host})")
            assert code in browser.find_element(By.TAG_NAME, "body").text
    finally:
        attacker.shutdown()
    assert console.store.documents() == []
    pushes = [e for e in console.auth.audit_log() if e.target == "/config/documents"]
    assert pushes == []


def test_live_updates_come_back_after_a_controller_restart(
    console: Console, browser: Any, cell_codes: list[str]
) -> None:
    station = console.station("st-301", cell_codes[2])
    sign_in(browser, console.url, "guest", "en")
    wait(browser, lambda d: _css(d, 'tr[data-station="st-301"]'), "station listed")
    wait(browser, lambda d: _css(d, "#live.on"), "feed connected")
    console.server.stop()
    wait(browser, lambda d: _css(d, "#live.off"), "feed lost", timeout=30)
    console.server.start()
    wait(browser, lambda d: _css(d, "#live.on"), "feed back", timeout=30)
    station.send([_event(1, "yellow")], lane="event")
    wait(browser, lambda d: _css(d, 'tr[data-station="st-301"][data-level="yellow"]'), "update")
