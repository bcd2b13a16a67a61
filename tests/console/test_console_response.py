"""The warnings board and drills in Debian's chromium against the real response chain: a warning
composed by one user, approved and published by a second, its CAP previewed, the key units'
acknowledgements arriving live; a drill's banner on every page; a viewer cannot publish."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.console.browser import (
    Console,
    chromium,
    click,
    disabled,
    fake_location,
    ready,
    sign_in,
    text,
    wait,
)

pytestmark = pytest.mark.slow

CELL = "BS-G01"  # residential; key unit KU-001 (SMS first, then webhook, then e-mail)
KU001_SMS = "+8613900000101"


def _css(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def _compose(driver: Any, cell: str, level: str) -> str:
    Select(driver.find_element(By.ID, "w-cells")).select_by_value(cell)
    Select(driver.find_element(By.ID, "w-level")).select_by_value(level)
    driver.find_element(By.ID, "w-zh").send_keys("测试暴雨预警")
    driver.find_element(By.ID, "w-en").send_keys("Console test rainstorm warning")
    driver.find_element(By.ID, "w-draft").click()
    return str(
        wait(
            driver,
            lambda d: d.execute_script(
                "return document.querySelector('tr[data-state=\"draft\"]')?.dataset.message"
            ),
            "draft listed",
        )
    )


def test_a_second_user_approves_and_publishes_and_the_acks_arrive(
    console: Console, browser: Any
) -> None:
    sign_in(browser, console.url, "duty", "en", route="warnings")
    ident = _compose(browser, CELL, "II")
    row = f'tr[data-message="{ident}"]'
    # the author cannot approve their own warning (an operator cannot approve at all)
    assert disabled(browser, f"{row} button[data-approve]")

    chief = chromium()
    try:
        sign_in(chief, console.url, "chief", "zh-CN", route="warnings")
        wait(chief, lambda d: _css(d, f'{row}[data-state="draft"]'), "draft seen by chief")
        click(chief, f"{row} button[data-approve]")
        wait(chief, lambda d: _css(d, f'{row}[data-state="approved"]'), "approved")
        click(chief, f'{row} a[data-select="{ident}"]')
        wait(
            chief,
            lambda d: "<status>Actual</status>" in text(d, "#preview"),
            "CAP preview of the approved message",
        )
        assert "符合 CAP 1.2" in text(chief, "#p-check")
        click(chief, f"{row} button[data-publish]")
        wait(chief, lambda d: _css(d, f'{row}[data-state="published"]'), "published")
    finally:
        chief.quit()

    # the author's page follows live: published, then the units reached and acknowledging
    wait(browser, lambda d: _css(d, f'{row}[data-state="published"]'), "author sees publication")
    click(browser, f'{row} a[data-select="{ident}"]')
    wait(browser, lambda d: _css(d, 'tr[data-unit="KU-001"][data-acked="no"]'), "KU-001 listed")
    sms = console.receivers["sms"]
    wait(browser, lambda _: sms.to(KU001_SMS), "the SMS to KU-001")
    link = re.search(r"(http://\S+/units/ack/\S+)", sms.to(KU001_SMS)[0]["text"])
    assert link is not None, sms.to(KU001_SMS)[0]
    # the unit's phone opens its personal link and presses the button (a POST)
    with urllib.request.urlopen(urllib.request.Request(link.group(1), method="POST"), timeout=10):
        pass
    wait(browser, lambda d: _css(d, 'tr[data-unit="KU-001"][data-acked="yes"]'), "the ack")
    xml = text(browser, "#preview")
    assert "<status>Actual</status>" in xml and "<msgType>Alert</msgType>" in xml
    audit = [e.action for e in console.auth.audit_log()]
    assert {"warning_draft", "warning_approve", "warning_publish"} <= set(audit)


def test_a_viewer_cannot_publish_or_approve(console: Console, browser: Any) -> None:
    operator = chromium()
    try:
        sign_in(operator, console.url, "duty", "en", route="warnings")
        ident = _compose(operator, CELL, "III")
    finally:
        operator.quit()
    sign_in(browser, console.url, "guest", "en", route="warnings")
    row = f'tr[data-message="{ident}"]'
    wait(browser, lambda d: _css(d, row), "draft listed for the viewer")
    assert disabled(browser, f"{row} button[data-approve]")
    assert disabled(browser, "#w-draft")
    answer = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        const me = await (await fetch('/console/api/me')).json();
        const post = (path) => fetch(path, {method: 'POST', headers: {'X-CSRF-Token': me.csrf}});
        const a = await post(`/warnings/${arguments[0]}/approve`);
        const p = await post(`/warnings/${arguments[0]}/publish`);
        done([a.status, p.status, (await p.json()).code]);""",
        ident,
    )
    assert answer == [403, 403, "forbidden"]
    assert console.receivers["sms"].sent == []


def test_a_drill_shows_its_banner_on_every_page_and_its_outputs_are_labelled(
    console: Console, browser: Any
) -> None:
    sign_in(browser, console.url, "chief", "en", route="drills")
    assert browser.find_element(By.ID, "drill-banner").is_displayed() is False
    browser.find_element(By.ID, "d-name").send_keys("flood drill")
    click(browser, "#d-go")
    wait(browser, lambda d: d.find_element(By.ID, "drill-banner").is_displayed(), "banner")
    assert "DRILL IN PROGRESS" in browser.find_element(By.ID, "drill-banner").text
    Select(browser.find_element(By.ID, "d-cell")).select_by_value(CELL)
    click(browser, "#d-warn-go")
    wait(browser, lambda d: _css(d, "#d-messages tr[data-message]"), "drill warning in report")
    for route in ("district", "warnings", "config"):
        browser.get(f"{console.url}/console/?lang=zh-CN#/{route}")
        ready(browser, route)
        wait(browser, lambda d: d.find_element(By.ID, "drill-banner").is_displayed(), route)
        assert "演练进行中" in browser.find_element(By.ID, "drill-banner").text
        assert "drill" in str(browser.find_element(By.TAG_NAME, "body").get_attribute("class"))
    browser.get(f"{console.url}/console/?lang=zh-CN#/warnings")
    ready(browser, "warnings")
    wait(browser, lambda d: _css(d, 'tr[data-status="Exercise"]'), "the Exercise message")
    assert "演练" in text(browser, 'tr[data-status="Exercise"]')  # drill outputs labelled
    browser.get(f"{console.url}/console/field")
    wait(browser, lambda d: d.find_element(By.ID, "drill-banner").is_displayed(), "field page")
    browser.get(f"{console.url}/console/?lang=en#/drills")
    ready(browser, "drills")
    click(browser, 'tr[data-active="true"] button[data-end]')
    wait(browser, lambda d: not d.find_element(By.ID, "drill-banner").is_displayed(), "drill over")
    assert console.receivers["sms"].sent == []  # a drill reaches no live channel


def test_a_field_report_from_a_phone_lands_in_its_cell_and_on_the_map(
    console: Console, browser: Any
) -> None:
    browser.set_window_size(412, 860)
    fake_location(browser, console.url)
    browser.get(f"{console.url}/console/field?lang=zh-CN")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.ready") == "signin", "")
    browser.find_element(By.NAME, "name").send_keys("duty")
    browser.find_element(By.NAME, "password").send_keys("duty-password-1")
    click(browser, "#signin button[type=submit]")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.ready") == "field", "")
    wait(browser, lambda d: d.find_element(By.ID, "lat").get_attribute("value"), "phone location")
    click(browser, "input[name=depth][value='>30cm']")
    browser.find_element(By.ID, "note").send_keys("下立交积水没过车轮")
    click(browser, "#send")
    sent = wait(browser, lambda d: d.execute_script("return document.body.dataset.sent"), "sent")
    reports = console.response.field.reports()
    assert [(r["id"], r["depth_class"], r["by"]) for r in reports] == [(sent, ">30cm", "duty")]
    cell = reports[0]["cell"]
    assert any(s.source == "report:duty" for s in console.response.grid.signals(cell))
    # on the district map's field-report layer, and in the cell's evidence on the board
    browser.set_window_size(1366, 768)
    browser.get(f"{console.url}/console/?lang=en#/district")
    ready(browser, "district")
    wait(browser, lambda d: _css(d, "path.field-report"), "report on the map")
    browser.get(f"{console.url}/console/?lang=en#/warnings")
    ready(browser, "warnings")
    assert "report:duty" in text(browser, f'tr[data-cell="{cell}"]')
