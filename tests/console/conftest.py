"""Console test fixtures: a real controller (broker, ingest, signed configuration, the response
chain with real receivers) serving the API and the console on a free loopback port, users of each
role, and Debian's chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.console.register import sample_register
from roadside.testing.fixtures import broker, pki  # noqa: F401
from sim.broker import MosquittoBroker
from tests.console.browser import Console, chromium, running_console


@pytest.fixture
def cell_codes() -> list[str]:
    """Codes of the shipped district's cells, in file order."""
    return list(sample_register().cells)


@pytest.fixture
def console(
    tmp_path: Path,
    broker: MosquittoBroker,  # noqa: F811 (the imported fixture, requested by name)
) -> Iterator[Console]:
    """The controller with the response chain behind the console (see ``running_console``)."""
    with running_console(tmp_path, broker) as c:
        yield c


@pytest.fixture(scope="session")
def _chromium_session() -> Iterator[list[Any]]:
    """One chromium per test worker (starting and quitting one costs about 2.5 s a test)."""
    drivers: list[Any] = []
    try:
        yield drivers
    finally:
        for driver in drivers:
            driver.quit()


@pytest.fixture
def browser(_chromium_session: list[Any]) -> Iterator[Any]:
    """The worker's chromium, on a blank page with one window. Each test's console listens on
    a port of its own, so cookies and storage (kept per origin) never cross between tests."""
    if not _chromium_session:
        _chromium_session.append(chromium())
    driver = _chromium_session[0]
    yield driver
    try:
        for handle in driver.window_handles[1:]:
            driver.switch_to.window(handle)
            driver.close()
        driver.switch_to.window(driver.window_handles[0])
        driver.delete_all_cookies()
        driver.get("about:blank")
    except Exception:  # the test left it unusable: the next test gets a new one
        _chromium_session.clear()
        driver.quit()
