"""RTU bus efficiency: polls per second our BusScheduler gets out of a paced 9600-baud bus.

A simulated RS-485 bus (pseudo-terminal, wire-time pacing: character time, 3.5-character
silences, 5 ms device turnaround) carries three slaves: a DFRobot rain gauge (one 5-register
FC04 block), a radar level sensor and an anemometer (one 3-register FC03 block each). Every device
is due all the time, so the bus is the limit. The theoretical maximum is one request/response
cycle per poll: request and reply on the wire, the silence after each, the turnaround
(``sim.devices.timing.min_cycle_s``). In the same run a bare pymodbus client loop reads the same
blocks as the baseline. Runs alternate; medians are reported; the last line is the JSON summary.

    .venv/bin/python bench/bench_bus_efficiency.py [--runs 5] [--seconds 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from pymodbus.client import ModbusSerialClient

from drivers.bus import BusScheduler, DeviceConfig
from drivers.profile import load_profile
from drivers.registers import plan_blocks
from roadside.clock import ScaledClock
from roadside.records import Reading
from sim.devices.rtu import RtuBus
from sim.devices.timing import min_cycle_s
from sim.scenario import load_scenario
from sim.spec import BusSpec, DeviceSpec
from sim.station import SimStation

BUS = BusSpec("rs485-1", "rtu", 9600, pacing=True, turnaround_ms=5.0, link="ttyBENCH")
SLAVES = (
    DeviceSpec("rain", "dfrobot-sen0575", "rs485-1", 192),
    DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
    DeviceSpec("anemo", "generic-rs485-anemometer", "rs485-1", 2),
)
DUE_ALWAYS_S = 0.01  # an interval shorter than a bus cycle: every device is always due


def blocks(spec: DeviceSpec):
    """The read requests one poll of the device makes (the scheduler's own plan)."""
    return plan_blocks(load_profile(spec.profile).modbus_channels)


def theoretical_polls_per_s() -> float:
    """Polls per second if every poll took exactly its wire time (round-robin over the slaves)."""
    round_s = sum(min_cycle_s(BUS, 8, 5 + 2 * b.count) for d in SLAVES for b in blocks(d))
    return len(SLAVES) / round_s


def run_ours(port: str, clock: ScaledClock, seconds: float) -> tuple[float, int]:
    """Polls/s of good polls by a BusScheduler owning the bus; and the count of failed polls."""
    good = bad = 0
    lock = threading.Lock()

    def sink(batch: list[Reading]) -> None:
        nonlocal good, bad
        with lock:
            if all(r.ok for r in batch):
                good += 1
            else:
                bad += 1

    devices = [
        DeviceConfig(d.name, load_profile(d.profile), port, d.slave, interval_s=DUE_ALWAYS_S)
        for d in SLAVES
    ]
    bus = BusScheduler(port, devices, station="bench", clock=clock, sink=sink)
    bus.start()
    time.sleep(0.5)  # warm-up: port opened, first round done
    with lock:
        good0, bad0 = good, bad
    t0 = time.monotonic()
    time.sleep(seconds)
    with lock:
        n, failed = good - good0, bad - bad0
    elapsed = time.monotonic() - t0
    bus.stop()
    return n / elapsed, failed


def run_bare(port: str, seconds: float) -> tuple[float, int]:
    """Polls/s of a plain pymodbus loop reading the same blocks; and the count of failures."""
    client = ModbusSerialClient(port, baudrate=BUS.baudrate, timeout=0.5, retries=0)
    if not client.connect():
        raise SystemExit(f"cannot open {port}")
    reads = []
    for d in SLAVES:
        for b in blocks(d):
            call = (
                client.read_input_registers if b.table == "input" else client.read_holding_registers
            )
            reads.append((call, b.start, b.count, d.slave or 0))
    i = 0

    def poll() -> bool:
        nonlocal i
        call, start, count, slave = reads[i % len(reads)]
        i += 1
        try:
            return not call(start, count=count, device_id=slave).isError()
        except Exception:  # a lost or garbled reply: count it as a failed poll
            return False

    t_end = time.monotonic() + 0.5
    while time.monotonic() < t_end:  # warm-up
        poll()
    polls = failed = 0
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds:
        ok = poll()
        polls += ok
        failed += not ok
    client.close()
    return polls / elapsed, failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()

    base = load_scenario("storm-5y-2h")
    scenario = dataclasses.replace(base, buses=(BUS,), devices=SLAVES, faults=())
    clock = ScaledClock(scenario.start, speed=1.0)
    theoretical = theoretical_polls_per_s()
    ours: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, SimStation(scenario, clock, Path(tmp)) as station:
        port = station.endpoints["rain"].port
        for run in range(args.runs):
            rtu = station.buses["rs485-1"]
            assert isinstance(rtu, RtuBus)
            counts = rtu.counts
            m0 = counts["merged"]
            o, o_failed = run_ours(port, clock, args.seconds)
            m1 = counts["merged"]
            b, b_failed = run_bare(port, args.seconds)
            m2 = counts["merged"]
            ours.append(o)
            bare.append(b)
            print(
                f"run {run + 1}: ours {o:.2f} polls/s ({o / theoretical:.3f} of max, "
                f"{o_failed} failed, {m1 - m0} frames sent too early)  "
                f"bare pymodbus {b:.2f} polls/s ({b / theoretical:.3f}, {b_failed} failed, "
                f"{m2 - m1} too early)",
                flush=True,
            )
    value, baseline = statistics.median(ours), statistics.median(bare)
    print(f"theoretical {theoretical:.2f} polls/s; median ours {value:.2f}, bare {baseline:.2f}")
    print(
        json.dumps(
            {
                "bench": "bus_efficiency",
                "metric": "polls_per_s",
                "value": round(value, 3),
                "unit": "polls/s",
                "baseline": round(baseline, 3),
                "ratio": round(value / theoretical, 4),
                "theoretical": round(theoretical, 3),
                "baseline_ratio": round(baseline / theoretical, 4),
                "runs": args.runs,
            }
        )
    )


if __name__ == "__main__":
    main()
