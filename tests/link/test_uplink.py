"""The uplink over a real Mosquitto: order, lanes, acknowledgement, reconnection, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from link_helpers import T0, event, new_buffer, readings

from agent.uplink import Backoff, Uplink, UplinkSettings, drain
from roadside import wire
from roadside.clock import ScaledClock, SystemClock
from roadside.contract import UNNUMBERED, Record
from roadside.testing.sink import CommittingSink
from sim.broker import MosquittoBroker, free_port
from sim.pki import CONTROLLER_IDENTITY, TestPKI

FAST = UplinkSettings(
    backoff_initial_s=0.05, backoff_max_s=0.5, idle_poll_s=0.05, ack_timeout_s=1.0
)
ST = "st-001"


def test_backoff_grows_with_jitter_and_resets() -> None:
    import random

    b = Backoff(1.0, 60.0, random.Random(7))
    delays = [b.next() for _ in range(10)]
    for n, d in enumerate(delays):
        ceiling = min(60.0, 2.0**n)
        assert ceiling / 2 <= d <= ceiling
    assert len({round(d, 6) for d in delays[6:]}) > 1  # capped, but still jittered
    b.reset()
    assert b.next() <= 1.0


def test_drain_in_sequence_order_events_first_synced_only_after_ack(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(3000))
    buf.append([event(T0), event(T0, "yellow")])
    buf.append(readings(1000))
    total = buf.stats().unsynced
    settings = replace(FAST, batch_size=400)
    with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=settings) as up:
        assert drain(buf, 20)
        status = up.status()
    assert sink.seqs(ST) == list(range(1, total + 1))  # nothing missing, nothing extra
    deliveries = sink.deliveries(ST)
    assert deliveries[0][0] == "event"  # warnings went first although they were appended later
    for lane in ("backlog", "live", "event"):
        # each lane in sequence order; a batch resent after its ack timeout (a slow sink on a
        # loaded machine) arrives again later, so the order is that of first arrivals
        firsts = list(dict.fromkeys(d[1] for d in deliveries if d[0] == lane))
        assert firsts == sorted(firsts), (lane, deliveries)
    assert all(d[3] <= 400 for d in deliveries)
    assert status.records_acked == total and status.inflight_batches == 0
    # the retained status message told the controller who is speaking and which contracts
    assert sink.statuses[ST].contracts == wire.SUPPORTED_CONTRACTS
    # a clean stop leaves the retained status saying offline (the will covers a crash)
    assert sink.wait_for(lambda: sink.statuses[ST].state == "offline", 5)
    assert sink.statuses[ST].backlog == 0


def test_rows_stay_unsynced_without_an_ack_and_are_resent(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """A controller that receives but never commits: nothing may be marked synced."""
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(300))
    got: list[bytes] = []
    mute = wire.new_client(broker.settings(f"{CONTROLLER_IDENTITY}-mute"), "mute-controller")
    mute.on_message = lambda c, u, m: got.append(m.payload)
    mute.connect("127.0.0.1", broker.port)
    mute.subscribe(wire.FLEET_UPLINK_SUBSCRIPTION, qos=1)
    mute.loop_start()
    try:
        settings = replace(FAST, batch_size=100, ack_timeout_s=0.3)
        with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=settings) as up:
            deadline = time.monotonic() + 10
            while up.status().batches_resent < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert up.status().batches_resent >= 3
            assert buf.stats().unsynced == 300
        assert len(got) >= 6  # three batches, then resent
    finally:
        mute.loop_stop()
        mute.disconnect()
    # a committing controller comes along: the same rows drain
    with (
        CommittingSink(broker.settings(CONTROLLER_IDENTITY), tmp_path / "s.db") as sink,
        Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=FAST),
    ):
        assert drain(buf, 10)
        assert sink.seqs(ST) == list(range(1, 301))


def test_broker_down_at_start_then_up(tmp_path: Path, pki: TestPKI) -> None:
    broker = MosquittoBroker(tmp_path / "broker", pki)  # configured, not started
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(500))
    up = Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=FAST)
    up.start()
    try:
        time.sleep(0.6)
        assert not up.status().connected
        assert "connect to 127.0.0.1" in up.status().last_error
        assert buf.stats().unsynced == 500
        broker.start()
        with CommittingSink(broker.settings(CONTROLLER_IDENTITY), tmp_path / "s.db") as sink:
            assert drain(buf, 15)
            assert sink.seqs(ST) == list(range(1, 501))
    finally:
        up.stop()
        broker.stop()


def test_broker_refusing_the_certificate_is_retried_and_reported(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    foreign = broker.pki.foreign_client(ST)
    settings = wire.BrokerSettings(
        "127.0.0.1", broker.port, broker.pki.ca, foreign.cert, foreign.key
    )
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(10))
    with Uplink(ST, buf, settings, SystemClock(), settings=FAST) as up:
        time.sleep(0.8)
        status = up.status()
    assert not status.connected and status.batches_sent == 0
    assert "connect to 127.0.0.1" in status.last_error
    assert buf.stats().unsynced == 10


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(3000))
    settings = replace(FAST, batch_size=50, window=2)
    with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=settings) as up:
        assert sink.wait_for(lambda: sink.count(ST) >= 300, 10)
        broker.restart()
        # more data arrives while the link is down or reconnecting
        buf.append(readings(600, start=T0.replace(day=22)))
        up.notify()
        assert drain(buf, 40)
        assert up.status().reconnects >= 1
    assert sink.seqs(ST) == list(range(1, 3601))


def test_live_data_overtakes_metered_backlog(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(3000))
    rate = 4000.0  # bytes per second for backfill
    settings = replace(
        FAST,
        batch_size=100,
        backfill_bytes_per_s=rate,
        backfill_burst_s=0.5,
        codec="json+zstd",  # batches large enough that the budget, not the backlog, runs out
    )
    with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=settings) as up:
        assert sink.wait_for(lambda: sink.count(ST) > 0, 10)
        started = time.monotonic()
        live = buf.append(readings(5, start=T0.replace(day=22)))
        up.notify()
        assert sink.wait_for(lambda: set(live) <= set(sink.seqs(ST)), 5)
        backlog_done = sink.count(ST) - len(live)
        assert backlog_done < 3000  # the backlog was still draining when live data got through
        time.sleep(1.5)
        elapsed = time.monotonic() - started
        backlog_bytes = sum(d[5] for d in sink.deliveries(ST) if d[0] == "backlog")
    # within the budget: the burst, what the rate allows since the start, and one batch of debt
    batch_bytes = max(d[5] for d in sink.deliveries(ST))
    assert backlog_bytes <= rate * 0.5 + rate * (elapsed + 1.0) + batch_bytes
    assert backlog_bytes >= rate * elapsed * 0.5  # and the budget is used, not starved


def _uplink_cmd(broker: MosquittoBroker, buf: Path, *extra: str) -> list[str]:
    files = broker.pki.client(ST)
    return [
        sys.executable,
        "-m",
        "agent.uplink",
        "--station",
        ST,
        "--buffer",
        str(buf),
        "--port",
        str(broker.port),
        "--ca",
        str(files.ca),
        "--cert",
        str(files.cert),
        "--key",
        str(files.key),
        *extra,
    ]


def test_kill_9_during_sync_loses_nothing(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    path = tmp_path / "buf.db"
    buf = new_buffer(path)
    buf.append(readings(8000))
    buf.close()
    proc = subprocess.Popen(
        _uplink_cmd(broker, path, "--batch-size", "40", "--window", "2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert sink.wait_for(lambda: sink.count(ST) >= 1000, 20)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # the broker saw the connection die: the last will marks the station offline
    assert sink.wait_for(lambda: sink.statuses.get(ST) and sink.statuses[ST].state == "offline", 5)
    buf = new_buffer(path)
    synced = {r.seq for r in buf.where("synced = 1")}
    stored = set(sink.seqs(ST))
    assert synced and synced <= stored  # nothing marked synced that the controller lacks
    # the unclean stop left one seq_skipped gap row (its numbers are never reused)
    assert [g.reason for g in buf.gaps()] == ["seq_skipped"]
    assert buf.stats().unsynced == 8000 - len(synced) + 1
    buf.close()
    # the restarted uplink finishes the job
    done = subprocess.run(
        _uplink_cmd(broker, path, "--until-drained", "--timeout", "30"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert sink.seqs(ST)[:8000] == list(range(1, 8001)) and len(sink.seqs(ST)) == 8001


def test_controller_refusal_keeps_rows_and_names_the_reason(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    """A batch in a contract major the controller does not speak is nacked, not stored."""
    acks: list[wire.Ack] = []
    c = wire.new_client(broker.settings(ST), ST)
    c.on_message = lambda cl, u, m: acks.append(wire.decode_ack(m.payload))
    c.connect("127.0.0.1", broker.port)
    c.subscribe(wire.down_topic(ST, "ack"), qos=1)
    c.loop_start()
    try:
        time.sleep(0.3)
        future = wire.Batch(ST, "live", tuple(), contract="2.0")
        c.publish(wire.up_topic(ST, "data"), wire.encode_batch(future), qos=1)
        deadline = time.monotonic() + 5
        while not acks and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        c.loop_stop()
        c.disconnect()
    assert acks and "2.0 refused: this side speaks 1.0" in acks[0].error
    assert sink.count(ST) == 0
    assert mqtt.MQTTv5 == c.protocol


@pytest.mark.slow
def test_station_offline_for_a_simulated_day_drains_in_order_without_gaps(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    """10 channels every simulated minute for a day with the station's link down (the path to
    the broker goes through a TCP relay that is only started after the day), then it drains."""
    speed = 28_800.0  # a day in three real seconds
    clock = ScaledClock(T0, speed=speed)
    buf = new_buffer(tmp_path / "buf.db", clock)
    settings = UplinkSettings(
        backoff_initial_s=60.0,
        backoff_max_s=1800.0,
        idle_poll_s=120.0,
        ack_timeout_s=5.0 * speed,
        batch_size=500,
    )
    link_port = free_port()
    stop = threading.Event()

    def produce() -> None:  # ten channels a simulated minute; minutes due are stored together
        minute = 0
        while not stop.is_set():
            now = clock.now()
            rows = []
            while T0 + timedelta(minutes=minute) <= now:
                t = T0 + timedelta(minutes=minute)
                rows += [
                    Record(
                        seq=UNNUMBERED,
                        kind="reading",
                        time=t,
                        sensor="st",
                        channel=f"ch{c}",
                        value=float(minute),
                        unit="mm",
                    )
                    for c in range(10)
                ]
                minute += 1
            buf.append(rows)
            up.notify()
            clock.sleep(60)

    up = Uplink(ST, buf, replace(broker.settings(ST), port=link_port), clock, settings=settings)
    producer = threading.Thread(target=produce)
    up.start()
    producer.start()
    relay = None
    try:
        deadline = time.monotonic() + 30
        while buf.stats().last_seq < 14_400 and time.monotonic() < deadline:
            time.sleep(0.05)  # a day of readings (the producer may lag on a busy machine)
        stats = buf.stats()
        assert not up.status().connected and stats.unsynced == stats.last_seq >= 14_400
        relay = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{link_port},bind=127.0.0.1,reuseaddr,fork",
                f"TCP:127.0.0.1:{broker.port}",
            ],
        )
        time.sleep(1.0)  # the station keeps measuring while it catches up
        stop.set()
        producer.join()
        assert drain(buf, 30)
        total = buf.stats().last_seq
        assert total >= 14_400
        assert sink.seqs(ST) == list(range(1, total + 1))  # no gaps, each once
        deliveries = sink.deliveries(ST)
        backlog = [d for d in deliveries if d[0] == "backlog"]
        assert [d[1] for d in backlog] == sorted(d[1] for d in backlog)  # in sequence order
        assert sum(d[3] for d in deliveries) == total  # no batch had to be sent twice
        assert any(d[0] == "live" for d in deliveries)
    finally:
        stop.set()
        up.stop()
        if relay is not None:
            relay.terminate()
            relay.wait()


def test_large_event_payloads_are_split_under_the_packet_limit(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    import os as _os

    from agent.uplink import MAX_BATCH_BYTES

    buf = new_buffer(tmp_path / "buf.db")
    noise = [_os.urandom(60_000).hex() for _ in range(5)]  # 120 kB each, about half that after zstd
    buf.append(
        [Record(seq=UNNUMBERED, kind="event", time=T0, payload={"evidence": n}) for n in noise]
    )
    with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=FAST):
        assert drain(buf, 15)
    assert sink.seqs(ST) == [1, 2, 3, 4, 5]
    sizes = [d[5] for d in sink.deliveries(ST)]
    assert sum(sizes) > MAX_BATCH_BYTES >= max(sizes)  # one batch would have been too big


def test_uplink_command_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agent.uplink import main

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    common = ["--buffer", str(tmp_path / "b.db"), "--port", "1"]
    tls = ["--ca", str(junk), "--cert", str(junk), "--key", str(junk)]
    bad_id = CliRunner().invoke(main, ["--station", "a/b", *common, *tls])
    assert bad_id.exit_code == 1 and "station id 'a/b'" in bad_id.output
    bad_tls = CliRunner().invoke(main, ["--station", "st-1", *common, *tls])
    assert bad_tls.exit_code == 1 and bad_tls.output.startswith("Error: TLS files")
    assert "Traceback" not in bad_id.output + bad_tls.output


def test_a_warning_does_not_wait_behind_a_full_window_of_backlog(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """The controller is slow to ack (here: never); an event still goes out at once."""
    lanes: list[str] = []
    subscribed = threading.Event()
    mute = wire.new_client(broker.settings(f"{CONTROLLER_IDENTITY}-mute"), "mute-controller")
    mute.on_message = lambda c, u, m: lanes.append(wire.decode_batch(m.payload).lane)
    mute.on_subscribe = lambda *a: subscribed.set()
    mute.connect("127.0.0.1", broker.port)
    mute.subscribe(f"{wire.PREFIX}/st/+/up/data", qos=1)
    mute.subscribe(f"{wire.PREFIX}/st/+/up/events", qos=1)
    mute.loop_start()
    assert subscribed.wait(5)
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(2000))
    settings = replace(FAST, batch_size=100, window=3, ack_timeout_s=60.0)
    try:
        with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=settings) as up:
            deadline = time.monotonic() + 5
            while len(lanes) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)
            assert lanes == ["backlog"] * 3  # the window is full, nothing acked
            buf.append([event(T0, "orange")])
            up.notify()
            deadline = time.monotonic() + 5
            while "event" not in lanes and time.monotonic() < deadline:
                time.sleep(0.02)
            assert lanes[3:] == ["event"]
    finally:
        mute.loop_stop()
        mute.disconnect()


def test_batches_the_broker_delivered_to_nobody_go_again_in_order(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    """After a broker restart the station may be back before the controller: the broker answers
    its first batches "no matching subscribers" and drops them. Those go again, and every later
    batch of the lane after them, so the controller still gets the lane in sequence order."""
    buf = new_buffer(tmp_path / "buf.db")
    buf.append(readings(1200))
    settings = replace(FAST, batch_size=100, backfill_bytes_per_s=1500.0, backfill_burst_s=0.1)
    sink = CommittingSink(broker.settings(CONTROLLER_IDENTITY), tmp_path / "sink.db")
    with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=settings) as up:
        deadline = time.monotonic() + 20
        while up.status().batches_sent < 2:  # metered backlog: a batch now and then, unheard
            assert time.monotonic() < deadline, "no backlog batch sent"
            time.sleep(0.02)
        sink.start()  # the controller is back
        try:
            assert drain(buf, 60)
            unheard = up.status().batches_unheard
            deliveries = sink.deliveries(ST)
            assert sink.seqs(ST) == list(range(1, 1201))
        finally:
            sink.stop()
    firsts = list(dict.fromkeys(d[1] for d in deliveries if d[0] == "backlog"))
    assert firsts == sorted(firsts), firsts
    assert unheard >= 1


def test_held_live_rows_go_at_their_deadline_a_full_batch_or_behind_a_warning(
    tmp_path: Path, broker: MosquittoBroker, sink: CommittingSink
) -> None:
    """With ``live_linger_s`` a commit of routine rows does not wake the worker (one wake-up a
    commit cost a station at 100 ms polls as much as sending); a warning event still goes at
    once, and a full batch goes without waiting for the deadline."""
    buf = new_buffer(tmp_path / "buf.db")
    settings = replace(FAST, live_linger_s=3600.0, idle_poll_s=3600.0, batch_size=100)
    with Uplink(ST, buf, broker.settings(ST), SystemClock(), settings=settings) as up:
        assert sink.wait_for(lambda: ST in sink.statuses, 10)
        held = buf.append(readings(10, start=T0.replace(day=22)))
        up.notify(urgent=False)  # not holding yet: it looks, and starts holding
        assert sink.wait_for(lambda: up._full_at is not None, 10)
        held += buf.append(readings(10, start=T0.replace(day=23)))
        up.notify(urgent=False)  # held rows, no full batch: the worker sleeps on
        warning = buf.append([event(T0.replace(day=23))])
        up.notify()  # urgent: a warning event
        assert sink.wait_for(lambda: set(warning) <= set(sink.seqs(ST)), 10)
        assert not set(held) & set(sink.seqs(ST))  # the routine rows are still held
        full = buf.append(readings(100, start=T0.replace(day=24)))
        up.notify(urgent=False)  # a full batch is waiting: wake and send
        assert sink.wait_for(lambda: set(held) <= set(sink.seqs(ST)), 10)
    assert set(full[:80]) <= set(sink.seqs(ST))  # the first batch: held rows and the new ones


def test_a_routine_commit_does_not_wake_a_worker_holding_live_rows(
    tmp_path: Path, pki: TestPKI
) -> None:
    """The decision of :meth:`Uplink.notify`, on an uplink whose worker is not running (so
    nothing consumes a wake-up before it is looked at)."""
    buf = new_buffer(tmp_path / "buf.db")
    files = pki.client(ST)
    where = wire.BrokerSettings("127.0.0.1", free_port(), files.ca, files.cert, files.key)
    settings = replace(FAST, live_linger_s=60.0, batch_size=100)
    clock = SystemClock()
    up = Uplink(ST, buf, where, clock, settings=settings)
    buf.append(readings(10))
    now = clock.monotonic()
    assert up._holding(0, now)  # ten rows of a hundred: held for a minute
    up.notify(urgent=False)
    assert not up._wake.is_set()
    up.notify()  # a warning event in the commit
    assert up._wake.is_set()
    up._wake.clear()
    buf.append(readings(90))  # a batch is full
    up.notify(urgent=False)
    assert up._wake.is_set()
    up._wake.clear()
    assert not up._holding(0, now + 61.0)  # past the deadline: nothing is held any more
    up.notify(urgent=False)
    assert up._wake.is_set()
