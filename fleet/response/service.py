"""The response chain assembled: register, engine, warnings, outbox, drills, a worker thread.

resp = Response(store, SystemClock(), load_config(path))
resp.start()        # engine + outbox worker every poll_s
resp.publish(msg_id, by="alice")
resp.stop()         # finishes and records the batch in flight
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fleet.response import cap
from fleet.response.alerts import Alerts
from fleet.response.channels import Channel, FeedChannel, build_channel
from fleet.response.config import ResponseConfig
from fleet.response.db import ResponseDB
from fleet.response.drills import Drills
from fleet.response.engine import Engine
from fleet.response.errors import ChannelError, ResponseError
from fleet.response.feed import FeedItem, render_feed
from fleet.response.field import Field
from fleet.response.grid import Grid
from fleet.response.outbox import Outbox
from fleet.response.partners import Partners
from fleet.store import Store
from roadside.clock import Clock

log = logging.getLogger(__name__)


class Response:
    """Everything of the response chain over one fleet store."""

    def __init__(self, store: Store, clock: Clock, config: ResponseConfig | None = None) -> None:
        self.config = config or ResponseConfig()
        self.clock = clock
        self.db = ResponseDB(store)
        self.grid = Grid(self.db)
        self.alerts = Alerts(self.db, self.grid, self.config)
        channels: dict[str, Channel] = {}
        for spec in self.config.channels:
            ch = build_channel(spec)
            if ch.name in channels:
                raise ChannelError(f"channel {ch.name}: configured twice")
            if isinstance(ch, FeedChannel):
                ch.source = self.feed
            channels[ch.name] = ch
        self.outbox = Outbox(self.db, self.grid, self.config, channels)
        self.engine = Engine(self.db, self.grid, self.alerts, self.config)
        self.drills = Drills(self.db, self.alerts, self.outbox)
        self.field = Field(self.db, self.grid, self.engine)
        self.partners = Partners(self.db)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.clock.now().timestamp()

    # -- publication ------------------------------------------------------------------------------
    def publish(self, key: str, by: str) -> dict[str, Any]:
        """One click: link-test the mode's channels, then publish and queue every delivery."""
        m = self.alerts.get(key)
        mode = "drill" if m["status"] == "Exercise" else "live"
        if self.config.require_channels and not self.outbox.in_mode(mode):
            raise ChannelError(
                f"no {mode} channel is configured in this process, so nothing would be delivered "
                "(configure [response] channels; the API reads ROADSIDE_RESPONSE_CONFIG)"
            )
        tests: list[dict[str, Any]] = []
        if self.config.link_test_before_publish and m["state"] == "approved":
            tests = self.outbox.link_test(mode, self.now())
            if tests and not any(t["ok"] for t in tests):
                raise ChannelError(
                    f"no {mode} channel passed its link test: "
                    + "; ".join(t["detail"] for t in tests)
                )
        published = self.alerts.publish(key, by, self.now(), self.outbox.plan)
        return {"message": published, "link_tests": tests}

    def feed(self, mode: str = "live") -> bytes:
        """The CAP Atom feed of a mode (live: Actual, drill: Exercise)."""
        items = []
        msgs = self.alerts.list("published")
        ended: dict[str, float] = {}
        for m in msgs:
            if m["msg_type"] == "Cancel":
                ended[m["chain"]] = min(ended.get(m["chain"], m["published"]), m["published"])
        for m in msgs:
            f = cap.fields(m["xml"].encode())
            items.append(
                FeedItem(
                    m["identifier"],
                    m["status"],
                    m["msg_type"],
                    m["published"],
                    m["expires"],
                    f["headline"] or "",
                    f"{m['msg_type']}: {f['headline']}",
                    ended.get(m["chain"]),
                )
            )
        return render_feed(items, mode=mode, base_url=self.config.base_url, now=self.now())

    def after_action(self, cell: str, start: float, end: float) -> dict[str, Any]:
        """The after-action report of one cell over ``[start, end)``."""
        from fleet.response.afteraction import after_action

        return after_action(self.grid, self.alerts, self.outbox, self.field, cell, start, end)

    # -- the worker -------------------------------------------------------------------------------
    def tick(self) -> int:
        """One round: take in station events, send due deliveries."""
        with self._lock:
            now = self.now()
            try:
                self.engine.poll(now)
            except ResponseError as exc:
                log.error("engine: %s", exc)
            return self.outbox.run_once(now)

    def start(self) -> None:
        self.outbox.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="response", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.tick()
            except Exception:  # keep the worker alive; the next round retries
                log.exception("response worker round failed")
                busy = 0
            if not busy:
                self.clock.wait(self._stop, self.config.poll_s)

    def stop(self) -> None:
        """Stop after the batch in flight is sent and recorded."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.outbox.close()
