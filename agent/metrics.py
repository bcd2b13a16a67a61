"""Prometheus metrics of one agent, served on a local port (prometheus-client).

Each :class:`AgentMetrics` owns its own registry, so two agents in one process (tests, benches)
do not collide. The endpoint's thread sleeps until a scrape or :meth:`AgentMetrics.close` wakes
it (prometheus-client's own server thread wakes twice a second to look for a shutdown request,
about a fifth of the agent's idle CPU on a virtual machine). The runner counts polls, errors
and QC flags as batches pass; buffer depth, bytes and the oldest unsynced age are refreshed
from :class:`~agent.buffer.BufferStats`.
"""

from __future__ import annotations

import selectors
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from agent.buffer import BufferStats
from roadside.threads import name_os_thread


class AgentMetrics:
    """The agent's counters and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None  # (read end, write end)
        r = self.registry
        self.polls = Counter(
            "roadside_polls", "Device polls (batches) processed", ["device"], registry=r
        )
        self.errors = Counter(
            "roadside_poll_errors",
            "Readings without a value, by driver status",
            ["device", "status"],
            registry=r,
        )
        self.readings = Counter("roadside_readings", "Readings processed", ["device"], registry=r)
        self.flags = Counter("roadside_qc_flags", "QC flags given", ["channel", "flag"], registry=r)
        self.events = Counter(
            "roadside_warning_events", "Warning events raised", ["signal"], registry=r
        )
        self.buffer_unsynced = Gauge(
            "roadside_buffer_unsynced_records", "Records waiting for the fleet", registry=r
        )
        self.buffer_rows = Gauge(
            "roadside_buffer_records", "Records held in the buffer", registry=r
        )
        self.buffer_bytes = Gauge("roadside_buffer_bytes", "Bytes of the buffer in use", registry=r)
        self.oldest_unsynced = Gauge(
            "roadside_buffer_oldest_unsynced_age_seconds",
            "Age of the oldest record not yet confirmed by the fleet",
            registry=r,
        )
        self.last_seq = Gauge("roadside_buffer_last_seq", "Last sequence number", registry=r)
        self.loop_lag = Gauge(
            "roadside_loop_lag_seconds",
            "How late the main loop ran against its schedule",
            registry=r,
        )
        self.device_up = Gauge(
            "roadside_device_up", "1 when the device's last poll succeeded", ["device"], registry=r
        )
        self.degraded = Gauge(
            "roadside_degraded", "1 while the buffer refuses writes (records held)", registry=r
        )
        self.write_errors = Counter(
            "roadside_buffer_write_errors", "Buffer writes that failed", registry=r
        )
        self.config = Info("roadside_config", "Configuration the agent runs", registry=r)

    def buffer(self, stats: BufferStats) -> None:
        """Refresh the buffer gauges."""
        self.buffer_unsynced.set(stats.unsynced)
        self.buffer_rows.set(stats.rows)
        self.buffer_bytes.set(stats.bytes)
        self.oldest_unsynced.set(stats.oldest_unsynced_age_s or 0.0)
        self.last_seq.set(stats.last_seq)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Start the HTTP endpoint in a daemon thread (port 0: do nothing)."""
        if not port:
            return
        family, _, _, _, where = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
        app = make_wsgi_app(self.registry)
        httpd: WSGIServer = make_server(
            str(where[0]), port, app, server_class, handler_class=_Quiet
        )
        httpd.timeout = 0  # handle_request is called only when a connection waits
        self._server, self._wake = httpd, socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Answer scrapes until :meth:`close` writes to the wake-up socket."""
        assert self._server is not None and self._wake is not None
        name_os_thread("metrics")
        httpd, wake = self._server, self._wake[0]
        with selectors.DefaultSelector() as sel:
            sel.register(httpd, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is wake:
                        return
                    httpd.handle_request()

    def close(self) -> None:
        """Stop the HTTP endpoint if it runs."""
        if self._server is None or self._wake is None:
            return
        self._wake[1].send(b"x")
        if self._thread is not None:
            self._thread.join(5.0)
        self._server.server_close()
        for end in self._wake:
            end.close()
        self._server = self._thread = self._wake = None


class _Quiet(WSGIRequestHandler):
    """A request handler that logs nothing (scrapes every 15 s would fill the journal)."""

    def log_message(self, format: str, *args: object) -> None:
        pass
