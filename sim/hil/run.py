"""One qualification run: the simulator on its ports, the DUT's results collected, a scorecard.

::

    with HilRun(load_run_file("qualify.toml"), workdir) as run:
        run.wait()                      # until the run's scenario minutes have passed
    card = run.scorecard()              # sim.hil.score.scorecard of what was collected

The simulator serves the run's scenario (with the run file's fault timeline) on an accelerated
clock, its serial buses on the bound devices, its TCP devices on the chosen address, and publishes
its clock in ``WORKDIR/sim-state.json`` (``roadside-agent run --clock-state``). With
``[dut.agent]`` the project's own agent is started as the DUT (:mod:`sim.hil.agent`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from roadside.clock import ScaledClock
from roadside.wire import BrokerSettings
from sim.hil.agent import AgentUnderTest
from sim.hil.errors import DutError
from sim.hil.observe import HttpPoller, MqttCollector, Observed, read_buffer, time_map
from sim.hil.runfile import RunSpec
from sim.hil.score import scorecard
from sim.station import SimStation


class HilRun:
    """The running simulator, the DUT's results as they come, and the scorecard at the end."""

    def __init__(self, run: RunSpec, workdir: Path, *, listen: str | None = None) -> None:
        self.run = run
        self.work = Path(workdir)
        self.listen = listen or run.listen
        # scenario minute 0 comes lead_in_s after now: the DUT is up by the time anything happens
        self.clock = ScaledClock(run.scenario.start, run.speed, time.time() + run.lead_in_s)
        self.station: SimStation | None = None
        self.agent: AgentUnderTest | None = None
        self.observed: Observed | None = None
        self.state_file = self.work / "sim-state.json"
        self._source: MqttCollector | HttpPoller | None = None
        self._wall_start = datetime.now(UTC) + timedelta(seconds=run.lead_in_s)
        self._ended_s: float | None = None
        self.sim_late: dict[str, list[float]] = {}  # device -> when the simulator was late

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> HilRun:
        """Simulator first (its clock starts the run), then the DUT's agent, then the collector."""
        self.work.mkdir(parents=True, exist_ok=True)
        run = self.run
        self.station = SimStation(
            run.scenario,
            self.clock,
            self.work / "links",
            pacing=None if run.pacing else False,
            bind=run.bind,
            listen=self.listen,
        ).start()
        try:
            self.station.serve_control(self.work / "links" / "control.sock")
            self.station.write_state(self.state_file)
            if run.dut.agent is not None:
                self.agent = AgentUnderTest(run, self.station, self.state_file, self.work).start()
            self._source = self._open_source()
            if self.agent is not None:
                self.agent.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _open_source(self) -> MqttCollector | HttpPoller | None:
        dut, to_s = self.run.dut, self.to_s
        if dut.source == "mqtt":
            settings: BrokerSettings
            ack = True
            if dut.mqtt is not None:
                m = dut.mqtt
                settings, ack = BrokerSettings(m.host, m.port, m.ca, m.cert, m.key), m.ack
            else:
                assert self.agent is not None  # the run file demands one or the other
                settings = self.agent.collector_settings()
            return MqttCollector(settings, dut.station, to_s, ack=ack).start()
        if dut.source == "http":
            url = dut.http_url or (self.agent.status_file.as_uri() if self.agent else "")
            return HttpPoller(url, dut.http_interval_s, to_s).start()
        return None

    @property
    def to_s(self) -> Callable[[datetime], float]:
        sc = self.run.scenario
        return time_map(self.run.dut, sc.start, self._wall_start, self.run.speed)

    def minute(self) -> float:
        """Scenario minutes since the run began."""
        return (self.clock.now() - self.run.scenario.start).total_seconds() / 60.0

    def wait(self, progress: Callable[[float], None] | None = None) -> None:
        """Until the run's duration has passed in scenario time (the DUT is checked meanwhile)."""
        while self.minute() * 60.0 < self.run.duration_s:
            if self.agent is not None:
                self.agent.check_alive()
            if progress is not None:
                progress(self.minute())
            time.sleep(0.2)

    def stop(self) -> Observed:
        """Stop the DUT's agent, the collector and the simulator; the collected results."""
        self._ended_s = max(0.0, min(self.minute() * 60.0, self.run.duration_s))
        if self.agent is not None:
            self.agent.stop()
        observed = self._source.stop() if self._source is not None else None
        if self.station is not None:
            self.station.stop()
            self.sim_late = self.station.late_answers()
            self.state_file.unlink(missing_ok=True)
        if self.run.dut.source == "sqlite":
            path = self.run.dut.sqlite_path or (self.agent.buffer if self.agent else None)
            if path is None:
                raise DutError("dut.sqlite: no buffer path")
            observed = read_buffer(path, self.to_s)
        self.observed = observed or Observed()
        return self.observed

    def __enter__(self) -> HilRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.observed is None:
            self.stop()

    # -- results -------------------------------------------------------------------------------
    def scorecard(self) -> dict[str, Any]:
        """The scorecard of what was collected (call after :meth:`stop`)."""
        if self.observed is None:
            raise DutError("the run has not been stopped yet: no results to score")
        return scorecard(self.run, self.observed, self._ended_s, self.sim_late)
