"""``make soak``: the proving ground of issue 9, against the real broker, controller and station.

Phases (counts scaled by ``SOAK_SCALE``, default 0.1 of the issue's full counts; the report says
which were run): kill -9 across agent, controller and broker during an accelerated storm; power
cuts (the buffer's files copied as they lie, some with a torn page); disk full on a real small
filesystem; fuzzed serial/Modbus frames and MQTT payloads; every cross-station and document
attack; an accelerated memory soak of the agent; many simulated stations against two controllers
sharing the subscription on PostgreSQL. Writes ``soak-report/index.html`` and
``soak-report/soak-summary.json`` (``SOAK_OUT`` to put them elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard
from fastapi.testclient import TestClient

from agent.buffer import Buffer
from agent.errors import BufferStoreError
from agent.remote_config import RemoteConfig
from drivers.diagnose import rtu_frame, rtu_frame_ok, rtu_reply_size
from drivers.errors import DeviceError
from drivers.windsonic import FrameReader, decode, encode
from drivers.wxt import parse_answer
from fleet.api import create_app
from fleet.auth import Auth
from fleet.loadgen import StationClient, readings
from fleet.service import FleetService
from fleet.store import open_store
from roadside import signing, wire
from roadside.clock import ManualClock, ScaledClock, SystemClock
from roadside.contract import UNNUMBERED, Record
from roadside.testing.broker import MosquittoBroker
from roadside.testing.pki import CONTROLLER_IDENTITY, TestPKI
from tests.soak.report import svg_plot, write_report

pytestmark = pytest.mark.soak
SCALE = float(os.environ.get("SOAK_SCALE", "0.1"))
OUT = Path(os.environ.get("SOAK_OUT", Path(__file__).resolve().parents[2] / "soak-report"))
PG_URL = os.environ.get("ROADSIDE_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
STATION = "bs-soak-01"
SPEED = 30.0
T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)
FULL = {"kills": 200, "serial_fuzz": 100_000, "mqtt_fuzz": 10_000, "stations": 10_000,
        "memory_hours": 24.0}  # fmt: skip


def n(full: float, low: int = 1) -> int:
    return max(low, int(full * SCALE))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ro(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return []
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


class Rig:
    """Broker, controller process, simulated station, agent process: each can be killed."""

    def __init__(self, work: Path) -> None:
        import sim.scenario as sim_scenario
        import sim.station as sim_station

        self.work = work
        self.pki = TestPKI(work / "pki")
        self.broker = MosquittoBroker(work / "broker", self.pki)
        self.broker.start()
        self.db_url = f"sqlite:///{work / 'fleet.db'}"
        open_store(self.db_url).close()
        self.ctl_id = f"{CONTROLLER_IDENTITY}-soak"
        self.ctl_files = self.pki.client(self.ctl_id)
        scenario = sim_scenario.load_scenario("storm-5y-2h")
        clock = ScaledClock(scenario.start + timedelta(minutes=20), speed=SPEED, anchor=time.time())
        self.sim = sim_station.SimStation(scenario, clock, work / "links", pacing=False)
        self.sim.start()
        self.state = work / "sim-state.json"
        self.sim.write_state(self.state)
        self.buffer = work / "station" / "buffer.db"
        st = self.pki.client(STATION)
        lines = ['version = "soak-1"', "[station]", f'id = "{STATION}"', "lat = 31.4",
                 "lon = 121.4", 'grid_cell = "310113-G042"']  # fmt: skip
        for ep in self.sim.endpoints.values():
            lines += ["[[sensors]]", f'name = "{ep.device}"', f'profile = "{ep.profile}"',
                      f'port = "{ep.port}"', "interval_s = 1.0"]  # fmt: skip
            if ep.slave is not None:
                lines.append(f"slave = {ep.slave}")
        lines += ["[uplink]", 'host = "127.0.0.1"', f"port = {self.broker.port}",
                  f'ca = "{st.ca}"', f'cert = "{st.cert}"', f'key = "{st.key}"',
                  "[buffer]", f'path = "{self.buffer}"', "max_mb = 256", "[metrics]", "port = 0",
                  "[time]", 'sync_check = "none"']  # fmt: skip
        self.config = work / "station.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.agent: subprocess.Popen[bytes] | None = None
        self.ctl: subprocess.Popen[bytes] | None = None

    def start_agent(self) -> None:
        log = open(self.work / "agent.log", "ab")  # noqa: SIM115
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(self.config), "--clock-state",
             str(self.state), "--no-metrics", "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

    def start_ctl(self) -> None:
        log = open(self.work / "ctl.log", "ab")  # noqa: SIM115
        f = self.ctl_files
        self.ctl = subprocess.Popen(
            [sys.executable, "-m", "fleet", "run", "--db", self.db_url, "--broker",
             f"127.0.0.1:{self.broker.port}", "--ca", str(f.ca), "--cert", str(f.cert),
             "--key", str(f.key), "--client-id", self.ctl_id, "--http", "off", "--tick-s", "1"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

    @staticmethod
    def kill(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for proc in (self.agent, self.ctl):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.kill(proc)
        self.sim.stop()
        self.broker.stop()


def phase_kills(work: Path, figures: dict[str, Any], plots: list[str]) -> dict[str, Any]:
    rig = Rig(work)
    rng = random.Random(9)
    kills = {"agent": 0, "controller": 0, "broker": 0}
    cuts: list[tuple[Path, int]] = []
    timeline: list[tuple[float, float]] = []
    started = time.monotonic()
    store = open_store(rig.db_url)
    try:
        rig.start_ctl()
        rig.start_agent()
        deadline = time.monotonic() + 90
        while not ro(rig.buffer, "SELECT 1 FROM records WHERE kind = 'reading' LIMIT 1"):
            assert time.monotonic() < deadline, "the agent never committed a reading"
            time.sleep(0.2)
        for i in range(n(FULL["kills"], 4)):
            time.sleep(rng.uniform(1.0, 4.0))
            if rng.random() < 0.3 and rig.buffer.exists():  # a power cut, copied as it lies
                top = ro(rig.buffer, "SELECT seq FROM sqlite_sequence WHERE name='records'")
                dst = work / "cuts" / f"cut-{i}"
                dst.mkdir(parents=True)
                for suffix in ("", "-wal", ".hwm"):
                    src = Path(str(rig.buffer) + suffix)
                    with contextlib.suppress(FileNotFoundError):
                        shutil.copyfile(src, dst / (rig.buffer.name + suffix))
                cuts.append((dst / rig.buffer.name, int(top[0][0]) if top else 0))
            # every fifth a broker outage (the uplink down), else the agent or the controller
            victim = "broker" if i % 5 == 4 else rng.choices(["agent", "controller"], [2, 1])[0]
            kills[victim] += 1
            if victim == "agent":
                rig.kill(rig.agent)
                rig.start_agent()
            elif victim == "controller":
                rig.kill(rig.ctl)
                rig.start_ctl()
            else:
                rig.broker.kill()
                time.sleep(rng.uniform(0.5, 3.0))  # a broker (uplink) outage
                rig.broker.start()
            timeline.append((time.monotonic() - started, store.count(STATION)))
        # the last stretch: the agent stops (SIGTERM), its uplink drains what is left
        time.sleep(3.0)
        if rig.agent is not None:
            rig.agent.send_signal(signal.SIGTERM)
            rig.agent.wait(30)
        files = rig.pki.client(STATION)
        drained = subprocess.run(
            [sys.executable, "-m", "agent.uplink", "--station", STATION, "--buffer",
             str(rig.buffer), "--port", str(rig.broker.port), "--ca", str(files.ca), "--cert",
             str(files.cert), "--key", str(files.key), "--until-drained", "--timeout", "180"],
            capture_output=True, timeout=240,
        )  # fmt: skip
        assert drained.returncode == 0, drained.stderr.decode()[-2000:]
        timeline.append((time.monotonic() - started, store.count(STATION)))
        rig.stop()
        promised = {r[0] for r in ro(rig.buffer, "SELECT seq FROM records WHERE kind='reading'")}
        stored = set(store.seqs(STATION))
        dup = store._query(  # type: ignore[attr-defined]
            "SELECT count(*) FROM (SELECT channel, t FROM records WHERE station = ? AND "
            "kind = 'reading' GROUP BY channel, t, sensor HAVING count(*) > 1) d",
            [STATION],
        )[0][0]
        unsynced = ro(rig.buffer, "SELECT count(*) FROM records WHERE synced = 0")[0][0]
    finally:
        store.close()
        with contextlib.suppress(Exception):
            rig.stop()
    figures["readings_lost"] = len(promised - stored)
    figures["readings_duplicated"] = int(dup)
    figures["kills"] = sum(kills.values())
    plots.append(svg_plot(timeline, "records stored by the fleet through the kills", "s", "rows"))
    # power cuts: each copy opens, passes integrity_check and never reuses a number
    cut_fail = 0
    for i, (path, top) in enumerate(cuts):
        wal = Path(str(path) + "-wal")
        if i % 2 and wal.exists() and wal.stat().st_size > 4096:
            with open(wal, "r+b") as f:  # a torn page: the last sector of the WAL never landed
                f.seek(wal.stat().st_size - 512)
                f.write(b"\0" * 512)
        try:
            with Buffer(path, max_bytes=1 << 28, clock=ManualClock()) as buf:
                ok = buf.integrity_check() == ["ok"]
                seq = buf.append([Record(seq=UNNUMBERED, kind="reading", time=T0, channel="x")])[0]
                cut_fail += 0 if ok and seq > top else 1
        except Exception:
            cut_fail += 1
    figures["power_cuts"] = len(cuts)
    return {
        "name": "kill -9 during an accelerated storm, broker outages, power cuts",
        "what": f"storm-5y-2h at {SPEED:.0f}x; random SIGKILL of the agent, the controller "
        "process and the broker (then restarted), the buffer copied as it lies at random "
        "moments (every second copy with a torn WAL page)",
        "kills_agent": kills["agent"],
        "kills_controller": kills["controller"],
        "kills_broker (outages)": kills["broker"],
        "readings promised by the station": len(promised),
        "readings stored by the fleet": len(stored & promised),
        "readings_lost": len(promised - stored),
        "readings_duplicated": int(dup),
        "rows still unsynced at the end": unsynced,
        "power cuts copied": len(cuts),
        "power cuts failing integrity or reusing a seq": cut_fail,
    }


def phase_disk_full(work: Path, figures: dict[str, Any]) -> dict[str, Any]:
    card = work / "card"
    card.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(card)]
    mounted = subprocess.run(mount, capture_output=True).returncode == 0
    clock = ManualClock(T0)
    out: dict[str, Any] = {}
    crashes = 0

    def feed(buf: Buffer, count: int, tag: str) -> tuple[int, int]:
        nonlocal crashes
        refused = events = 0
        for i in range(count):
            clock.advance(1)
            recs = [Record(seq=UNNUMBERED, kind="reading", time=clock.now(), channel="rain_total",
                                 value=float(i), raw="x" * 200)]  # fmt: skip
            if i % 100 == 0:
                recs.append(
                    Record(seq=UNNUMBERED, kind="event", time=clock.now(), payload={tag: i})
                )
            try:
                buf.append(recs)
                events += len(recs) - 1
            except BufferStoreError:
                refused += 1
            except Exception:
                crashes += 1
        return refused, events

    try:
        # 1. the buffer's own cap on a small card: routine rows make room, events stay
        with Buffer(card / "capped.db", max_bytes=600_000, clock=clock) as buf:
            refused, events = feed(buf, 20_000, "cap")
            out["cap: 20,000 readings into a 600 kB cap, bytes used at the end"] = buf.stats().bytes
            out["cap: events appended / kept"] = (
                f"{events} / {len(buf.where('kind = ' + repr('event')))}"
            )
            out["cap: gap rows (buffer_full)"] = sum(
                1 for g in buf.gaps() if g.reason == "buffer_full"
            )
            out["cap: writes refused"] = refused
        # 2. the card itself fills up (another program's files): writes are refused, nothing
        #    crashes; once space is back, writing resumes and the outage is a gap row
        for f in card.glob("capped.db*"):
            f.unlink()
        with Buffer(card / "buffer.db", max_bytes=2_000_000, clock=clock) as buf:
            feed(buf, 50, "before")
            ballast = card / "ballast"
            with open(ballast, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            refused, _ = feed(buf, 2_000, "full")
            ballast.unlink()
            again, events_after = feed(buf, 200, "after")
            out["full card: writes refused while full (BufferStoreError)"] = refused
            out["full card: writes refused after space came back"] = again
            out["full card: storage_unavailable gap rows"] = sum(
                1 for g in buf.gaps() if g.reason == "storage_unavailable"
            )
            out["full card: events after recovery kept"] = events_after
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(card)], check=False)
    figures["crashes"] = figures.get("crashes", 0) + crashes
    return {
        "name": "disk full on a small filesystem",
        "what": "a real 8 MiB tmpfs"
        + ("" if mounted else " (NOT mounted: not root here; a plain directory instead)")
        + ": first the buffer's own cap, then the card filled by another file",
        "real small filesystem": mounted,
        **out,
        "crashes": crashes,
    }


def _mutate(rng: random.Random, good: bytes) -> bytes:
    b = bytearray(good)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6:
            b = b[: rng.randrange(len(b) + 1)]
        elif op < 0.8:
            b[rng.randrange(len(b) + 1) : 0] = bytes(rng.randrange(256) for _ in range(8))
        else:
            b = bytearray(rng.randbytes(rng.randrange(1, 300)))
    return bytes(b)


def phase_fuzz(figures: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(2026)
    crashes: dict[str, int] = {"serial": 0, "mqtt": 0}
    outcomes = {"flagged": 0, "refused": 0, "accepted": 0}
    good_ws = encode("Q,036,002.57,M,00,")
    good_wxt = b"0R1,Dn=236D,Dm=283D,Dx=031D,Sn=0.0M,Sm=1.0M,Sx=2.2M\r\n"
    good_rtu = rtu_frame(1, b"\x03\x04\x00\x64\x00\xc8")
    frames = n(FULL["serial_fuzz"], 1000)
    for i in range(frames):
        kind = i % 3
        try:
            if kind == 0:
                for framed in FrameReader().feed(_mutate(rng, good_ws)):
                    if framed.status.name != "OK":
                        outcomes["flagged"] += 1
                        continue
                    try:
                        decode(framed.body)
                        outcomes["accepted"] += 1
                    except DeviceError:
                        outcomes["flagged"] += 1
            elif kind == 1:
                try:
                    parse_answer(_mutate(rng, good_wxt), "0", "R1")
                    outcomes["accepted"] += 1
                except DeviceError:
                    outcomes["flagged"] += 1
            else:
                frame = _mutate(rng, good_rtu)
                rtu_reply_size(frame)
                outcomes["accepted" if rtu_frame_ok(frame) else "refused"] += 1
        except Exception:
            crashes["serial"] += 1
    good_batch = wire.encode_batch(wire.Batch("st-1", "live", tuple(readings(1, 20, T0))))
    payloads = n(FULL["mqtt_fuzz"], 500)
    mq = {"refused": 0, "accepted": 0}
    bombs = [
        zstandard.ZstdCompressor().compress(b'{"pad":"' + b"a" * (50 << 20) + b'"}'),
        b"[" * 100_000,
        b'{"c":"1.0","st":"st-1","lane":"live","rows":[' + b"[]," * 300_000 + b"[]]}",
    ]
    for i in range(payloads):
        data = bombs[i % 3] if i % 500 == 0 else _mutate(rng, good_batch)
        try:
            wire.decode_batch(data)
            mq["accepted"] += 1
        except wire.WireError:
            mq["refused"] += 1
        except Exception:
            crashes["mqtt"] += 1
    figures["fuzz_cases"] = frames + payloads
    figures["crashes"] = figures.get("crashes", 0) + crashes["serial"] + crashes["mqtt"]
    return {
        "name": "fuzzed serial/Modbus frames and MQTT payloads",
        "what": "mutations (bit flips, cuts, insertions, random bytes) of a WindSonic frame, a WXT "
        "answer and a Modbus RTU reply; of a valid uplink batch, plus decompression and "
        "nesting bombs",
        "serial frames": frames,
        "serial flagged / refused / accepted": f"{outcomes['flagged']} / {outcomes['refused']} / "
        f"{outcomes['accepted']}",
        "serial crashes": crashes["serial"],
        "MQTT payloads": payloads,
        "MQTT refused / accepted": f"{mq['refused']} / {mq['accepted']}",
        "MQTT crashes": crashes["mqtt"],
    }


class Probe:
    def __init__(self, broker: MosquittoBroker, identity: str, client_id: str) -> None:
        self.c = wire.new_client(broker.settings(identity), client_id)
        self.up = threading.Event()
        self.codes: list[Any] = []
        self.pub: dict[int, Any] = {}
        self.c.on_connect = lambda *a: self.up.set()
        self.c.on_subscribe = lambda c, u, m, codes, p: self.codes.extend(codes)
        self.c.on_publish = lambda c, u, mid, rc, p: self.pub.__setitem__(mid, rc)
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        assert self.up.wait(10)

    def wait(self, cond: Any) -> None:
        deadline = time.monotonic() + 10
        while not cond() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def phase_attacks(work: Path, figures: dict[str, Any]) -> dict[str, Any]:
    pki = TestPKI(work / "pki-attacks")
    tried = refused = 0
    rows: dict[str, str] = {}
    with MosquittoBroker(work / "broker-attacks", pki) as broker:
        store = open_store(f"sqlite:///{work / 'attacks.db'}")
        key = signing.generate_key()
        ctl = FleetService(store, SystemClock(), broker.settings(CONTROLLER_IDENTITY), key,
                           tick_s=0.2, client_id=CONTROLLER_IDENTITY)  # fmt: skip
        ctl.start()
        drops: list[Any] = []
        ctl.client.on_disconnect = lambda *a: drops.append(a)
        a = Probe(broker, "st-a", "st-a")
        for topic in (wire.FLEET_UPLINK_SUBSCRIPTION, "$share/x/roadside/v1/st/+/up/#",
                      wire.down_topic("st-b", "config"), "roadside/v1/st/+/down/#", "#",
                      "$SYS/#", "$CONTROL/dynamic-security/v1"):  # fmt: skip
            k = len(a.codes)
            a.c.subscribe(topic, qos=1)
            a.wait(lambda k=k: len(a.codes) > k)
            tried += 1
            refused += int(bool(a.codes[k:]) and a.codes[k].is_failure)
        rows["subscriptions outside own topics"] = f"{tried} tried, {refused} refused"
        t0 = tried
        for topic in (wire.up_topic("st-b", "data"), wire.down_topic("st-a", "ack"),
                      wire.FLEET_CONFIG_TOPIC):  # fmt: skip
            info = a.c.publish(topic, b"{}", qos=1)
            a.wait(lambda info=info: info.mid in a.pub)
            tried += 1
            refused += int(info.mid in a.pub and a.pub[info.mid].is_failure)
        rows["cross-station publishes"] = f"{tried - t0} tried"
        for victim in (CONTROLLER_IDENTITY, "st-b"):
            p = Probe(broker, "st-a", victim)
            time.sleep(0.5)
            tried += 1
            refused += int(not drops)
            p.close()
        rows["client-id takeovers"] = "2 tried"
        a.close()
        # documents against the station's real handler
        base: dict[str, Any] = {"station": {"id": "st-a"}}
        import tomllib

        example = Path(__file__).resolve().parents[2] / "agent" / "examples" / "sim-station.toml"
        base = tomllib.loads(example.read_text())
        sid = base["station"]["id"]
        rc = RemoteConfig(sid, base, key.public_key(), work / "remote.json", ManualClock(),
                          base_dir=example.parent)  # fmt: skip
        topic = wire.down_topic(sid, "config")

        def d(v: int, body: dict[str, Any]) -> dict[str, Any]:
            return {"c": "1.0", "scope": "station", "target": sid, "version": v,
                    "issued": T0.isoformat(), "body": body}  # fmt: skip

        ok = signing.encode_envelope(signing.sign(d(2, {"sampling": {"hold_s": 600}}), key))
        assert rc.handle(topic, ok).ok  # type: ignore[union-attr]
        other = signing.generate_key()
        docs = {
            "forged": signing.encode_envelope(signing.sign(d(3, {"sampling": {}}), other)),
            "old": signing.encode_envelope(signing.sign(d(1, {"sampling": {}}), key)),
            "oversized": signing.encode_envelope(
                signing.sign(d(4, {"qc": {"x": "y" * 600_000}}), key)
            ),
            "unsafe": signing.encode_envelope(signing.sign(d(5, {"warnings": {"rainstorm": {
                "levels": {"blue": {"rain_1h": 5000}, "red": {"rain_1h": 9000}}}}}), key)),
            "deep": b'{"doc":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        }  # fmt: skip
        for payload in docs.values():
            ack = rc.handle(topic, payload)
            tried += 1
            refused += int(ack is not None and not ack.ok)
        rows["documents (forged, old, oversized, unsafe, deep)"] = f"{len(docs)} tried"
        # the API, unauthenticated and through DNS rebinding
        api = TestClient(
            create_app(store, ctl.config, auth=Auth(store)), base_url="http://127.0.0.1"
        )
        for resp in (
            api.post("/config/documents", json={"scope": "fleet", "body": {"qc": {}}}),
            api.get("/stations", headers={"Host": "evil.example"}),
            api.get("/readings"),
        ):
            tried += 1
            refused += int(resp.status_code in (401, 403, 421))
        rows["API without credentials / foreign Host"] = "3 tried"
        ctl.stop()
        store.close()
    figures["attacks_tried"] = tried
    figures["attacks_refused"] = refused
    return {"name": "attacks on the broker, the station's documents and the API",
            "what": "as station st-a on the same broker; documents signed with another key, "
            "replayed, too large, unsafe, nested 100,000 deep", **rows,
            "attacks tried": tried, "attacks refused": refused}  # fmt: skip


def phase_memory(work: Path, figures: dict[str, Any], plots: list[str]) -> dict[str, Any]:
    rig = Rig(work / "memory")
    seconds = max(60.0, FULL["memory_hours"] * 3600 / SPEED * SCALE)
    samples: list[tuple[float, float]] = []
    try:
        rig.start_ctl()
        rig.start_agent()
        assert rig.agent is not None
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            time.sleep(2.0)
            if rig.agent.poll() is not None:
                break
            samples.append(((time.monotonic() - start) * SPEED / 3600, rss_mb(rig.agent.pid)))
    finally:
        rig.stop()
    warm = [v for t, v in samples if t >= samples[-1][0] * 0.2] if samples else [0.0]
    growth = max(0.0, statistics.median(warm[-5:]) - statistics.median(warm[:5]))
    figures["rss_growth_mb"] = round(growth, 2)
    plots.append(svg_plot(samples, "agent RSS (MB) over simulated hours", "sim h", "MB"))
    return {
        "name": "memory soak of the agent (accelerated)",
        "what": f"the agent against the simulated station at {SPEED:.0f}x, with uplink, "
        f"{seconds:.0f} s real = {seconds * SPEED / 3600:.1f} simulated hours "
        f"(full: {FULL['memory_hours']:.0f} h)",
        "simulated hours": round(seconds * SPEED / 3600, 2),
        "RSS after warm-up (MB)": round(statistics.median(warm[:5]), 1),
        "RSS at the end (MB)": round(statistics.median(warm[-5:]), 1),
        "rss_growth_mb": round(growth, 2),
    }


def phase_scale(work: Path, figures: dict[str, Any], plots: list[str]) -> dict[str, Any]:
    count = n(FULL["stations"] * 0.2, 50)  # TLS clients with a thread each, on two shared cores
    schema = f"soak_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    pki = TestPKI(work / "pki-scale")
    ids = [f"st-{i:05d}" for i in range(count)]
    key = signing.generate_key()
    with MosquittoBroker(work / "broker-scale", pki) as broker:
        broker.register(*ids, f"{CONTROLLER_IDENTITY}-1", f"{CONTROLLER_IDENTITY}-2")
        store = open_store(url)
        ctls = [FleetService(store, SystemClock(), broker.settings(f"{CONTROLLER_IDENTITY}-{i}"),
                             key, tick_s=1.0, client_id=f"{CONTROLLER_IDENTITY}-{i}")
                for i in (1, 2)]  # fmt: skip
        for c in ctls:
            c.start()
        stations = [StationClient(broker.settings(s), s, ack_timeout_s=30.0,
                                  public_key=key.public_key()) for s in ids]  # fmt: skip
        for st in stations:
            st.connect_async()
        assert all(st.wait_ready(120) for st in stations)
        per, batches = 50, 4
        started = time.monotonic()
        for b in range(batches):
            for st in stations:
                st.send(readings(1 + b * per, per, T0))
        drained = all(st.drain(300) for st in stations)
        elapsed = time.monotonic() - started
        rows = sum(c.worker.stats.snapshot()["inserted"] for c in ctls)
        shares = [c.worker.stats.snapshot()["inserted"] for c in ctls]
        assert ctls[0].config is not None
        pushed = time.monotonic()
        ctls[0].config.push("fleet", {"sampling": {"hold_s": 900}})
        deadline = time.monotonic() + 120
        answered: list[float] = []
        while time.monotonic() < deadline:
            answered = [st.answers[-1].received for st in stations if st.answers]
            if len(answered) == len(stations):
                break
            time.sleep(0.2)
        fanout = (max(answered) - pushed) if len(answered) == len(stations) else float("nan")
        for st in stations:
            st.stop()
        for c in ctls:
            c.stop()
        store.close()
    admin.execute(f"DROP SCHEMA {schema} CASCADE")
    admin.close()
    figures["stations"] = count
    figures["ingest_per_s"] = round(rows / elapsed, 1)
    return {
        "name": "simulated stations against two controllers on PostgreSQL",
        "what": f"{count} stations (full: {FULL['stations']}), each {batches} batches of {per} "
        "readings at once, two controller services (FleetService instances in one process, "
        "two MQTT sessions with their own certificates) sharing the subscription",
        "stations": count,
        "rows committed": rows,
        "all acked": drained,
        "seconds to commit and ack everything (lag of the last batch)": round(elapsed, 1),
        "ingest_per_s": round(rows / elapsed, 1),
        "share per controller": shares,
        "configuration fan-out to every station (s)": round(fanout, 2),
    }


@pytest.mark.timeout(4 * 3600)
def test_proving_ground(tmp_path: Path) -> None:
    figures: dict[str, Any] = {"crashes": 0}
    plots: list[str] = []
    phases = []
    t = time.monotonic()
    phases.append(phase_kills(tmp_path / "kills", figures, plots))
    phases.append(phase_disk_full(tmp_path, figures))
    phases.append(phase_fuzz(figures))
    phases.append(phase_attacks(tmp_path, figures))
    phases.append(phase_memory(tmp_path, figures, plots))
    phases.append(phase_scale(tmp_path, figures, plots))
    passed = (
        figures["readings_lost"] == 0
        and figures["readings_duplicated"] == 0
        and figures["crashes"] == 0
        and figures["attacks_refused"] == figures["attacks_tried"]
        and figures["rss_growth_mb"] < 5
    )
    summary = {
        **figures,
        "scale": SCALE,
        "passed": passed,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - t, 1),
    }
    notes = [
        f"Counts are {SCALE:g} of the issue's full ones (SOAK_SCALE); the full run "
        f"(SOAK_SCALE=1) did not fit the time this was built in.",
        "Simulated stations are fleet.loadgen clients (real TLS, real MQTT, the wire "
        "contract), each with its own network thread: on a shared 2-core machine the station "
        "count is 0.2 x scale of 10,000.",
        "Broker outages are SIGKILL of Mosquitto and a restart (persistent sessions).",
        "readings_lost compares every reading seq the station's buffer committed with the "
        "fleet store after the last drain; readings_duplicated counts the same (channel, time) "
        "stored twice.",
    ]
    write_report(OUT, summary, phases, plots, notes)
    assert passed, summary
