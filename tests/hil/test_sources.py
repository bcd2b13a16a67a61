"""Where a DUT's results come from: its status JSON (HTTP or file), its buffer, the qualify CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.buffer import Buffer
from roadside.clock import ManualClock
from roadside.contract import UNNUMBERED, Record
from sim.hil.errors import DutError
from sim.hil.observe import HttpPoller, read_buffer
from sim.testing import START


def to_s(when):
    return (when - START).total_seconds()


def status(minute: float, depth: float, level: int) -> dict:
    t = (START + timedelta(minutes=minute)).isoformat()
    return {
        "updated": t,
        "derived": {"water_depth": {"value": depth, "unit": "mm", "flag": 0, "time": t}},
        "warnings": {"waterlogging": level, "rainstorm": 0},
    }


def test_http_status_polled_over_real_http():
    docs = [status(1, 10.0, 0), status(2, 160.0, 1), status(2, 160.0, 1), status(3, 320.0, 2)]
    served = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(docs[min(len(served), len(docs) - 1)]).encode()
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/status.json"
        poller = HttpPoller(url, 0.02, to_s).start()
        deadline = time.monotonic() + 20
        while len(served) < len(docs) + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        obs = poller.stop()
    finally:
        server.shutdown()
    assert [(v.t_s, v.value) for v in obs.derived] == [(60.0, 10.0), (120.0, 160.0), (180.0, 320.0)]
    assert [(w.t_s, w.level, w.kind) for w in obs.warnings] == [
        (120.0, "blue", "raise"),
        (180.0, "yellow", "upgrade"),
    ]


def test_the_buffer_of_the_agent_read_back(tmp_path):
    clock = ManualClock(START)
    buf = Buffer(tmp_path / "buffer.db", max_bytes=10_000_000, clock=clock)
    t = START + timedelta(minutes=5)
    buf.append(
        [
            Record(
                seq=UNNUMBERED,
                kind="reading",
                time=t,
                sensor="level",
                channel="water_depth",
                value=151.0,
                unit="mm",
                flag=0,
            ),
            Record(
                seq=UNNUMBERED,
                kind="reading",
                time=t,
                sensor="rain",
                channel="rain_total",
                value=None,
                unit="mm",
                status="timeout",
                flag=8,
                reason="timeout",
            ),
            Record(
                seq=UNNUMBERED,
                kind="event",
                time=t,
                channel="waterlogging",
                value=1.0,
                reason="raise",
                payload={
                    "kind": "raise",
                    "signal": "waterlogging",
                    "level": "blue",
                    "certainty": "Observed",
                },
            ),
        ]
    )
    buf.close()
    obs = read_buffer(tmp_path / "buffer.db", to_s)
    assert [(v.t_s, v.sensor, v.value, v.flag, v.reason) for v in obs.readings] == [
        (300.0, "level", 151.0, 0, ""),
        (300.0, "rain", None, 8, "timeout"),
    ]
    assert [(w.signal, w.level, w.kind) for w in obs.warnings] == [
        ("waterlogging", "blue", "raise")
    ]
    with pytest.raises(DutError, match=r"dut.sqlite: .*nothing.db: no such buffer"):
        read_buffer(tmp_path / "nothing.db", to_s)
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(DutError, match=r"junk.db: not a station buffer"):
        read_buffer(tmp_path / "junk.db", to_s)


RUN = """\
[run]
scenario = "hil-bench"
speed = 120
duration_min = 12

[[faults]]
device = "rain"
kind = "no_answer"
start_min = 4
duration_min = 1

[[checkpoints]]
kind = "resume"
device = "rain"
after = "no_answer"
within_s = 600

[[checkpoints]]
name = "waterlogging long before the storm"
kind = "warning"
signal = "waterlogging"
by_min = 5

[dut]
station = "bs-hil-02"
source = "sqlite"

[dut.agent]
interval_s = 10
"""


def test_qualify_cli_writes_the_scorecard_and_exits_by_verdict(tmp_path):
    run_file = tmp_path / "run.toml"
    run_file.write_text(RUN, encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "sim", "qualify", str(run_file), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]  # the DUT failed a checkpoint
    card = json.loads(done.stdout.strip().splitlines()[-1])
    assert [c["passed"] for c in card["checkpoints"]] == [True, False] and not card["passed"]
    assert card["checkpoints"][1]["name"] == "waterlogging long before the storm"
    assert card["qc"]["no_answer"]["detected"] == 1
    assert card["run"]["source"] == "sqlite" and card["run"]["readings"] > 50
    assert card["run"]["first_reading_min"] < 4.0  # the agent was up before the fault
    assert json.loads((out / "scorecard.json").read_text()) == card
    assert "<svg" in (out / "scorecard.html").read_text()


def test_qualify_cli_refuses_a_bad_run_file_in_one_line(tmp_path):
    bad = tmp_path / "run.toml"
    bad.write_text(RUN.replace("within_s = 600", "within_s = -1"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "sim", "qualify", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "run.toml: checkpoints[0].within_s: must be > 0" in done.stderr
