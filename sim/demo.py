"""`make demo`: one simulated station through a storm, end to end, on embedded defaults.

Starts, each as the real program it is: a Mosquitto broker with the project's TLS/ACL
configuration and a throw-away CA (:mod:`sim.broker`), the fleet controller
(``roadside-fleet run``), the simulator (``roadside-sim run``: devices on pseudo-terminals, the
storm's truth on an accelerated clock) and the station agent (``roadside-agent run``) sharing the
simulator's clock. It then shows, live, the storm's truth beside what the station measured and
derived, the nowcast, the warnings, the station's backlog and what reached the fleet; part way
through it pushes a signed threshold change from the fleet and shows the station acknowledge it.

It ends with a summary and exit status 0 only when readings reached the fleet, the threshold change
was acknowledged by the station and the warnings the storm calls for were raised.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agent.warnings import WATERLOGGING_TIERS
from roadside.clock import ScaledClock
from sim.broker import MosquittoBroker, free_port
from sim.pki import CONTROLLER_IDENTITY, TestPKI
from sim.scenario import load_scenario
from sim.spec import Scenario
from sim.station_toml import station_tail

STATION = "bs-demo-01"
GRID_CELL = "BS-G02"  # a cell of the synthetic sample district (fleet/response/data)
FLAG_STYLE = {0: "green", 1: "yellow", 2: "red", 8: "dim", 9: "dim"}
# What the fleet pushes part way through: the national rainstorm criteria instead of Shanghai's.
CATCH_UP_S = 90.0  # real seconds the demo waits after the storm for late outcomes
TIER_MM = min(t["water_depth"] for t in WATERLOGGING_TIERS.values())  # first tier (shipped)
LOG_EVERY_MIN = 10.0  # scenario minutes between progress lines when not on a terminal
THRESHOLD_CHANGE: dict[str, Any] = {"warnings": {"rainstorm": {"preset": "national"}}}

STATION_TOML = """\
# Written by the demo (sim/demo.py) for the simulated station.
version = "demo-1"

[station]
id = "{station}"
name = "Baoshan demo: Hutai Rd underpass"
lat = 31.3960
lon = 121.4380
grid_cell = "{cell}"

[[sensors]]
name = "rain"
profile = "dfrobot-sen0575"
port = "{links}/ttyRS485-1"
slave = 192
channels = ["rain_total", "tip_count"]
interval_s = 60
wet_interval_s = 10

[[sensors]]
name = "level"
profile = "hlk-ld8001h"
port = "{links}/ttyRS485-1"
slave = 1
channels = ["water_distance", "water_depth"]
interval_s = 60
wet_interval_s = 10

[[sensors]]
name = "wind"
profile = "gill-windsonic"
port = "{links}/ttyRS232-1"
interval_s = 1

[[sensors]]
name = "beacon"
profile = "warning-light"
port = "{links}/ttyRS485-1"
slave = 10
interval_s = 60

[warnings.rainstorm]
preset = "shanghai"

# the warning light follows the waterlogging warning (raised on the forecast, too)
[[actions]]
signal = "waterlogging"
min_level = "blue"
sensor = "beacon"
setting = "light"

"""


class DemoError(Exception):
    """The demo could not start or one of its programs died."""


@dataclass
class Outcome:
    """What the demo saw happen (the summary and the exit status come from it)."""

    fleet_readings: int = 0
    pushed_version: int | None = None
    acked_at_min: float | None = None
    warnings: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    light_on_min: float | None = None
    first_forecast_tier_min: float | None = None
    first_observed_tier_min: float | None = None

    def problems(self, scenario: Scenario) -> list[str]:
        """What did not happen that should have."""
        out = []
        if self.fleet_readings == 0:
            out.append("no readings reached the fleet")
        if self.pushed_version is not None and self.acked_at_min is None:
            out.append("the threshold change was not acknowledged by the station")
        if not self.warnings and scenario.name != "dry":
            out.append("no warning was raised")
        if any("waterlogging" in w for w in self.warnings) and self.light_on_min is None:
            out.append("the warning light did not switch on for the waterlogging warning")
        observed, forecast = self.first_observed_tier_min, self.first_forecast_tier_min
        if observed is not None and (forecast is None or forecast >= observed):
            out.append("the forecast did not raise waterlogging before the water reached 15 cm")
        return out

    def lead(self) -> str:
        """One line on the forecast's lead over the observation."""
        f, o = self.first_forecast_tier_min, self.first_observed_tier_min
        if f is None and o is None:
            return "the water never reached 15 cm and no forecast said it would"
        fs = "never" if f is None else f"at minute {f:.1f}"
        os_ = "never" if o is None else f"at minute {o:.1f}"
        lead = f" ({o - f:.1f} min ahead)" if f is not None and o is not None else ""
        return f"forecast raised waterlogging {fs}; observed depth reached 15 cm {os_}{lead}"


def _http_json(url: str, token: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _demo_token(db: str, console_password: str) -> str:
    """An operator token for the demo's own API calls, in the demo's fleet database, and the
    console's user ``duty`` (approver) with ``console_password``."""
    from fleet.auth import Auth
    from fleet.store import open_store

    store = open_store(db)
    try:
        auth = Auth(store)
        auth.add_user("demo", None, ["operator"])
        auth.add_user("duty", console_password, ["approver"])
        return auth.issue_token("demo", "demo")
    finally:
        store.close()


class Demo:
    """The demo's programs and what it reads from them."""

    def __init__(self, scenario: str, speed: float, workdir: Path, *, pacing: bool = True) -> None:
        self.scenario = load_scenario(scenario)
        self.speed = speed
        self.pacing = pacing
        self.work = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.broker: MosquittoBroker | None = None
        self.clock: ScaledClock | None = None
        self.http_port = free_port()
        self.token = ""
        self.console_password = secrets.token_urlsafe(9)
        self.outcome = Outcome()
        self.events_seen: set[int] = set()

    # -- start and stop ---------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.work / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT
        )

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None and not (name == "sim" and p.returncode == 0):  # storm over
                tail = (self.work / f"{name}.log").read_text(errors="replace")[-1500:]
                raise DemoError(f"{name} exited with {p.returncode}; its log ends:\n{tail}")

    def _wait(self, what: str, ready: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            got = ready()
            if got:
                return got
            time.sleep(0.1)
        raise DemoError(f"timed out waiting for {what}")

    def start(self) -> None:
        """Broker, fleet controller, simulator, agent; in that order."""
        w = self.work
        pki = TestPKI(w / "pki")
        self.broker = MosquittoBroker(w / "broker", pki)
        self.broker.start()
        (w / "keys").mkdir(exist_ok=True)
        from fleet.keys import generate_keypair

        keys = generate_keypair(w / "keys")
        self.token = _demo_token(f"sqlite:///{w}/fleet.db", self.console_password)
        ctl = pki.client(CONTROLLER_IDENTITY)
        self._spawn(
            "fleet",
            "fleet",
            "run",
            "--db",
            f"sqlite:///{w}/fleet.db",
            "--broker",
            f"127.0.0.1:{self.broker.port}",
            "--ca",
            str(ctl.ca),
            "--cert",
            str(ctl.cert),
            "--key",
            str(ctl.key),
            "--signing-key",
            str(keys.private),
            "--http",
            f"127.0.0.1:{self.http_port}",
            "--tick-s",
            "1",
            "--retry-s",
            "5",
        )
        self._wait("the fleet API", lambda: self._get("/health") is not None)
        links, state = w / "links", w / "sim-state.json"
        self._spawn(
            "sim",
            "sim",
            "run",
            self.scenario.source or self.scenario.name,
            "--speed",
            str(self.speed),
            "--link-dir",
            str(links),
            "--state-file",
            str(state),
            *([] if self.pacing else ["--no-pacing"]),
        )
        self._wait("the simulator", state.exists)
        clock = json.loads(state.read_text())["clock"]
        self.clock = ScaledClock(
            datetime.fromisoformat(clock["start"]), float(clock["speed"]), float(clock["anchor"])
        )
        st = pki.client(STATION)
        (w / "station").mkdir(exist_ok=True)
        (w / "station.toml").write_text(
            STATION_TOML.format(station=STATION, cell=GRID_CELL, links=links)
            + station_tail(
                self.scenario.site,
                self.broker.port,
                st.ca,
                st.cert,
                st.key,
                keys.public,
                w / "station" / "buffer.db",
            )
        )
        self._spawn(
            "agent",
            "agent",
            "run",
            "--config",
            str(w / "station.toml"),
            "--clock-state",
            str(state),
            "--no-metrics",
            "--status-file",
            str(self.status_path),
        )

    @property
    def status_path(self) -> Path:
        return self.work / "station" / "status.json"

    def stop(self) -> None:
        """SIGTERM every program (agent first, so it flushes), then the broker."""
        for name in ("agent", "sim", "fleet"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        if self.broker is not None:
            self.broker.stop()

    # -- reading state ----------------------------------------------------------------------

    def _get(self, path: str) -> Any:
        try:
            return _http_json(f"http://127.0.0.1:{self.http_port}{path}", self.token)
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def minute(self) -> float:
        """Scenario minutes since the storm's start."""
        assert self.clock is not None
        return (self.clock.now() - self.scenario.start).total_seconds() / 60.0

    def agent_status(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.status_path.read_text()))
        except (OSError, ValueError):
            return None

    def push_thresholds(self) -> None:
        """Push the threshold change to the whole fleet, signed by the controller."""
        doc = _http_json(
            f"http://127.0.0.1:{self.http_port}/config/documents",
            self.token,
            {"scope": "fleet", "body": THRESHOLD_CHANGE},
        )
        self.outcome.pushed_version = int(doc["version"])

    def poll(self) -> dict[str, Any]:
        """One look at everything; updates the outcome."""
        self._check_alive()
        m = self.minute()
        truth = self.scenario.truth.sample(m * 60.0)
        status = self.agent_status() or {}
        station = self._get(f"/stations/{STATION}") or {}
        cfg = self._get(f"/stations/{STATION}/config") or {}
        events = self._get(f"/events?station={STATION}") or []
        self.outcome.fleet_readings = max(self.outcome.fleet_readings, station.get("records", 0))
        pushed = self.outcome.pushed_version
        if pushed is not None and self.outcome.acked_at_min is None:
            for scope in cfg.get("scopes", []):
                mine = scope.get("scope") == "fleet" and scope.get("reported_version") == pushed
                if mine and scope.get("result") == "ack":
                    self.outcome.acked_at_min = m
        for e in events if isinstance(events, list) else []:
            seq = e.get("seq")
            if seq in self.events_seen:
                continue
            self.events_seen.add(seq)
            p = e.get("payload") or {}
            at = self._scenario_minute(e.get("time"), m)
            if (
                p.get("signal") == "waterlogging"
                and p.get("kind") in ("raise", "upgrade")
                and p.get("certainty") == "Likely"
                and self.outcome.first_forecast_tier_min is None
            ):
                self.outcome.first_forecast_tier_min = at
            if p.get("kind") == "action":
                if p.get("ok") and p.get("state") == "on" and self.outcome.light_on_min is None:
                    self.outcome.light_on_min = at
                self.outcome.actions.append(
                    f"{at:5.1f} min  {p.get('device')} {p.get('setting')} {p.get('state')}"
                    + ("" if p.get("ok") else f" FAILED: {p.get('error')}")
                )
            else:
                self.outcome.warnings.append(
                    f"{at:5.1f} min  {p.get('kind')} {p.get('signal')} {p.get('level')} "
                    f"({p.get('certainty')})"
                )
        depth = (status.get("derived") or {}).get("water_depth") or {}
        if (depth.get("value") or 0.0) >= TIER_MM and self.outcome.first_observed_tier_min is None:
            self.outcome.first_observed_tier_min = self._scenario_minute(depth.get("time"), m)
        return {"minute": m, "truth": truth, "status": status, "station": station, "cfg": cfg}

    def _scenario_minute(self, iso: str | None, default: float) -> float:
        try:
            when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
        except ValueError:
            return default
        return (when - self.scenario.start).total_seconds() / 60.0


def _flagged(value: Any, flag: int | None, fmt: str = "{:.1f}") -> Text:
    if value is None:
        return Text("—", style="dim")
    return Text(fmt.format(value), style=FLAG_STYLE.get(flag if flag is not None else 9, ""))


def progress_line(demo: Demo, snap: dict[str, Any]) -> str:
    """One line of the live screen, for output that is not a terminal."""
    t, derived = snap["truth"], (snap["status"].get("derived") or {})

    def v(name: str, scale: float = 1.0) -> str:
        value = (derived.get(name) or {}).get("value")
        return "—" if value is None else f"{value * scale:.1f}"

    fc = snap["status"].get("forecast") or {}
    p15 = f"{fc['p_15cm']:.2f}" if fc else "—"
    return (
        f"min {snap['minute']:5.1f}  rain {t.rain_intensity_mmh:5.1f}/{v('rain_intensity')} mm/h"
        f"  depth {t.water_depth_mm / 10:4.1f}/{v('water_depth', 0.1)} cm  P(>15cm) {p15}"
        f"  gust {t.wind_gust_ms:4.1f}/{v('wind_gust_3s')} m/s  fleet {demo.outcome.fleet_readings}"
        f"  warnings {len(demo.outcome.warnings)}  (truth/station)"
    )


def render(demo: Demo, snap: dict[str, Any]) -> Group:
    """The live screen: truth vs station, nowcast, warnings, backlog, fleet."""
    t, st = snap["truth"], snap["status"]
    derived = st.get("derived") or {}

    def d(name: str, fmt: str = "{:.1f}", scale: float = 1.0) -> Text:
        v = derived.get(name) or {}
        value = v.get("value")
        return _flagged(None if value is None else value * scale, v.get("flag"), fmt)

    head = Text(
        f"{demo.scenario.name}  minute {snap['minute']:6.1f} of "
        f"{demo.scenario.duration_s / 60:.0f}  (x{demo.speed:g})  station {STATION}",
        style="bold",
    )
    table = Table(title="truth (simulator) vs station (QC'd, derived; colour = flag)")
    for col in ("quantity", "truth", "station"):
        table.add_column(col)
    table.add_row("rain intensity mm/h", f"{t.rain_intensity_mmh:.1f}", d("rain_intensity"))
    table.add_row("rain last 1 h mm", "", d("rain_1h"))
    table.add_row("wind 10-min mean m/s", f"{t.wind_speed_ms:.1f}", d("wind_speed_10min"))
    table.add_row("wind 3-s gust m/s", f"{t.wind_gust_ms:.1f}", d("wind_gust_3s"))
    table.add_row("wind direction deg", f"{t.wind_dir_deg:.0f}", d("wind_dir_10min", "{:.0f}"))
    table.add_row("water depth cm", f"{t.water_depth_mm / 10:.1f}", d("water_depth", scale=0.1))
    fc = st.get("forecast") or {}
    forecast = Text(
        "nowcast: "
        + (
            f"+15 {fc['depth_15_mm'] / 10:.1f} cm  +30 {fc['depth_30_mm'] / 10:.1f} cm  "
            f"+60 {fc['depth_60_mm'] / 10:.1f} cm  P(>15 cm) {fc['p_15cm']:.2f}  "
            f"P(>30 cm) {fc['p_30cm']:.2f}"
            if fc
            else "—"
        )
    )
    buf = st.get("buffer") or {}
    fleet = snap["station"]
    link = Text(
        f"station: {st.get('summary', 'starting…')}  |  buffer {buf.get('rows', 0)} rows, "
        f"{buf.get('unsynced', 0)} unsynced  |  fleet has {demo.outcome.fleet_readings} records, "
        f"last seen {fleet.get('last_seen', '—')}"
    )
    pushed = demo.outcome.pushed_version
    cfg = Text(
        "threshold change: "
        + (
            "not yet pushed"
            if pushed is None
            else f"fleet v{pushed} pushed; "
            + (
                f"station acked at minute {demo.outcome.acked_at_min:.1f}"
                if demo.outcome.acked_at_min is not None
                else "waiting for the station's ack"
            )
        )
    )
    warn = Text("\n".join(demo.outcome.warnings[-6:]) or "no warnings")
    lights = Text("\n".join(demo.outcome.actions[-3:]) or "warning light: no action yet")
    return Group(head, table, forecast, link, cfg, Text("warnings:", style="bold"), warn, lights)


def response_epilogue(demo: Demo, console: Console) -> dict[str, Any]:
    """The fleet's response chain on what the storm left in the fleet database (issue 12)."""
    from fleet.response.errors import ResponseError
    from fleet.response.showcase import showcase
    from fleet.store import open_store

    console.print("\n[bold]response chain[/bold] (synthetic sample district)")
    cap_dir = os.environ.get("ROADSIDE_DEMO_CAP_DIR")
    store = open_store(f"sqlite:///{demo.work}/fleet.db")
    try:
        return showcase(
            store,
            GRID_CELL,
            console.print,
            cap_dir=Path(cap_dir) if cap_dir else None,
            api=f"http://127.0.0.1:{demo.http_port}",
            workdir=demo.work,
            positions={STATION: (121.4380, 31.3960)},  # the station file's lon/lat
        )
    except ResponseError as exc:
        console.print(f"[red]response chain failed:[/red] {exc}")
        return {}
    finally:
        store.close()


def run_demo(
    scenario: str = "storm-50y-3h",
    speed: float = 60.0,
    push_at_min: float = 20.0,
    workdir: Path | None = None,
    console: Console | None = None,
    *,
    pacing: bool = True,
    until_min: float | None = None,
) -> int:
    """Run the demo; return the exit status (0 when everything expected happened).

    ``until_min`` stops it at that scenario minute instead of the scenario's end: what is
    expected by then (readings, the acked push, the forecast's lead, the light) is still checked.
    """
    console = console or Console()
    own = workdir is None
    work = Path(workdir or tempfile.mkdtemp(prefix="roadside-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    demo = Demo(scenario, speed, work, pacing=pacing)
    response: dict[str, Any] = {}
    end_min = demo.scenario.duration_s / 60.0
    if until_min is not None:
        end_min = min(end_min, until_min)
    try:
        console.print(f"starting broker, fleet controller, simulator and agent in {work}")
        demo.start()
        console.print(
            f"console: http://127.0.0.1:{demo.http_port}/console/  "
            f"(user duty, password {demo.console_password})"
        )
        next_line_min = 0.0
        caught_up: float | None = None
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                snap = demo.poll()
                if demo.outcome.pushed_version is None and snap["minute"] >= push_at_min:
                    demo.push_thresholds()
                live.update(render(demo, snap))
                if not console.is_terminal and snap["minute"] >= next_line_min:
                    console.print(progress_line(demo, snap))  # a log, not a screen
                    next_line_min += LOG_EVERY_MIN
                if snap["minute"] >= end_min - 1.0:  # the simulator ends its run at end_min:
                    # wait for the station and the fleet to catch up with what happened (on a
                    # busy machine they run behind the accelerated clock), not on the clock
                    if caught_up is None:
                        caught_up = time.monotonic() + CATCH_UP_S
                    if not demo.outcome.problems(demo.scenario) or time.monotonic() > caught_up:
                        break
                time.sleep(0.5)
        response = response_epilogue(demo, console)
    except DemoError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        demo.stop()
    problems = demo.outcome.problems(demo.scenario)
    if not response.get("acknowledged"):
        problems.append("a warning published by the response chain and acknowledged")
    console.print(
        f"\nfleet committed {demo.outcome.fleet_readings} records; "
        f"{len(demo.outcome.warnings)} warning events; {demo.outcome.lead()}"
    )
    on = demo.outcome.light_on_min
    console.print(
        "warning light: "
        + ("never switched on" if on is None else f"switched on at minute {on:.1f}")
    )
    for p in problems:
        console.print(f"[red]not seen:[/red] {p}")
    if own and not problems and os.environ.get("ROADSIDE_DEMO_KEEP") is None:
        shutil.rmtree(work, ignore_errors=True)
    else:
        console.print(f"logs and databases kept in {work}")
    return 1 if problems else 0
