"""Bus scan: seconds to find and name three devices on a paced 9600-baud RTU bus.

A simulated RS-485 bus (pseudo-terminal, wire-time pacing: character time, 3.5-character
silences, 5 ms device turnaround; traffic at other line settings is garbled as a UART would see
it) carries a DFRobot rain gauge (192), a radar level sensor (1) and an anemometer (2). The sweep
is the default one a technician runs (``roadside-provision scan PORT --no-ascii``: baud rates
9600, 19200, 4800, 38400, 115200 x parities N, E, O; addresses 1-247; 0.1 s answer timeout);
a pty refuses even parity, so those settings are skipped. The baseline is the sweep's wire-time
minimum (:func:`provisioning.scan.wire_minimum_s`): every request the sweep made, with the reply
it could have got, the silences and the turnaround, as if no wait were longer than the wire.
Medians over the runs; the last line is the JSON summary.

    .venv/bin/python bench/bench_scan.py [--runs 3] [--timeout 0.1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from provisioning.scan import ScanPlan, ScanStats, scan_serial, wire_minimum_s
from roadside.clock import ManualClock
from sim.spec import BusSpec, DeviceSpec
from sim.station import SimStation
from sim.testing import START, RampTruth, build_scenario

BUS = BusSpec("rs485-1", "rtu", 9600, pacing=True, turnaround_ms=5.0, link="ttyBENCH")
SLAVES = (
    DeviceSpec("rain", "dfrobot-sen0575", "rs485-1", 192),
    DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
    DeviceSpec("anemo", "generic-rs485-anemometer", "rs485-1", 2),
)
EXPECTED = {(192, "dfrobot-sen0575"), (1, "hlk-ld8001h"), (2, "generic-rs485-anemometer")}


def one_scan(port: str, plan: ScanPlan) -> tuple[float, float, int, bool]:
    """(seconds, wire-time minimum, requests, found exactly the three devices)."""
    stats = ScanStats()
    t0 = time.monotonic()
    found = scan_serial(port, plan, stats=stats)
    seconds = time.monotonic() - t0
    named = {(f.slave, f.profile) for f in found if f.baudrate == 9600 and f.parity == "N"}
    ok = named == EXPECTED and len(found) == len(EXPECTED)
    return seconds, wire_minimum_s(stats, BUS.turnaround_ms / 1000), len(stats.requests), ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=0.1, help="Answer timeout per request (s).")
    args = ap.parse_args()
    plan = ScanPlan(timeout_s=args.timeout, ascii=False)
    scenario = build_scenario(RampTruth(), buses=(BUS,), devices=SLAVES)
    times, minima, requests, correct = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        station = SimStation(scenario, ManualClock(START), Path(tmp), pacing=True).start()
        try:
            port = station.endpoints["rain"].port
            for run in range(args.runs):
                s, m, n, ok = one_scan(port, plan)
                times.append(s)
                minima.append(m)
                requests.append(n)
                correct.append(ok)
                print(
                    f"run {run + 1}: {s:.2f} s, wire minimum {m:.2f} s, {n} requests, "
                    f"{'found all three' if ok else 'WRONG RESULT'}"
                )
        finally:
            station.stop()
    value, baseline = statistics.median(times), statistics.median(minima)
    print(
        json.dumps(
            {
                "bench": "scan",
                "metric": "seconds to scan a three-device 9600-baud bus",
                "value": round(value, 3),
                "unit": "s",
                "baseline": round(baseline, 3),
                "ratio": round(value / baseline, 3),
                "requests": int(statistics.median(requests)),
                "timeout_s": args.timeout,
                "runs": args.runs,
                "all_found": all(correct),
            }
        )
    )


if __name__ == "__main__":
    main()
