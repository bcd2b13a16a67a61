"""Console test fixtures: a real controller (broker, ingest, signed configuration, the response
chain with real receivers) serving the API and the console on a free loopback port, users of each
role, and Debian's chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.console.register import sample_register
from roadside.testing.broker import MosquittoBroker
from roadside.testing.fixtures import broker, pki  # noqa: F401
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


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()
