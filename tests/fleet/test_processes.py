"""`roadside-fleet run` as real processes: two share the subscription; kill -9 loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from fleet.cli import main
from fleet.loadgen import StationClient, readings
from fleet.store import Store
from roadside import signing
from sim.broker import MosquittoBroker, free_port
from sim.pki import CONTROLLER_IDENTITY

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.slow

Spawn = Callable[[str], tuple[subprocess.Popen[bytes], str]]


@pytest.fixture
def spawn(broker: MosquittoBroker, store_url: str, tmp_path: Path, fleet_key) -> Iterator[Spawn]:
    """Start `python -m fleet run` with a client id; returns the process and its API base URL."""
    procs: list[subprocess.Popen[bytes]] = []
    key_file = tmp_path / "fleet-signing.key"
    signing.save_private_key(fleet_key, key_file)

    def start(client_id: str) -> tuple[subprocess.Popen[bytes], str]:
        # each process its own certificate: the broker makes the CN the client id
        files = broker.pki.client(f"{CONTROLLER_IDENTITY}-{client_id}")
        port = free_port()
        log = open(tmp_path / f"{client_id}-{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "fleet", "run",
                "--db", store_url,
                "--broker", f"127.0.0.1:{broker.port}",
                "--ca", str(files.ca), "--cert", str(files.cert), "--key", str(files.key),
                "--client-id", client_id, "--signing-key", str(key_file), "--tick-s", "0.2",
                "--http", f"127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / f"{client_id}-{len(procs) - 1}.log").read_text()
            try:
                if httpx.get(f"{base}/livez", timeout=1).json()["broker_connected"]:
                    return proc, base
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{client_id} did not come up")

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _stations(broker: MosquittoBroker, n: int, key=None) -> list[StationClient]:
    return [
        StationClient(
            broker.settings(f"st-{i:03d}"),
            f"st-{i:03d}",
            ack_timeout_s=1.0,
            public_key=key.public_key() if key else None,
        ).start()
        for i in range(n)
    ]


def test_two_controllers_share_the_subscription_and_together_get_everything(
    spawn: Spawn,
    broker: MosquittoBroker,
    store: Store,
    store_url: str,
    fleet_key,
    wait_for,
    tmp_path: Path,
) -> None:
    (_, api1), (_, api2) = spawn("ctl-1"), spawn("ctl-2")
    stations = _stations(broker, 4, fleet_key)
    try:
        for i in range(15):
            for st in stations:
                st.send(readings(1 + 20 * i, 20, T0))
        assert all(st.drain(30) for st in stations)
        # a threshold change pushed through one process's API; its acks land in either
        # process, and the other process's API shows every station in sync
        body = tmp_path / "thresholds.json"
        body.write_text(json.dumps({"warnings": {"hold_s": 1500}}))
        # unauthenticated, the real process refuses the push and stores nothing
        anonymous = httpx.post(f"{api1}/config/documents", json={"scope": "fleet", "body": {}})
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
        assert store.documents() == []
        runner = CliRunner()
        added = runner.invoke(main, ["user", "add", "ops", "--role", "operator", "--no-password",
                                     "--db", store_url])  # fmt: skip
        assert added.exit_code == 0, added.output
        token = runner.invoke(main, ["token", "create", "ops", "--db", store_url]).output.strip()
        viewer = {"Authorization": f"Bearer {token}"}
        pushed = runner.invoke(
            main, ["push", "fleet", str(body), "--api", api1], env={"ROADSIDE_TOKEN": token}
        )
        assert pushed.exit_code == 0, pushed.output
        assert pushed.output.startswith("fleet version 1 pushed")
        refused = runner.invoke(
            main, ["push", "region:x", str(body), "--api", api1, "--token", token]
        )
        assert refused.exit_code == 1 and "expected fleet, grid:<cell>" in refused.output
        wait_for(
            lambda: all(
                s["in_sync"] for s in httpx.get(f"{api2}/config/status", headers=viewer).json()
            ),
            what="every station in sync",
        )
        scopes = httpx.get(f"{api2}/stations/st-002/config", headers=viewer).json()["scopes"]
        assert scopes[0]["desired_version"] == scopes[0]["reported_version"] == 1
    finally:
        for st in stations:
            st.stop()
    got = [httpx.get(f"{api}/health", headers=viewer).json()["ingest"] for api in (api1, api2)]
    assert got[0]["batches"] > 0 and got[1]["batches"] > 0, got  # each got a share
    assert got[0]["inserted"] + got[1]["inserted"] == 4 * 15 * 20  # together: all, once
    for st in stations:
        assert store.seqs(st.station) == list(range(1, 301))
    # the registry is shared: either process's API shows every station
    assert len(httpx.get(f"{api1}/stations", headers=viewer).json()) == 4
    spec = httpx.get(f"{api2}/openapi.json").json()
    assert {"/stations", "/readings", "/config/status", "/rollouts"} <= set(spec["paths"])


def test_kill_9_of_the_controller_mid_stream_loses_nothing(
    spawn: Spawn, broker: MosquittoBroker, store: Store
) -> None:
    proc, _ = spawn("ctl-1")
    (station,) = _stations(broker, 1)
    try:
        for i in range(20):
            station.send(readings(1 + 10 * i, 10, T0))
            if i == 8:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        spawn("ctl-1")
        assert station.drain(30), f"{station.unacked()} batches never acked"
    finally:
        station.stop()
    assert store.seqs("st-000") == list(range(1, 201))
