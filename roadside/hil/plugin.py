"""The ``roadside.hil`` pytest plugin: fixtures for a qualification run, one run per test module.

Fixtures (module scope: every test of a module looks at the same run):

- ``hil_run_file``: the run file: ``--hil-run-file``, else the module's ``hil_run`` marker
  (a path relative to the test file); override the fixture to write one at test time
- ``hil_listen``: the address Modbus TCP devices listen on (``--hil-listen``; default the run
  file's, loopback)
- ``hil_sim``: the running :class:`sim.hil.run.HilRun` (simulator on its ports, DUT collected);
  ``hil_sim.station`` is the :class:`sim.station.SimStation` (inject faults, read endpoints)
- ``hil_truth``: the scenario's truth (``hil_truth.sample(t_s)`` at scenario seconds)
- ``hil_scorecard``: waits for the run to end and returns the scorecard (a dict, as
  ``roadside-sim qualify`` writes it); ``scorecard.json`` and ``scorecard.html`` are written under
  ``--hil-out`` (default: the module's temporary directory)

Options: ``--hil-run-file FILE``, ``--hil-listen ADDRESS``, ``--hil-out DIR``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("roadside-hil", "Roadside hardware-in-the-loop qualification")
    group.addoption("--hil-run-file", help="Run file (TOML) for the hil_* fixtures.")
    group.addoption("--hil-listen", help="Address the simulator's Modbus TCP devices listen on.")
    group.addoption("--hil-out", help="Directory for each module's scorecard.json and .html.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hil_run(path): the run file of this module's hil_* fixtures"
    )


@pytest.fixture(scope="module")
def hil_run_file(request: pytest.FixtureRequest) -> Path:
    """The run file: ``--hil-run-file`` or the module's ``hil_run`` marker."""
    given = request.config.getoption("--hil-run-file")
    if given:
        return Path(given)
    marker = request.node.get_closest_marker("hil_run")
    if marker is None or not marker.args:
        pytest.fail("no run file: mark the module with hil_run(path) or pass --hil-run-file")
    return Path(request.node.path).parent / str(marker.args[0])


@pytest.fixture(scope="module")
def hil_listen(request: pytest.FixtureRequest) -> str | None:
    """Address for the Modbus TCP devices (None: the run file's, loopback)."""
    value = request.config.getoption("--hil-listen")
    return str(value) if value else None


@pytest.fixture(scope="module")
def hil_sim(
    hil_run_file: Path, hil_listen: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """The running qualification run (simulator and DUT collection), stopped after the module."""
    from sim.hil.errors import HilError
    from sim.hil.run import HilRun
    from sim.hil.runfile import load_run_file

    try:
        spec = load_run_file(hil_run_file)
    except HilError as exc:
        pytest.fail(str(exc), pytrace=False)
    run = HilRun(spec, tmp_path_factory.mktemp("hil"), listen=hil_listen)
    run.start()
    try:
        yield run
    finally:
        if run.observed is None:
            run.stop()


@pytest.fixture(scope="module")
def hil_truth(hil_sim: Any) -> Any:
    """The scenario's truth: ``sample(t_s)`` gives rain, wind and depth at scenario seconds."""
    return hil_sim.run.scenario.truth


@pytest.fixture(scope="module")
def hil_scorecard(hil_sim: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Wait for the run to end, stop it, score it; the scorecard (also written as JSON + HTML)."""
    from sim.hil.report import render_html

    if hil_sim.observed is None:
        hil_sim.wait()
        hil_sim.stop()
    card: dict[str, Any] = hil_sim.scorecard()
    out_opt = request.config.getoption("--hil-out")
    name = re.sub(r"[^\w.-]", "_", request.node.name)
    out = Path(out_opt) / name if out_opt else hil_sim.work
    out.mkdir(parents=True, exist_ok=True)
    (out / "scorecard.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    html = render_html(card, hil_sim.run, hil_sim.observed)
    (out / "scorecard.html").write_text(html, encoding="utf-8")
    return card
