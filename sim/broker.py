"""A real Mosquitto on a free loopback port, configured exactly as ``fleet/mosquitto/``.

Used by tests, the demo and benchmarks::

    pki = TestPKI(tmp / "pki")
    with MosquittoBroker(tmp / "broker", pki) as broker:
        files = pki.client("st-001")            # ClientFiles(ca, cert, key)
        broker.settings("st-001")               # roadside.wire.BrokerSettings for that identity
        broker.restart()                        # same port, same persistence
        broker.kill()                           # SIGKILL, no save

The configuration is ``fleet/mosquitto/mosquitto.conf.template`` rendered with this port, the
test CA's files and the shipped ``dynamic-security.json`` roles; nothing about the broker is faked.
Every client identity the test CA hands out is registered with the broker's dynamic-security
plugin as provisioning would do it (:func:`client_commands`): a station gets a role with its own
topics, ``fleet-controller`` and ``fleet-controller-*`` the controller role. For a demo:
``python -m sim.broker DIR [--port N]`` runs one in the foreground.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import click

from fleet.broker_admin import (  # noqa: F401  (re-exported for tests and benches)
    CONTROL_TOPIC,
    SERVICE_ROLES,
    BrokerAdmin,
    client_commands,
    is_controller,
    station_role,
)
from roadside.wire import BrokerSettings
from sim.pki import TestPKI

DEPLOY_DIR = Path(str(resources.files("fleet") / "mosquitto"))  # package data, in the wheel
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
ADMIN_IDENTITY = "broker-admin"


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process (thread) that started it dies, so a killed
    test run leaves no broker behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback), below the kernel's ephemeral range.

    A port the kernel handed out (``bind(0)``) can be taken again before a server started later
    binds it, by any outgoing connection's source port; one outside that range only by another
    server picking the same one."""
    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # every one tried is taken: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render_config(
    workdir: Path, pki: TestPKI, port: int, *, bind: str = "127.0.0.1", deploy: Path = DEPLOY_DIR
) -> Path:
    """Write mosquitto.conf (and copy the ACL) into ``workdir``; return the config path."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    dynsec = workdir / "dynamic-security.json"
    if not dynsec.exists():  # the plugin keeps its own changes here across restarts
        base = json.loads((deploy / "dynamic-security.json").read_text())
        _apply(base, [c for i in (ADMIN_IDENTITY, *pki.identities()) for c in client_commands(i)])
        dynsec.write_text(json.dumps(base, indent=1))
        dynsec.chmod(0o600)
    pki.client(ADMIN_IDENTITY)
    server = pki.server("localhost")
    text = Template((deploy / "mosquitto.conf.template").read_text()).substitute(
        data_dir=data,
        log_dest=f"file {workdir / 'mosquitto.log'}",
        port=port,
        bind=bind,
        cafile=server.ca,
        crlfile=pki.crl(),
        certfile=server.cert,
        keyfile=server.key,
        dynsec_plugin=DYNSEC_PLUGIN,
        dynsec_file=dynsec,
        run_as=pwd.getpwuid(os.getuid()).pw_name,  # our own files stay readable
    )
    conf = workdir / "mosquitto.conf"
    conf.write_text(text)
    return conf


def _apply(doc: dict[str, list[dict[str, Any]]], commands: list[dict[str, Any]]) -> None:
    """Apply createRole/createClient commands to a dynamic-security file's
    content (what the plugin does with them when it runs)."""
    roles = {r["rolename"] for r in doc["roles"]}
    clients = {x["username"] for x in doc["clients"]}
    for c in commands:
        body = {k: v for k, v in c.items() if k != "command"}
        if c["command"] == "createRole":
            if body["rolename"] not in roles:
                roles.add(body["rolename"])
                doc["roles"].append(body)
        elif c["command"] == "createClient":
            if body["username"] not in clients:
                clients.add(body["username"])
                doc["clients"].append(body)
        else:
            raise ValueError(f"dynamic-security command {c['command']!r} not applied offline")


class MosquittoBroker:
    """One mosquitto process; ``start``/``stop``/``restart``/``kill`` keep port and data."""

    def __init__(self, workdir: Path, pki: TestPKI, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.pki = pki
        self.port = port or free_port()
        self.conf = render_config(self.workdir, pki, self.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self._registered: set[str] = set(pki.identities())
        self._reg_lock = threading.Lock()
        ref = weakref.WeakMethod(self.register)

        def listener(identity: str) -> None:
            method = ref()
            if method is not None:
                method(identity)

        pki.listeners.append(listener)

    def register(self, *identities: str) -> None:
        """Register client identities with the broker (at its next start, or now through
        ``$CONTROL`` when it runs), as provisioning does for a new station."""
        with self._reg_lock:
            new = [i for i in dict.fromkeys(identities) if i not in self._registered]
            if not new:
                return
            self._registered.update(new)
            commands = [c for i in new for c in client_commands(i)]
            if not self.running:
                path = self.workdir / "dynamic-security.json"
                with contextlib.suppress(OSError):  # a broker long gone (its directory too)
                    doc = json.loads(path.read_text())
                    _apply(doc, commands)
                    path.write_text(json.dumps(doc, indent=1))
                return
            for i in range(0, len(commands), 400):  # well under the packet limit
                self._control(commands[i : i + 400])

    def _control(self, commands: list[dict[str, Any]]) -> None:
        """Send dynamic-security commands as the admin client (the production path,
        :class:`fleet.broker_admin.BrokerAdmin`) and check every answer."""
        files = self.pki._issue(ADMIN_IDENTITY, server=False)
        settings = BrokerSettings("127.0.0.1", self.port, files.ca, files.cert, files.key)
        BrokerAdmin(settings, timeout_s=30).send(commands)

    @property
    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def settings(self, identity: str, **kw: object) -> BrokerSettings:
        """Connection settings for a client presenting ``identity``'s certificate (registered
        with the broker)."""
        files = self.pki.client(identity)
        self.register(identity)
        return BrokerSettings(
            host="127.0.0.1",
            port=self.port,
            ca=files.ca,
            cert=files.cert,
            key=files.key,
            **kw,  # type: ignore[arg-type]
        )

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts TCP connections."""
        if self.running:
            return
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {err}{self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved beyond the last autosave."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@click.command("run-test-broker")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", type=int, default=0, help="Listen port (default: a free one).")
def main(directory: Path, port: int) -> None:
    """Run Mosquitto with the shipped configuration and a test CA under DIRECTORY until Ctrl-C.

    Prints the port and the CA path as JSON; client certificates: python -m sim.pki.
    """
    pki = TestPKI(directory / "pki")
    broker = MosquittoBroker(directory / "broker", pki, port or None)
    broker.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the broker on SIGTERM too
    click.echo(json.dumps({"host": "127.0.0.1", "port": broker.port, "ca": str(pki.ca)}))
    try:
        while broker.running:
            time.sleep(0.5)
        raise click.ClickException(f"mosquitto exited; see {broker.workdir / 'mosquitto.log'}")
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
