"""The project's own agent as the device under test: a broker, a station configuration, a process.

Starts a Mosquitto with the project's TLS/ACL configuration and a throw-away CA
(:mod:`sim.broker`), writes a station configuration whose sensors are the scenario's
devices (at the DUT's end of each bound bus, or at the simulator's endpoints) and runs
``roadside-agent run`` on the simulator's clock. Its results are then read like any DUT's: from its
uplink with a controller certificate, its status file, or its buffer.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from fleet.keys import generate_keypair
from roadside.wire import BrokerSettings
from sim.broker import MosquittoBroker
from sim.hil.errors import DutError
from sim.hil.runfile import RunSpec
from sim.pki import CONTROLLER_IDENTITY, TestPKI
from sim.station import SimStation
from sim.station_toml import station_tail

STATION_TOML = """\
# Written by the HIL runner (sim/hil/agent.py) for a qualification run.
version = "hil-1"

[station]
id = "{station}"
name = "HIL bench: {scenario}"
lat = 31.3960
lon = 121.4380
grid_cell = "310113-G042"

{sensors}
[warnings.rainstorm]
preset = "{preset}"

"""

SENSOR = """\
[[sensors]]
name = "{name}"
profile = "{profile}"
port = "{port}"
{slave}interval_s = {interval}

"""


class AgentUnderTest:
    """Broker and ``roadside-agent run`` for one run; :meth:`stop` ends both."""

    def __init__(self, run: RunSpec, station: SimStation, state_file: Path, work: Path) -> None:
        self.run, self.station, self.state_file, self.work = run, station, state_file, work
        self.pki = TestPKI(work / "pki")
        self.broker = MosquittoBroker(work / "broker", self.pki)
        self.buffer = work / "station" / "buffer.db"
        self.status_file = work / "station" / "status.json"
        self.log = work / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def collector_settings(self) -> BrokerSettings:
        """Where and as whom the uplink is read (the fleet controller's identity)."""
        return self.broker.settings(CONTROLLER_IDENTITY)

    def config_text(self) -> str:
        """The station configuration for the agent under test."""
        assert self.run.dut.agent is not None
        ports = self.run.dut.agent.ports
        interval = self.run.dut.agent.interval_s
        sensors = []
        for name, ep in self.station.endpoints.items():
            port = ports.get(ep.bus, ep.port).replace("tcp://0.0.0.0:", "tcp://127.0.0.1:")
            slave = "" if ep.slave is None else f"slave = {ep.slave}\n"
            every = 1 if ep.protocol == "windsonic" else interval
            sensors.append(
                SENSOR.format(name=name, profile=ep.profile, port=port, slave=slave, interval=every)
            )
        st = self.pki.client(self.run.dut.station)
        keys = generate_keypair(self.work / "keys")
        return STATION_TOML.format(
            station=self.run.dut.station,
            scenario=self.run.scenario.name,
            sensors="".join(sensors),
            preset=self.run.scorecard.rainstorm_preset,
        ) + station_tail(
            self.run.scenario.site, self.broker.port, st.ca, st.cert, st.key, keys.public,
            self.buffer,
        )  # fmt: skip

    def start(self) -> AgentUnderTest:
        self.broker.start()
        (self.work / "keys").mkdir(parents=True, exist_ok=True)
        self.buffer.parent.mkdir(parents=True, exist_ok=True)
        config = self.work / "station.toml"
        config.write_text(self.config_text(), encoding="utf-8")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "agent", "run", "--config", str(config),
                "--clock-state", str(self.state_file), "--no-metrics",
                "--status-file", str(self.status_file),
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-1500:]
            raise DutError(f"the agent under test exited with {self.proc.returncode}:\n{tail}")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until the agent has written its first status (its buses are open)."""
        deadline = time.monotonic() + timeout_s
        while not self.status_file.exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise DutError("the agent under test did not start (no status file)")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM the agent (it flushes its buffer), then stop the broker."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.broker.stop()
