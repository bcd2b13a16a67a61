"""The real agent against the simulated demo station in an accelerated storm (in process)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.config import load_config
from agent.runner import Agent
from agent.service import Notifier
from roadside.clock import ScaledClock
from sim.broker import free_port

sim_station = pytest.importorskip("sim.station")
sim_scenario = pytest.importorskip("sim.scenario")

SPEED = 30.0


@dataclass
class Endpoint:
    device: str
    profile: str
    port: str
    slave: int | None


@pytest.fixture
def running(
    tmp_path: Path, station_toml: Callable[..., str]
) -> Iterator[tuple[Agent, socket.socket, Path]]:
    scenario = sim_scenario.load_scenario("storm-5y-2h")
    clock = ScaledClock(scenario.start + timedelta(minutes=40), speed=SPEED, anchor=time.time())
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.setblocking(False)
    with sim_station.SimStation(scenario, clock, tmp_path / "links", pacing=False) as station:
        config_path = tmp_path / "station.toml"
        config_path.write_text(
            station_toml(
                station.endpoints,
                tmp_path / "buffer.db",
                interval_s=20,
                wet_interval_s=2,
                metrics_port=free_port(),
            )
        )
        agent = Agent(load_config(config_path), clock, notifier=Notifier(sock_path))
        agent.start()
        try:
            yield agent, sock, config_path
        finally:
            agent.stop()
            sock.close()


def messages(sock: socket.socket) -> list[dict[str, str]]:
    out = []
    while True:
        try:
            data = sock.recv(4096).decode()
        except BlockingIOError:
            return out
        out.append(dict(line.split("=", 1) for line in data.splitlines()))


def run_until(
    agent: Agent,
    sock: socket.socket,
    done: Callable[[list[dict[str, str]]], bool],
    timeout_s: float = 15.0,
) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        agent.step(timeout_s=0.05)
        seen += messages(sock)
        if done(seen):
            return seen
    raise AssertionError(f"condition not reached; notify messages: {seen[-5:]}")


def test_storm_runs_through_the_whole_pipeline(running: tuple[Agent, socket.socket, Path]) -> None:
    agent, sock, config_path = running
    seen = run_until(agent, sock, lambda m: any("READY" in x for x in m))
    ready = next(x for x in seen if "READY" in x)
    assert "3/3 devices ok" in ready["STATUS"], ready
    seen = run_until(agent, sock, lambda m: any("WATCHDOG" in x for x in m))
    # it rains (40 min into the storm): sampling went wet, every device polled every 2 s
    run_until(agent, sock, lambda m: agent.status()["sampling"] == "wet")
    assert agent.status()["intervals"] == {"rain": 2, "level": 2, "wind": 2}
    assert agent._bus_of["rain"].interval("rain") == 2
    assert agent.buffer is not None
    buf = agent.buffer
    readings = buf.where("kind = 'reading'")
    channels = {(r.sensor, r.channel) for r in readings}
    assert {("rain", "rain_total"), ("level", "water_depth"), ("wind", "wind_speed")} <= channels
    assert all(r.flag is not None for r in readings)
    rain = [r.value for r in readings if r.channel == "rain_total" and r.value is not None]
    assert rain and rain[-1] >= rain[0] > 0
    counters = buf.get_state("counters")
    assert "rain" in counters and "rain_total" in counters["rain"]
    derived = {r.channel for r in buf.where("kind = 'derived'")}
    assert {"rain_1min", "rain_1h", "wind_speed_2min"} <= derived
    # status through the CLI, from the status file and the buffer
    run_until(agent, sock, lambda m: agent.status_path.exists(), 5)
    out = CliRunner().invoke(main, ["status", "--config", str(config_path), "--json"])
    report: dict[str, Any] = json.loads(out.output)
    assert out.exit_code == 0, out.output
    assert report["verdict"] == "healthy"
    assert set(report["agent"]["devices"]) == {"rain", "level", "wind"}
    assert report["buffer"]["pending"]["live"] == buf.stats().unsynced
    latest = {(r["sensor"], r["channel"]): r for r in report["buffer"]["latest"]}
    assert latest[("rain", "rain_total")]["flag"] in ("correct", "suspect")
    text = CliRunner().invoke(main, ["status", "--config", str(config_path)])
    assert "agent: healthy" in text.output and "rain_total" in text.output
    # Prometheus metrics on the configured local port
    port = agent.config.metrics.port
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'roadside_polls_total{device="rain"}' in body
    assert "roadside_buffer_unsynced_records" in body
    assert "roadside_loop_lag_seconds" in body
    assert 'roadside_qc_flags_total{channel="rain_total"' in body
    assert f'version="{agent.config.version}"' in body


def test_the_status_file_is_rewritten_on_a_change_and_otherwise_every_few_seconds(
    running: tuple[Agent, socket.socket, Path],
) -> None:
    """Each rewrite is a new file renamed over the old (CPU, SD-card wear): counters and latest
    values go out every STATUS_EVERY_S clock seconds (a real station: 5 s), a change of what
    readers act on at the next round."""
    from agent.reporter import STATUS_EVERY_S

    agent, sock, _ = running
    reporter, path = agent.reporter, agent.status_path
    assert reporter.every_s == STATUS_EVERY_S / SPEED
    run_until(agent, sock, lambda m: path.exists(), 10)
    reporter.every_s = 3600.0  # the counters are not due during this test
    reporter.refresh_status(path)  # whatever start-up left to say is said
    first = path.stat().st_mtime_ns, json.loads(path.read_text())["updated_epoch"]
    assert not reporter.refresh_status(path)  # nothing changed: not rewritten
    assert (path.stat().st_mtime_ns, json.loads(path.read_text())["updated_epoch"]) == first
    agent.health.write_error = "disk full"  # what the status says changes: written at once
    try:
        assert reporter.refresh_status(path)
        assert json.loads(path.read_text())["degraded"] is True
    finally:
        agent.health.write_error = ""
    assert reporter.refresh_status(path)  # and its end
    assert not reporter.refresh_status(path)
    reporter.every_s = 0.0  # the counters are due
    assert reporter.refresh_status(path)
    assert json.loads(path.read_text())["updated_epoch"] > first[1]


def test_status_says_not_running_without_an_agent(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    endpoints = {"rain": Endpoint("rain", "dfrobot-sen0575", "/dev/null-port", 192)}
    config_path = tmp_path / "station.toml"
    config_path.write_text(station_toml(endpoints, tmp_path / "buffer.db"))
    out = CliRunner().invoke(main, ["status", "--config", str(config_path), "--json"])
    assert out.exit_code == 3
    assert json.loads(out.output)["verdict"] == "not running"


def test_failing_buffer_degrades_keeps_the_watchdog_fed_and_keeps_records(
    running: tuple[Agent, socket.socket, Path],
) -> None:
    agent, sock, _ = running
    run_until(agent, sock, lambda m: any("READY" in x for x in m))
    assert agent.buffer is not None
    real_append = agent.buffer.append
    before = agent.buffer.stats().last_seq

    def refuse(*_: object, **__: object) -> list[int]:
        from agent.errors import BufferStoreError

        raise BufferStoreError("disk I/O error")

    agent.buffer.append = refuse  # type: ignore[method-assign]
    messages(sock)
    seen = run_until(agent, sock, lambda m: any("FAILING" in x.get("STATUS", "") for x in m))
    later = run_until(agent, sock, lambda m: any("WATCHDOG" in x for x in m))
    # a restart would drop the held records and mend nothing: the live loop keeps petting it
    assert any("WATCHDOG" in x for x in later), "a degraded but live loop pets the watchdog"
    assert any("DEGRADED" in x.get("STATUS", "") for x in seen)
    assert not agent.healthy() and agent._unwritten
    assert agent.status()["degraded"] is True
    assert agent.metrics.registry.get_sample_value("roadside_degraded") == 1
    assert agent.metrics.registry.get_sample_value("roadside_buffer_write_errors_total") >= 1
    held = len(agent._unwritten)
    agent.buffer.append = real_append  # type: ignore[method-assign]
    run_until(agent, sock, lambda m: any("WATCHDOG" in x for x in m))
    assert agent.buffer.stats().last_seq >= before + held  # the held records were written
    assert agent.metrics.registry.get_sample_value("roadside_degraded") == 0
    assert seen


def test_warning_events_are_buffered_and_state_survives_a_restart(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    scenario = sim_scenario.load_scenario("storm-5y-2h")
    clock = ScaledClock(scenario.start + timedelta(minutes=40), speed=SPEED, anchor=time.time())
    low = "[warnings.rainstorm]\nlevels = { blue = { rain_10min = 0.5 } }\n"
    with sim_station.SimStation(scenario, clock, tmp_path / "links", pacing=False) as station:
        path = tmp_path / "station.toml"
        path.write_text(station_toml(station.endpoints, tmp_path / "b.db", extra=low))
        config = load_config(path)

        def events(agent: Agent) -> list[Any]:
            assert agent.buffer is not None
            return agent.buffer.where("kind = 'event'")

        first = Agent(config, clock, serve_metrics=False)
        first.start()
        try:
            deadline = time.monotonic() + 20
            while not events(first):
                assert time.monotonic() < deadline, "no warning raised in the storm"
                first.step(0.05)
            raised = events(first)[0]
            assert raised.lane == "event" and raised.channel == "rainstorm"
            assert raised.payload["kind"] == "raise" and raised.payload["level"] == "blue"
            assert raised.payload["evidence"]
            assert first.warning_state.level("rainstorm") == "blue"
        finally:
            first.stop()
        again = Agent(config, clock, serve_metrics=False)
        again.start()
        try:
            assert again.warning_state.level("rainstorm") == "blue"  # restored, not re-raised
            for _ in range(20):
                again.step(0.05)
            kinds = [e.payload["kind"] for e in events(again)]
            assert kinds.count("raise") == 1, kinds
        finally:
            again.stop()


def test_status_of_an_unreadable_buffer_is_one_line(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    endpoints = {"rain": Endpoint("rain", "dfrobot-sen0575", "/dev/null-port", 192)}
    config_path = tmp_path / "station.toml"
    config_path.write_text(station_toml(endpoints, tmp_path / "buffer.db"))
    (tmp_path / "buffer.db").write_bytes(b"not a database" * 500)
    out = CliRunner().invoke(main, ["status", "--config", str(config_path)])
    assert out.exit_code == 1
    assert out.output.startswith(f"Error: {tmp_path / 'buffer.db'}: ")
    assert "Traceback" not in out.output
