"""HIL timing: how closely the simulator keeps silence and turnaround on a bound serial device.

A Modbus master (pyserial, raw reads) sends FC03 requests to a simulated radar level sensor and
times, for each one, the gap from the moment its request is written to the first byte of the
answer. The bus is served two ways in the same run, alternating:

- **bound** (ours): ``--bind`` on a serial device the simulator did not make (a socat pty pair,
  the path a USB–RS485 adapter takes: pyserial, termios set, UART pacing assumed). A pty has no
  UART, so the request arrives at once; the configured gap is the 3.5-character silence that ends
  the frame plus the device turnaround.
- **own pty** (baseline): the simulator's own pseudo-terminal, where it models the request's wire
  time and paces its answer; the configured gap adds the request's 8 characters and the first
  answer character.

With turnaround 0 the gap measures the inter-frame silence alone; with turnaround 5 ms the
turnaround is the gap less the configured silence. Reported per baud rate (9600, 19200): p50 and
p99 of the measured silence and turnaround against the configured values, in milliseconds. The
last JSON line: ``value`` is the bound device's p99 absolute error of the whole gap over all runs,
``baseline`` the same on the own pty, ``ratio`` value / baseline.

    .venv/bin/python bench/bench_hil_timing.py [--requests 150]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import serial

from roadside.clock import ManualClock
from sim.devices import modbus
from sim.devices.timing import char_time_s, silence_s
from sim.spec import BusSpec, DeviceSpec
from sim.station import SimStation
from sim.testing import START, RampTruth, SerialPair, build_scenario

BAUDS = (9600, 19200)
TURNAROUNDS_MS = (0.0, 5.0)
REQUEST = modbus.rtu_frame(1, bytes([3, 0, 0, 0, 2]))  # FC03, 2 registers of slave 1
WARM_UP = 5  # first requests dropped (threads, caches and the pty settle)
DEVICE = DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1)


def gaps(port: str, bus: BusSpec, n: int) -> list[float]:
    """Seconds from each request written to the first answer byte."""
    out = []
    with serial.Serial(port, bus.baudrate, timeout=0) as ser:
        fd = ser.fileno()
        ser.reset_input_buffer()
        for _ in range(n):
            t0 = time.monotonic()
            os.write(fd, REQUEST)
            ready, _, _ = select.select([fd], [], [], 1.0)
            t1 = time.monotonic()
            if not ready:
                continue
            while select.select([fd], [], [], 0.01)[0]:  # the answer, until 10 ms of silence
                os.read(fd, 256)
            out.append(t1 - t0)
    return out[WARM_UP:]


def measure(bus: BusSpec, root: Path, bound: bool, n: int) -> list[float]:
    sc = build_scenario(RampTruth(), buses=(bus,), devices=(DEVICE,))
    cable = SerialPair(root) if bound else None
    try:
        bind = {bus.name: cable.sim} if cable else None
        with SimStation(sc, ManualClock(START), root / "links", bind=bind) as st:
            port = str(cable.dut) if cable else st.endpoints["level"].port
            return gaps(port, bus, n + WARM_UP)
    finally:
        if cable:
            cable.close()


def expected_s(bus: BusSpec, bound: bool) -> float:
    """The configured gap: silence + turnaround (+ modelled wire time on the own pty)."""
    extra = 0.0 if bound else (len(REQUEST) + 1) * char_time_s(bus)
    return silence_s(bus) + bus.turnaround_ms / 1000.0 + extra


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(v: float) -> float:
    return round(v * 1000.0, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=150, help="requests per configuration")
    args = ap.parse_args()
    if shutil.which("socat") is None:
        raise SystemExit("socat is not installed (make sysdeps)")
    errors: dict[bool, list[float]] = {True: [], False: []}
    per_baud: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-hil-") as tmp:
        for baud in BAUDS:
            row: dict[str, float] = {}
            for turnaround in TURNAROUNDS_MS:
                bus = BusSpec("rs485-1", "rtu", baud, turnaround_ms=turnaround, link="ttyB")
                for bound in (True, False):  # alternate ours and the baseline
                    root = Path(tmp) / f"{baud}-{turnaround}-{bound}"
                    got = measure(bus, root, bound, args.requests)
                    if not got:
                        raise SystemExit(f"{baud} baud: no answers at all")
                    want = expected_s(bus, bound)
                    errors[bound] += [g - want for g in got]
                    mode = "bound" if bound else "pty"
                    if turnaround == 0.0:  # the gap is the silence (+ modelled wire time)
                        base = want - silence_s(bus)
                        silence = [g - base for g in got]
                        row[f"{mode}_silence_p50_ms"] = ms(pct(silence, 0.5))
                        row[f"{mode}_silence_p99_ms"] = ms(pct(silence, 0.99))
                        row["silence_configured_ms"] = ms(silence_s(bus))
                    else:  # the gap less the configured silence is the turnaround
                        base = want - bus.turnaround_ms / 1000.0
                        turn = [g - base for g in got]
                        row[f"{mode}_turnaround_p50_ms"] = ms(pct(turn, 0.5))
                        row[f"{mode}_turnaround_p99_ms"] = ms(pct(turn, 0.99))
                        row["turnaround_configured_ms"] = turnaround
                    row[f"{mode}_answered"] = row.get(f"{mode}_answered", 0) + len(got)
            per_baud[str(baud)] = row
    print(
        f"{'baud':>6} {'mode':>6} {'silence cfg/p50/p99 ms':>26} {'turnaround cfg/p50/p99 ms':>28}"
    )
    for baud, row in per_baud.items():
        for mode in ("bound", "pty"):
            print(
                f"{baud:>6} {mode:>6} "
                f"{row['silence_configured_ms']:>8.3f} {row[f'{mode}_silence_p50_ms']:>8.3f} "
                f"{row[f'{mode}_silence_p99_ms']:>8.3f} "
                f"{row['turnaround_configured_ms']:>9.3f} {row[f'{mode}_turnaround_p50_ms']:>8.3f} "
                f"{row[f'{mode}_turnaround_p99_ms']:>8.3f}"
            )
    value = ms(pct([abs(e) for e in errors[True]], 0.99))
    baseline = ms(pct([abs(e) for e in errors[False]], 0.99))
    print(
        json.dumps(
            {
                "bench": "hil_timing",
                "metric": "p99 |gap - configured| on a bound serial device (silence + turnaround)",
                "value": value,
                "unit": "ms",
                "baseline": baseline,
                "ratio": round(value / baseline, 3) if baseline else None,
                "median_error_ms": ms(statistics.median(errors[True])),
                "baseline_median_error_ms": ms(statistics.median(errors[False])),
                "bauds": per_baud,
                "requests_per_config": args.requests,
            }
        )
    )


if __name__ == "__main__":
    main()
