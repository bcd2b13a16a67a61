"""Many simulated stations on few threads: each its own TLS connection, certificate and MQTT
session (a :class:`fleet.loadgen.StationClient`), their network I/O driven by a handful of
selector loops instead of a thread per station (paho's external-loop interface: ``loop_read``,
``loop_write``, ``loop_misc``). What is shared is only the load generator's threads; the broker
and the controllers see 10,000 separate clients."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from fleet.loadgen import StationClient
from roadside import wire


class _Loop(threading.Thread):
    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.clients: list[mqtt.Client] = []
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)  # the loop wakes itself too (PUBACKs it queues)
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        self.lock = threading.Lock()
        self.pending: set[mqtt.Client] = set()
        self.new: list[mqtt.Client] = []
        self.stop = threading.Event()

    def want_write(self, client: mqtt.Client, *_: Any) -> None:
        with self.lock:
            self.pending.add(client)
        if threading.current_thread() is not self:  # the loop itself writes before it selects
            with contextlib.suppress(BlockingIOError, OSError):
                self.wake_w.send(b"x")

    def add(self, client: mqtt.Client) -> None:
        with self.lock:
            self.new.append(client)
            self.pending.add(client)
        with contextlib.suppress(BlockingIOError, OSError):
            self.wake_w.send(b"x")

    def run(self) -> None:
        misc_at = time.monotonic() + 1.0
        while not self.stop.is_set():
            with self.lock:
                for c in self.new:
                    sock = c.socket()
                    if sock is not None:
                        self.sel.register(sock, selectors.EVENT_READ, c)
                        self.clients.append(c)
                self.new.clear()
                busy = bool(self.pending)
            for key, _ in self.sel.select(0.005 if busy else 0.2):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self.wake_r.recv(65536)
                    continue
                c = key.data
                c.loop_read(100)
                sock = c.socket()
                while sock is not None and getattr(sock, "pending", lambda: 0)() > 0:
                    c.loop_read(100)
                if c.want_write():
                    with self.lock:
                        self.pending.add(c)
            with self.lock:
                todo, self.pending = self.pending, set()
            for c in todo:
                c.loop_write()
                if c.want_write():
                    with self.lock:
                        self.pending.add(c)
            if time.monotonic() >= misc_at:
                misc_at = time.monotonic() + 1.0
                for c in self.clients:
                    c.loop_misc()


class StationPool:
    """``stations`` connected over ``threads`` selector loops (plus ``threads`` connecting)."""

    def __init__(self, stations: Sequence[StationClient], threads: int = 4) -> None:
        self.stations = list(stations)
        self.loops = [_Loop(f"pool-{i}") for i in range(threads)]
        for i, st in enumerate(self.stations):
            loop = self.loops[i % threads]
            st.client.on_socket_register_write = loop.want_write
        for loop in self.loops:
            loop.start()

    def connect(self, threads: int = 4) -> float:
        """Connect every station (TLS handshake, CONNECT): seconds it took to send them all."""
        started = time.monotonic()
        errors: list[str] = []

        def work(part: list[tuple[int, StationClient]]) -> None:
            for i, st in part:
                s = st.settings
                try:
                    st.client.connect(
                        s.host, s.port, keepalive=s.keepalive, clean_start=False,
                        properties=wire.connect_properties(s),
                    )  # fmt: skip
                except OSError as exc:
                    errors.append(f"{st.station}: {exc}")
                    continue
                sock = st.client.socket()
                if sock is not None:  # paho leaves it blocking: one full buffer would stall
                    sock.setblocking(False)  # a loop (and with it its share of stations)
                self.loops[i % len(self.loops)].add(st.client)

        items = list(enumerate(self.stations))
        workers = [
            threading.Thread(target=work, args=(items[k::threads],), daemon=True)
            for k in range(threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise RuntimeError(f"{len(errors)} stations could not connect: {errors[:3]}")
        return time.monotonic() - started

    def stop(self) -> None:
        for st in self.stations:
            with contextlib.suppress(Exception):
                st.client.disconnect()
        time.sleep(0.5)
        for loop in self.loops:
            loop.stop.set()
        for loop in self.loops:
            loop.join(5)
        for st in self.stations:
            sock = st.client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
