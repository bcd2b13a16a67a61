"""Real receivers on loopback for the response chain's tests, benchmark and demo.

- :class:`SmtpSink`: an aiosmtpd SMTP server keeping every message.
- :class:`WebhookReceiver`: an HTTP server that verifies Standard Webhooks signatures with the
  ``standardwebhooks`` library (the other side's own code, not ours), takes each ``webhook-id``
  once and answers a configurable number of failures first.
- :class:`SmsGateway`: an HTTP server standing in for the operator's SMS gateway.
- :class:`MqttSubscriber`: a client of the real broker on ``roadside/v1/alerts/#``.

Each records ``(time.time(), item)`` pairs so a benchmark can time the last delivery.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from sim.broker import free_port

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtcmVzcG9uc2UtdGVzdHM="
"""A test-only Standard Webhooks secret."""


class SmtpSink:
    """An SMTP server on 127.0.0.1 (aiosmtpd); ``messages`` holds (time, EmailMessage)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[float, EmailMessage]] = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                sink.messages.append((time.time(), msg))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for _, m in self.messages if m["To"] == address]


class _Http:
    def __init__(self, handle: Callable[[BaseHTTPRequestHandler, bytes], tuple[int, bytes]]):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bytes) -> None:
                status, out = handle(self, body)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                self._answer(self.rfile.read(n))

            def do_GET(self) -> None:
                self._answer(b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        outer._thread = self._thread

    def start(self) -> Any:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookReceiver(_Http):
    """Verifies each request with ``standardwebhooks.Webhook(secret).verify``: 401 if forged or
    stale (its timestamp tolerance); a known ``webhook-id`` is answered 200 but not taken twice;
    ``fail_first`` answers 503 that many times before accepting."""

    def __init__(self, secret: str, fail_first: int = 0) -> None:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        self.secret = secret
        self.accepted: list[tuple[float, str, dict[str, Any]]] = []  # (time, path, payload)
        self.refused: list[tuple[int, str]] = []
        self.duplicates: list[str] = []
        self.fail_first = fail_first
        seen: set[str] = set()
        lock = threading.Lock()
        hook = Webhook(secret)

        def handle(req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
            headers = {k.lower(): v for k, v in req.headers.items()}
            try:
                payload = hook.verify(body, headers)
            except WebhookVerificationError as exc:
                self.refused.append((401, str(exc)))
                return 401, b'{"error": "bad signature"}'
            with lock:
                if self.fail_first > 0:
                    self.fail_first -= 1
                    self.refused.append((503, "asked to fail"))
                    return 503, b'{"error": "try later"}'
                ident = headers["webhook-id"]
                if ident in seen:  # a resend of a delivery already taken: accepted, not doubled
                    self.duplicates.append(ident)
                    return 200, b'{"ok": true, "duplicate": true}'
                seen.add(ident)
                self.accepted.append((time.time(), req.path, payload))
            return 200, b'{"ok": true}'

        super().__init__(handle)

    def alerts(self) -> list[dict[str, Any]]:
        return [p for _, _, p in self.accepted if p.get("type", "").startswith("cap.")]


class SmsGateway(_Http):
    """Accepts ``{to, text, ref}`` POSTs; ``sent`` holds (time, payload)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, dict[str, Any]]] = []

        def handle(req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
            if req.command == "GET":
                return 200, b'{"status": "up"}'
            self.sent.append((time.time(), json.loads(body)))
            return 202, b'{"queued": true}'

        super().__init__(handle)

    def to(self, number: str) -> list[dict[str, Any]]:
        return [p for _, p in self.sent if p["to"] == number]


class MqttSubscriber:
    """Subscribes to ``topic`` on the real broker with ``identity``'s certificate."""

    def __init__(
        self, broker: Any, identity: str = "ops-platform", topic: str = "roadside/v1/alerts/#"
    ) -> None:
        from roadside import wire

        self.messages: list[tuple[float, str, bytes]] = []
        self._subscribed = threading.Event()
        settings = broker.settings(identity)
        self.client = wire.new_client(settings, f"{identity}-{free_port()}")
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (time.time(), m.topic, bytes(m.payload))
        )
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self.client.connect(settings.host, settings.port)
        self.client.loop_start()
        if not self._subscribed.wait(15):
            raise RuntimeError(f"{identity} could not subscribe to {topic}")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def channel_specs(rx: dict[str, Any], broker: Any, feed_dir: Path) -> list[dict[str, Any]]:
    """Every channel kind, live, plus drill e-mail, MQTT and feed."""
    files = broker.pki.client("fleet-response")
    mqtt = {
        "kind": "mqtt",
        "host": "127.0.0.1",
        "port": broker.port,
        "ca": str(files.ca),
        "cert": str(files.cert),
        "key": str(files.key),
    }
    hook = rx["webhook"].url
    return [
        {"name": "ops-mqtt", "mode": "live", "topic": "roadside/v1/alerts/cap", **mqtt},
        {
            "name": "hooks",
            "kind": "webhook",
            "mode": "live",
            "secret": WEBHOOK_SECRET,
            "targets": [f"{hook}/partner/drainage"],
            "endpoints": {f"unit-{n:03d}": f"{hook}/unit/{n:03d}" for n in range(1, 13)},
        },
        {
            "name": "mail",
            "kind": "email",
            "mode": "live",
            "host": "127.0.0.1",
            "port": rx["smtp"].port,
            "sender": "warnings@district.example",
        },
        {"name": "sms", "kind": "sms", "mode": "live", "url": f"{rx['sms'].url}/send"},
        {"name": "feed", "kind": "feed", "mode": "live", "path": str(feed_dir / "feed.atom")},
        {
            "name": "drill-mail",
            "kind": "email",
            "mode": "drill",
            "host": "127.0.0.1",
            "port": rx["smtp_drill"].port,
            "sender": "drill@district.example",
        },
        {"name": "drill-mqtt", "mode": "drill", "topic": "roadside/v1/alerts/drill", **mqtt},
        {
            "name": "drill-feed",
            "kind": "feed",
            "mode": "drill",
            "path": str(feed_dir / "feed-drill.atom"),
        },
    ]


def send_waterlogging_event(station: Any, seq: int, colour: str, previous: str = "none") -> float:
    """Send, as ``station`` (a :class:`fleet.loadgen.StationClient`), the agent's own event
    record for a waterlogging signal on the event lane; returns the sending time (epoch s)."""
    from datetime import UTC, datetime

    from agent.pipeline import event_record
    from agent.warnings import WarningEvent
    from roadside import wire

    kind: Literal["raise", "upgrade", "cancel"] = (
        "raise" if previous == "none" else ("cancel" if colour == "none" else "upgrade")
    )
    now = datetime.now(UTC)
    event = WarningEvent(
        kind,
        "waterlogging",
        colour,
        previous,
        now,
        "water_depth",
        {"rule": "water_depth", "water_depth": 180.0},
    )
    rec = event_record(event)
    record = wire.WireRecord(
        seq,
        "event",
        rec.time,
        "",
        rec.channel or "",
        rec.value,
        "",
        None,
        "",
        None,
        rec.reason or "",
        rec.payload,
    )
    station.send([record], lane="event")
    return now.timestamp()


def signing_pair(cn: str) -> tuple[bytes, bytes]:
    """A throw-away RSA key and self-signed certificate (PEM) for XML signatures in tests."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, cert.public_bytes(serialization.Encoding.PEM)
