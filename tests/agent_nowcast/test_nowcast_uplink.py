"""Forecasts leave the station through the real uplink; its status carries the model version."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from nowcast_station import STATION, station_toml

from agent.config import load_config
from agent.runner import Agent
from roadside.clock import ScaledClock
from roadside.testing.sink import CommittingSink
from sim.broker import MosquittoBroker
from sim.pki import TestPKI
from sim.scenario import load_scenario
from sim.station import SimStation

SPEED = 60.0


def test_forecasts_go_out_through_the_uplink(
    tmp_path: Path, pki: TestPKI, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    scenario = load_scenario("storm-50y-3h")
    clock = ScaledClock(scenario.start + timedelta(minutes=60), speed=SPEED, anchor=time.time())
    files = pki.client(STATION)
    uplink = (
        f'[uplink]\nhost = "127.0.0.1"\nport = {broker.port}\nca = "{files.ca}"\n'
        f'cert = "{files.cert}"\nkey = "{files.key}"\n'
    )

    def forecasts() -> int:
        with sink.lock:
            q = "SELECT count(*) FROM records WHERE station = ? AND kind = 'forecast'"
            return int(sink.db.execute(q, (STATION,)).fetchone()[0])

    with SimStation(scenario, clock, tmp_path / "links", pacing=False) as station:
        path = tmp_path / "station.toml"
        path.write_text(
            station_toml(
                station.endpoints,
                tmp_path / "buffer.db",
                devices=("rain", "level"),
                interval_s=10,
                extra=uplink,
            )
        )
        agent = Agent(load_config(path), clock, serve_metrics=False)
        agent.start()
        try:
            assert agent.nowcast is not None
            buffer = agent.buffer
            assert buffer is not None

            def acked() -> list[int]:
                return [r.seq for r in buffer.where("kind = 'forecast' AND synced = 1")]

            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(acked()) < 3:
                agent.step(timeout_s=0.1)
            mine = acked()
        finally:
            agent.stop()
    assert forecasts() >= 3
    assert len(mine) >= 3 and set(mine) <= set(sink.seqs(STATION))  # acknowledged = stored there
    status = sink.statuses[STATION]
    assert status.model_version == agent.nowcast.model.version
    assert status.model_version.startswith("roadside-nowcast-")
