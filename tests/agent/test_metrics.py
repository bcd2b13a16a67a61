"""The agent's Prometheus endpoint: scrapes answered, no wake-ups between scrapes, a clean stop."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from agent.metrics import AgentMetrics
from sim.broker import free_port


def _switches(thread: threading.Thread) -> int:
    """Voluntary context switches of ``thread`` so far (each wake-up from a sleep is one)."""
    status = f"/proc/self/task/{thread.native_id}/status"
    with open(status) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt"))


def _settled(thread: threading.Thread, timeout_s: float = 30.0) -> int:
    """The switch count once it holds still over 0.2 s (the thread is back asleep)."""
    deadline = time.monotonic() + timeout_s
    last = _switches(thread)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = _switches(thread)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the endpoint thread never went back to sleep ({last} switches)")


def test_scrapes_are_answered_and_close_releases_the_port() -> None:
    metrics, port = AgentMetrics(), free_port()
    metrics.polls.labels("rain").inc(3)
    metrics.serve(port)
    url = f"http://127.0.0.1:{port}/metrics"
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: httpx.get(url, timeout=5).text, range(8)))
    assert all('roadside_polls_total{device="rain"} 3.0' in b for b in bodies)
    thread = metrics._thread
    assert thread is not None
    metrics.close()
    assert not thread.is_alive()
    with socket.socket() as again:  # the listening socket is closed: a restart can listen
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        again.bind(("127.0.0.1", port))
        again.listen()
    metrics.close()  # a second close is harmless


def test_the_endpoint_thread_sleeps_until_a_scrape() -> None:
    """prometheus-client's own server thread wakes every 0.5 s to look for a shutdown request."""
    metrics, port = AgentMetrics(), free_port()
    metrics.serve(port)
    try:
        thread = metrics._thread
        assert thread is not None
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        with open(f"/proc/self/task/{thread.native_id}/comm") as f:
            assert f.read().strip() == "metrics"  # its name in top -H
        before = _settled(thread)  # the scrape's hand-over to its handler thread is over
        time.sleep(1.2)  # the measurement itself: over two of prometheus-client's wake-ups
        assert _switches(thread) == before
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert _switches(thread) > before
    finally:
        metrics.close()
