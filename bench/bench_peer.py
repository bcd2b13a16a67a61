"""The peer's workload, run by the project: values per CPU-second, idle CPU, RSS and wire bytes.

The workload of the ThingsBoard IoT Gateway comparison (issue 10): one Modbus TCP server (the
project's simulator, :class:`sim.devices.tcp.TcpBus`) with three devices of ten holding registers
each, every value changing each second (a slow swing plus per-second noise of up to +-1.0 at a
0.1 scale), polled by the real agent (``python -m agent run``: bus scheduler, QC with limits on
every register, derived products, the nowcast with its default backend (LiteRT where installed),
warnings, the SQLite buffer) with its mutual-TLS MQTT uplink to a real Mosquitto configured as
``fleet/mosquitto`` (:mod:`sim.broker`, :mod:`sim.pki`), and a
committing controller (:class:`roadside.testing.sink.CommittingSink`) acknowledging every batch.

Passes: polls every 100 ms, every 1 s, and idle (one poll every 10 minutes, i.e. none in the
measured windows). For each, after a warm-up, ``--windows`` windows of ``--seconds``: CPU
(user + system of every thread, from ``/proc/<pid>/task/*/schedstat``, nanoseconds), values
committed in the agent's buffer, peak RSS (``VmHWM``) and anonymous RSS (``RssAnon``). Medians of
the windows are reported. Wire: payload bytes of every batch the controller received and the bytes
a TCP proxy in front of the controller's connection carried from the broker (TLS records with MQTT
framing) over all windows, per value delivered.

Baseline in the same run: a bare pymodbus + SQLite loop, one register per request (as the peer
reads), 100 ms polls, one transaction per cycle (WAL).

External reference (not installed by the project): ThingsBoard IoT Gateway 3.8.5 on the same
workload, one run on this machine, medians of three passes (ranges)::

    peer, 100 ms polls (memory store)  2,030 values/CPU-s (1,764-2,159)  14.6 % of a core
                                       peak RSS 64.3 MB (anon 36.6)  17.7 B/value (20.5 on TCP)
    peer, 100 ms polls (SQLite store)  1,174 (1,090-1,438)  24.8 %  64.5 MB (36.5)  17.0 B/value
    peer, 1 s polls                      386 (344-421)       7.8 %  63.9 MB (36.3)  17.8 B/value
    peer, idle (one poll an hour)          -                 7.3 %  63.6 MB (36.1)
    bare pymodbus + SQLite, 100 ms    11,718                 2.6 %  26.5 MB (14.0)

Roadside on this workload (QC on every register, uplink on, nowcast on with LiteRT), this shared
2-core machine (``nice -n 10``), medians of each run's windows, then the median and range over the
runs; "against the bare loop" is each run's ratio to its own bare loop, which is what compares
across days: the host's speed moves more than most steps (the bare loop gave 12,388-17,878 on
2026-12-01 morning, 11,936-16,206 that evening). Both columns are from the evening of 2026-12-01
on the same host: before = cc02730 (one run), after = 2395ab6 and later (eight runs, the last two
at the final head)::

                              before                 after
    100 ms, values/CPU-s      15,453                 17,167 (15,421-21,822): 58 us a value
      against the bare loop   1.18 x                 1.26 x (1.08-1.68)
    1 s, values/CPU-s         9,120                  12,488 (11,046-14,373), 32 x the peer
    idle, % of a core         0.12                   0.075 (0.070-0.084)
    peak RSS (anon)           77.3 MB (34.8)         67.8 MB (34.4) (67.5-68.0)
    payload / with TLS, 1 s   1.56 / 1.87 B a value  1.53 / 1.82 (1.51-1.55 / 1.78-1.87)

(The morning's figures for cc02730's predecessor on a quieter host: 19,388 values/CPU-s at
100 ms, 1.14 x its bare loop, 10,205 at 1 s; the before column's peak RSS counted more pages of
the freshly installed shared libraries, the anonymous part is the same.)

Where the CPU goes, per value at 100 ms polls (``/proc/<pid>/task/*/schedstat`` per thread and
``voluntary_ctxt_switches`` over 20 s windows, same host and hour), before -> after:

- bus thread 21.7 -> 20.5 us, 34-37 wake-ups a second (ten timer wake-ups and one a reply). The
  same sockets driven by a bare loop cost 7 us a value live: the rest is Python run with cold
  caches after every sleep. Changed: an all-OK poll counted without the per-status tally, no
  counter-state lock when no device counts, the TCP read's fast path before pymodbus's call
  table, a register's sample built without the named tuple's Python ``__new__`` (warm 9-10 ->
  7.6 us), and the scheduler sleeping on a :class:`roadside.clock.Doorbell` (``poll(2)`` on a
  pipe: a timed wake-up costs 70 us of CPU on this virtual machine, ``threading.Event`` 88).
- main loop 23.7 -> 19.0 us, 6 wake-ups a second. ``Agent.process`` alone (warm) 15 -> 12 us a
  value: QC 6.0 -> 4.5 (the small path in one pass with the step scan inline, lists to the
  engine instead of arrays, the persistence check slicing its tail), the SQLite insert 5 (its C
  part: AUTOINCREMENT and the pending index are 1.1 of it), rows and records 1.5, derived
  products 0.5 (only their input channels are looked at), metrics 0.5. No more pipe write
  to the uplink after each commit while it holds live rows.
- uplink thread 12.4 -> 10.3 us, 6.4 -> 4.1 wake-ups a second: a commit of routine rows does
  not wake it while it holds live rows for ``live_linger_s`` (warning events and a full batch
  do), its idle look at the buffer every 30 s (every commit notifies), keepalive looked at every
  quarter interval instead of every second; the columnar encoder's second pass reuses the
  first's scaled values, pending rows converted in place. What it does per value (warm): rows
  1.7, encoding 2.6, marking acked rows synced 2.4 (an UPDATE of each row).
- metrics thread 1.0 -> 0 us: the endpoint sleeps until a scrape (prometheus-client's server
  thread woke twice a second to look for a shutdown request).

Later that night (a slower hour: the bare loop gave 8,587-12,053), three more steps:

- the buffer's CHECK constraints as OR-ed equalities: SQLite built an ephemeral table for a
  ``CHECK (kind IN (...))`` list at every row's INSERT. ``bench/bench_buffer_append.py`` (30-row
  transactions into a 90,000-row file, medians of 9): 12.1 -> 8.8 us a row; a bare 5-column
  table 2.4; one row a poll and device with its values packed 2.0 us a value. Older files are
  rewritten in place at open.
  Main loop 29.3 / 31.1 -> 26.9 / 28.8 us a value, old and new code alternated in one hour.
- the bus's doorbell drains its pipe only when it was rung (a read that raised at every poll);
- no OpenBLAS worker thread (numpy started one per further core).

  Four runs, three with the first two steps and the last with all three: 100 ms 13,798 /
  12,966 / 16,254 / 12,922 values per CPU-second (1.50 / 1.08 / 1.65 / 1.50 x the bare loop of
  the same run); 1 s 8,772 / 6,928 / 11,173 / 9,043; idle 0.082-0.089 %; peak RSS 76.7-76.8 MB
  (anon 34.3: the file-backed part of the peak moves with the host's page cache, the anonymous
  part does not); 1.54-1.57 B a value, 1.83-1.86 with TLS.

The next evening (2026-12-01, a quicker hour: the bare loop gave 15,830-23,782), one row a poll
in the buffer (``agent.buffer``'s ``packs``: a poll's readings share a row; the uplink unpacks
them). Old and new code alternated from git worktrees: 100 ms 28,598 / 23,710 / 28,648 / 20,082
values per CPU-second (1.53 / 1.21 / 1.31 / 1.25 x the bare loop) against 18,522 / 18,551 /
24,399 (0.78 / 1.06 / 1.54 x); main loop 12.3-17.3 us a value against 15.5-18.8, uplink 7.4-10.3
against 9.8-11.8, bus unchanged (15.9-21.9); 1 s 11,431-13,423; idle 0.09 %; peak RSS 67.6-68.5
MB (anon 34.3-34.9); 1.54-1.58 B a value, 1.83-1.89 with TLS.

On 2026-12-02 (the bare loop 11,797-12,778, as in the issue's run), at 69d9eab (pack bodies
through msgspec): 100 ms 16,424 / 16,990 values per CPU-second (1.39 / 1.33 x the bare loop),
bus 26.2-26.6 us a value, main loop 19.9-21.4, uplink 11.1-12.9; 1 s 7,435-8,209; idle 0.11 %;
peak RSS 68.2-74.0 MB (anon 34.5-34.6); 1.53-1.59 B a value, 1.82-1.92 with TLS. Tried and
dropped: pipelining the three devices' requests on the TCP connection (sent together, replies
matched by transaction) took the bus from 36.8 to 30.2 wake-ups a second but its CPU only from
25.9-28.2 to 24.6-27.6 us a value, within the noise: the simulator answers one request after
the other, so the replies still arrive one by one.

On 2026-12-03 (a quick hour: the bare loop gave 15,304-22,611), py-spy on the running agent
(``--nonblocking --threads``, 1,000 Hz, 100 s at 100 ms polls: 1,445 samples on CPU) put 44 %
of the samples in the bus thread, 34 % in the main loop and 22 % in the uplink; the bus's send
and receive lines were 43 % of the bus and its timed sleep 16 % (kernel work and wake-ups), the
main loop's commit (its one fsync a second, kept) 15 % of it, QC 37 %, housekeeping 14 % (a third
of that the status file's rename over the old one on ext4), and the marking of acknowledged rows
a quarter of the uplink thread, most of it that transaction's fsync. The marks now commit without
an fsync of their own (``agent.buffer``): a warm ``mark_synced`` of 75 rows 151 -> 68 us of CPU
(330 -> 68 us of wall time), the uplink's wake-ups 4.1 -> 1.7 a second, its CPU 8.1 -> 7.9 us a
value (three runs each, old and new alternated: within the noise). Three runs at 9933bbc:
100 ms 28,436 / 30,382 / 29,292 values per CPU-second (1.26 / 1.41 / 1.37 x the bare loop), bus
14.6-15.9 us a value, main loop 12.3-12.8, uplink 6.7-7.0; 1 s 13,633-14,572 (35-38 x the
peer); idle 0.073-0.087 %; peak RSS 67.9-68.1 MB (anon 34.4-34.6); 1.50-1.54 B a value,
1.78-1.84 with TLS. ``make soak``'s accelerated day: RSS 66.7 -> 68.1 MB.

Memory (``/proc/self/status`` after each import, then the running agent): the interpreter 10.7 MB;
the standard library the agent needs (sqlite3, ssl, json, threading, socket) 6.7 more; msgspec and
zstandard 3.5; paho 4.5; pymodbus 4.0 (it brings asyncio); click 1.0; prometheus-client 1.6;
**numpy 12.1; LiteRT 8.9 at import and 2.5 for the interpreter**; the agent's own modules 4.9: 60.4
MB after start-up, 67.9 MB peak while running (SQLite's cache, thread stacks, the heap). With the
nowcast off (``--nowcast off``, LiteRT never loaded) the agent peaks at 54.3 MB (anon 32.2): LiteRT
is 13.4 MB of the peak. 40 MB with the nowcast on LiteRT cannot be had: LiteRT's Python API needs
numpy, and the two (23.5 MB) with the interpreter and the standard library already make 41 MB
before any MQTT, Modbus or configuration code. Without them (about 37 MB at start-up, 44 running)
it would take the nowcast's forward pass in plain Python from the same weights (4,788 parameters,
0.24 ms a forecast, one every 20-60 s), the features, derived products and QC rings in plain Python
with numpy kept for long arrays; then Modbus without pymodbus (the TCP reads are already framed
here; RTU and writes are not) to get under 40. The configuration signatures' Ed25519 check
loads cryptography: 7.0-8.0 MB at import (5.5-6.0 of it file-backed), where PyNaCl would take 2.1.

Each pass also prints its threads by kernel name (the agent names them with
:func:`roadside.threads.name_os_thread`; ``python`` is the main loop): CPU microseconds a value,
share of a core and wake-ups a second, over all its windows; the 100 ms pass's are
``threads_100ms`` in the JSON line.

The last JSON line: ``value`` = values per CPU-second at 1 s polls (a run without that pass
names its own in ``metric``), ``baseline`` = 386 (the peer at 1 s), plus
``cpu_per_value_100ms`` (CPU microseconds a value), ``idle_pct``, ``rss_mb``, ``rss_anon_mb``,
``wire_bytes_per_value`` and ``wire_bytes_per_value_tls``.

    .venv/bin/python bench/bench_peer.py [--seconds 5] [--windows 3] [--idle-seconds 15]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click

from agent.buffer import count_sql
from sim.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEER_AT_1S = 386.0
PEER_TABLE = {"100ms_memory": 2030, "100ms_sqlite": 1174, "1s": 386, "bare_100ms": 11718}
STATION = "peer-st"
DEVICES = 3
REGISTERS = 10
SCALE = 0.1
MODES = {"100ms": 0.1, "1s": 1.0, "idle": 600.0}


# -- the simulator --------------------------------------------------------------------------------


def profile_text() -> str:
    """A generic ten-register Modbus device (holding 0-9, 0.1 units)."""
    out = (
        '[device]\nmodel = "peer-ten-registers"\nkind = "weather_transmitter"\n'
        'protocol = "modbus"\ndescription = "Ten holding registers (the peer benchmark)"\n'
        "[serial]\ndefault_slave = 1\n"
    )
    for i in range(REGISTERS):
        out += f'[[channels]]\nname = "reg{i}"\nregister = {i}\nscale = {SCALE}\nunit = "u"\n'
    return out


class PeerDevice:
    """What :class:`sim.devices.tcp.TcpBus` needs of a device: ten values changing each second."""

    def __init__(self, profile: Any, slave: int) -> None:
        self.profile = profile
        self.slave = slave
        self.name = f"dev{slave}"
        self.settings: dict[str, int] = {}
        self.coils: list[bool] = []
        self.rng = random.Random(slave)

    def values(self, t_s: float) -> dict[str, float]:
        sec = int(t_s)
        out = {}
        for i in range(REGISTERS):
            noise = random.Random(sec * 131 + self.slave * 17 + i).uniform(-1.0, 1.0)
            swing = 50.0 * math.sin(2 * math.pi * sec / 600.0 + i + self.slave)
            out[f"reg{i}"] = 200.0 + 10.0 * i + swing + noise
        return out

    def frame_faults(self, _t_s: float) -> list[Any]:
        return []


def start_simulator(profile_path: Path) -> Any:
    from drivers.profile import load_profile
    from sim.devices.tcp import TcpBus
    from sim.spec import BusSpec

    profile = load_profile(str(profile_path))
    devices = [PeerDevice(profile, s) for s in range(1, DEVICES + 1)]
    bus = TcpBus(BusSpec("peer", "tcp", pacing=False), devices, time.time)  # type: ignore[arg-type]
    bus.start()
    return bus


# -- measuring a process --------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """CPU seconds of every live thread of ``pid`` (schedstat: nanoseconds, not clock ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def thread_stats(pid: int) -> dict[str, tuple[int, int]]:
    """CPU nanoseconds and voluntary context switches (wake-ups from a sleep) of ``pid``'s live
    threads, summed by kernel name (the agent names its threads: bus, uplink, metrics)."""
    out: dict[str, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, StopIteration):
            name = (task / "comm").read_text().strip()
            cpu = int((task / "schedstat").read_text().split()[0])
            lines = (task / "status").read_text().splitlines()
            woke = next(int(x.split()[1]) for x in lines if x.startswith("voluntary_ctxt"))
            had = out.get(name, (0, 0))
            out[name] = (had[0] + cpu, had[1] + woke)
    return out


def per_thread(
    start: tuple[int, float, dict[str, tuple[int, int]]],
    end: tuple[int, float, dict[str, tuple[int, int]]],
) -> dict[str, dict[str, float | None]]:
    """Each thread's CPU a value (us), share of a core (%) and wake-ups a second between two
    edges of (values committed, time, :func:`thread_stats`)."""
    (n0, t0, a), (n1, t1, b) = start, end
    values, wall = n1 - n0, max(t1 - t0, 1e-9)
    out: dict[str, dict[str, float | None]] = {}
    for name, (cpu, woke) in sorted(b.items()):
        cpu0, woke0 = a.get(name, (0, 0))
        out[name] = {
            "us_per_value": round((cpu - cpu0) / 1e3 / values, 2) if values else None,
            "pct": round((cpu - cpu0) / 1e9 / wall * 100, 3),
            "wakes_per_s": round((woke - woke0) / wall, 1),
        }
    return out


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def count_rows(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return int(conn.execute(sql).fetchone()[0] or 0)
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


class ByteProxy:
    """A TCP forwarder counting the bytes the upstream (broker) sends to the client."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.down = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


# -- the agent ----------------------------------------------------------------------------------


def agent_config(
    station: str, profile: Path, sim_port: int, interval: float, db: Path, broker: Any, nowcast: str
) -> str:
    files = broker.pki.client(station)
    out = f'version = "peer"\n[station]\nid = "{station}"\nlat = 31.4\nlon = 121.4\n'
    out += 'grid_cell = "g1"\n'
    for s in range(1, DEVICES + 1):
        out += f'[[sensors]]\nname = "dev{s}"\nprofile = "{profile}"\n'
        out += f'port = "tcp://127.0.0.1:{sim_port}"\nslave = {s}\ninterval_s = {interval}\n'
    out += f'[buffer]\npath = "{db}"\n[metrics]\nport = {free_port()}\n'
    out += '[time]\nsync_check = "none"\n'
    if nowcast == "off":
        out += "[nowcast]\nenabled = false\n"
    else:
        out += f'[nowcast]\nbackend = "{nowcast}"\n'
    out += f'[uplink]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    out += f'ca = "{files.ca}"\ncert = "{files.cert}"\nkey = "{files.key}"\n'
    out += "live_linger_s = 10.0\n"  # a message carries ten seconds of polls
    for i in range(REGISTERS):  # QC on every register: range, climate, step, persistence, gap
        out += (
            f"[qc.channels.reg{i}]\nlow = 0.0\nhigh = 6553.5\nclimate_low = 50.0\n"
            "climate_high = 1000.0\nmax_step = 100.0\nstuck_window_s = 600.0\n"
            "stuck_min_range = 0.05\n"
        )
    return out


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_agent(
    mode: str,
    workdir: Path,
    profile: Path,
    sim_port: int,
    broker: Any,
    sink: Any,
    proxy: ByteProxy,
    windows: int,
    seconds: float,
    nowcast: str,
) -> dict[str, Any]:
    """One pass of the agent at ``mode``'s interval."""
    db = workdir / f"agent-{mode}.db"
    cfg = workdir / f"agent-{mode}.toml"
    station = f"{STATION}-{mode}"  # its own seqs in the controller's store
    cfg.write_text(agent_config(station, profile, sim_port, MODES[mode], db, broker, nowcast))
    cmd = [sys.executable, "-m", "agent", "run", "--config", str(cfg), "--log-level", "error"]
    cmd += ["--status-file", str(workdir / f"status-{mode}.json")]
    readings = count_sql("reading")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not _started(mode, db, sink, station):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise click.ClickException(f"agent ({mode}) sent nothing: {err[-1500:]}")
            time.sleep(0.05)
        time.sleep(3.0)  # warm-up: first windows filled, first batches acknowledged
        rows: list[dict[str, float]] = []
        d0 = _deliveries(sink, station)
        p0 = proxy.down
        aligned = mode != "idle"  # polling modes: windows of whole commits
        first: tuple[int, float, dict[str, tuple[int, int]]] | None = None
        for _ in range(windows):
            n0, c0, t0 = _window_edge(proc.pid, db, readings, aligned)
            first = first or (n0, t0, thread_stats(proc.pid))
            time.sleep(seconds)
            n1, c1, t1 = _window_edge(proc.pid, db, readings, aligned)
            wall = t1 - t0
            cpu = c1 - c0
            rows.append(
                {
                    "values": n1 - n0,
                    "cpu_s": cpu,
                    "rate": (n1 - n0) / max(cpu, 1e-9),
                    "pct": 100.0 * cpu / wall,
                }
            )
        assert first is not None
        threads = per_thread(first, (n1, t1, thread_stats(proc.pid)))
        d1 = _deliveries(sink, station)
        p1 = proxy.down
        rss, anon = status_mb(proc.pid, "VmHWM"), status_mb(proc.pid, "RssAnon")
    finally:
        stop_process(proc)
    n_delivered, payload = d1[0] - d0[0], d1[1] - d0[1]
    return {
        "mode": mode,
        "windows": rows,
        "rate": statistics.median(r["rate"] for r in rows),
        "rate_range": [min(r["rate"] for r in rows), max(r["rate"] for r in rows)],
        "pct": statistics.median(r["pct"] for r in rows),
        "rss": rss,
        "anon": anon,
        "delivered": n_delivered,
        "payload_per_value": payload / n_delivered if n_delivered else None,
        "tls_per_value": (p1 - p0) / n_delivered if n_delivered else None,
        "threads": threads,
    }


def _window_edge(pid: int, db: Path, sql: str, aligned: bool) -> tuple[int, float, float]:
    """Values committed, the agent's CPU seconds and the time at a window's edge. ``aligned``:
    just after the agent's next commit (it commits once a second), so that a window holds whole
    commits; a 5 s window otherwise holds five or six of them, +-20 % on its rate."""
    n = count_rows(db, sql)
    if aligned:
        deadline = time.monotonic() + 5.0
        while (now := count_rows(db, sql)) == n and time.monotonic() < deadline:
            time.sleep(0.002)
        n = now
    return n, cpu_s(pid), time.monotonic()


def _started(mode: str, db: Path, sink: Any, station: str) -> bool:
    """Polling and uplink running: readings committed and delivered (idle: the uplink is up,
    its first poll may be ten minutes away)."""
    if mode == "idle":
        return station in sink.statuses
    return count_rows(db, count_sql("reading")) > 0 and bool(sink.count(station))


def _deliveries(sink: Any, station: str) -> tuple[int, int]:
    rows = sink.deliveries(station)
    return sum(r[3] for r in rows), sum(r[5] for r in rows)


# -- the bare loop ---------------------------------------------------------------------------------


def bare_loop(port: int, db_path: str, interval: float) -> None:
    """Per-register reads with pymodbus, one SQLite transaction per cycle, until SIGTERM."""
    from datetime import UTC, datetime

    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1)
    client.connect()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, device INTEGER,"
        " register INTEGER, time TEXT, value REAL)"
    )
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    next_due = time.monotonic()
    while not stop:
        rows = []
        for unit in range(1, DEVICES + 1):
            for reg in range(REGISTERS):
                reply = client.read_holding_registers(reg, count=1, device_id=unit)
                if not reply.isError():
                    rows.append(
                        (unit, reg, datetime.now(UTC).isoformat(), reply.registers[0] * SCALE)
                    )
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO readings (device, register, time, value) VALUES (?,?,?,?)", rows
        )
        conn.execute("COMMIT")
        next_due += interval
        time.sleep(max(0.0, next_due - time.monotonic()))
    conn.close()
    client.close()


def measure_bare(workdir: Path, sim_port: int, windows: int, seconds: float) -> dict[str, Any]:
    db = workdir / "bare.db"
    cmd = [sys.executable, __file__, "--bare", str(sim_port), str(db)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sql = "SELECT count(*) FROM readings"
    try:
        deadline = time.monotonic() + 30
        while count_rows(db, sql) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise click.ClickException(f"bare loop produced nothing: {err[-800:]}")
            time.sleep(0.05)
        time.sleep(1.0)
        rows = []
        for _ in range(windows):
            c0, n0, t0 = cpu_s(proc.pid), count_rows(db, sql), time.monotonic()
            time.sleep(seconds)
            c1, n1 = cpu_s(proc.pid), count_rows(db, sql)
            cpu = c1 - c0
            rows.append(
                {"rate": (n1 - n0) / max(cpu, 1e-9), "pct": 100 * cpu / (time.monotonic() - t0)}
            )
        rss, anon = status_mb(proc.pid, "VmHWM"), status_mb(proc.pid, "RssAnon")
    finally:
        stop_process(proc)
    return {
        "rate": statistics.median(r["rate"] for r in rows),
        "pct": statistics.median(r["pct"] for r in rows),
        "rss": rss,
        "anon": anon,
    }


# -- main -----------------------------------------------------------------------------------------


def _fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


@click.command()
@click.option("--seconds", default=5.0, show_default=True, help="Measured window (real s).")
@click.option("--windows", default=5, show_default=True, help="Windows per pass (medians).")
@click.option("--idle-seconds", default=15.0, show_default=True, help="Idle window (real s).")
@click.option(
    "--nowcast",
    type=click.Choice(["auto", "numpy", "off"]),
    default="auto",
    show_default=True,
    help="The agent's nowcast backend (auto: LiteRT where installed).",
)
@click.option(
    "--modes", default="100ms,1s,idle", show_default=True, help="Passes to run (comma list)."
)
@click.option("--bare", "bare_args", nargs=2, hidden=True, help="Internal: run the bare loop.")
def main(
    seconds: float,
    windows: int,
    idle_seconds: float,
    nowcast: str,
    modes: str,
    bare_args: tuple[str, str],
) -> None:
    """The peer's Modbus TCP workload: the agent against a bare pymodbus + SQLite loop."""
    if bare_args:
        bare_loop(int(bare_args[0]), bare_args[1], 0.1)
        return
    from roadside.testing.sink import CommittingSink
    from sim.broker import MosquittoBroker
    from sim.pki import CONTROLLER_IDENTITY, TestPKI

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        profile = tmp / "peer-ten-registers.toml"
        profile.write_text(profile_text())
        sim = start_simulator(profile)
        pki = TestPKI(tmp / "pki")
        try:
            with MosquittoBroker(tmp / "broker", pki) as broker:
                proxy = ByteProxy(broker.port)
                settings = broker.settings(CONTROLLER_IDENTITY)
                from dataclasses import replace

                with CommittingSink(replace(settings, port=proxy.port), tmp / "sink.db") as sink:
                    for mode in modes.split(","):
                        secs = idle_seconds if mode == "idle" else seconds
                        results[mode] = measure_agent(
                            mode, tmp, profile, sim.tcp_port, broker, sink, proxy,
                            windows, secs, nowcast,
                        )  # fmt: skip
                proxy.close()
            bare = measure_bare(tmp, sim.tcp_port, windows, seconds)
        finally:
            sim.stop()
    for mode, r in results.items():
        click.echo(
            f"roadside {mode:>5}: {_fmt(r['rate'], 0)} values/CPU-s "
            f"({_fmt(r['rate_range'][0], 0)}-{_fmt(r['rate_range'][1], 0)}), "
            f"{r['pct']:.2f} % of a core, peak RSS {r['rss']:.1f} MB (anon {r['anon']:.1f}), "
            f"{_fmt(r['payload_per_value'], 2)} B/value ({_fmt(r['tls_per_value'], 2)} with TLS)"
            f" over {r['delivered']} values",
            err=True,
        )
        for name, t in r["threads"].items():
            click.echo(
                f"    thread {name:<16} {_fmt(t['us_per_value'], 2):>6} us a value, "
                f"{t['pct']:.3f} % of a core, {t['wakes_per_s']:.1f} wake-ups a second",
                err=True,
            )
    click.echo(
        f"bare   100ms: {bare['rate']:,.0f} values/CPU-s, {bare['pct']:.2f} % of a core, "
        f"peak RSS {bare['rss']:.1f} MB (anon {bare['anon']:.1f})",
        err=True,
    )
    # ``value`` is the 1 s pass's; a run without it (``--modes``) names the pass it reports
    mode = "1s" if "1s" in results else next(iter(results))
    one = results[mode]
    fast = results.get("100ms")
    idle = results.get("idle")
    value = one["rate"]
    click.echo(
        json.dumps(
            {
                "bench": "peer",
                "metric": f"values_per_cpu_second_{mode}",
                "value": round(value, 1),
                "unit": "values/cpu-s",
                "baseline": PEER_AT_1S,
                "ratio": round(value / PEER_AT_1S, 2),
                "values_per_cpu_s_100ms": round(fast["rate"], 1) if fast else None,
                "cpu_per_value_100ms": round(1e6 / fast["rate"], 2) if fast else None,
                "cpu_pct_100ms": round(fast["pct"], 2) if fast else None,
                f"cpu_pct_{mode}": round(one["pct"], 2),
                "idle_pct": round(idle["pct"], 3) if idle else None,
                "rss_mb": round(max(r["rss"] for r in results.values()), 1),
                "rss_anon_mb": round(max(r["anon"] for r in results.values()), 1),
                "wire_bytes_per_value": _round(one["payload_per_value"]),
                "wire_bytes_per_value_tls": _round(one["tls_per_value"]),
                "wire_bytes_per_value_100ms": _round(fast["payload_per_value"]) if fast else None,
                "bare_values_per_cpu_s_100ms": round(bare["rate"], 1),
                "bare_rss_mb": round(bare["rss"], 1),
                "bare_rss_anon_mb": round(bare["anon"], 1),
                "vs_bare_100ms": round(fast["rate"] / bare["rate"], 3) if fast else None,
                "threads_100ms": fast["threads"] if fast else None,
                "peer_reference": PEER_TABLE,
                "windows": windows,
                "seconds": seconds,
                "nowcast": nowcast,
            }
        )
    )


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
