"""Delivery channels: one class per kind, each a registry entry (:data:`KINDS`).

Every channel has a ``name``, a ``mode`` (``live`` or ``drill``) and the kind's options. The base
class enforces drill separation in :meth:`Channel.deliver` itself, for every kind: an Exercise
message never leaves through a live channel and a live message never through a drill channel; any
other status (Test, System, Draft) leaves through none. Each delivery carries its outbox id as an
idempotency key (webhook-id, Message-ID, an MQTT user property, the SMS ``ref``) so a receiver can
drop the one resend a crash between sending and recording can cause.

Kinds and options:

- ``mqtt``: host, port, ca, cert, key, topic, client_id; broadcast to ``topic``, unit contacts
  to ``topic/unit/<address>``. QoS 1, waits for the broker's PUBACK.
- ``webhook``: secret (``whsec_<base64>``), targets (broadcast URLs), endpoints (name -> URL for
  unit contacts), timeout_s. Signed as Standard Webhooks: ``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>``.
- ``email``: host, port, sender, starttls, username, password, lists (broadcast addresses).
- ``sms``: url of the operator's HTTP gateway (JSON ``{to, text, ref}``), token, status_url.
- ``feed``: path of the CAP Atom feed file (see :mod:`fleet.response.feed`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import smtplib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, ClassVar

import httpx

from fleet.response.errors import ChannelError, DrillViolation

MODES = ("live", "drill")


@dataclass(frozen=True)
class Delivery:
    """One message to one target through one channel."""

    id: str  # outbox row id: the idempotency key
    identifier: str
    status: str
    msg_type: str
    xml: bytes
    headline_zh: str
    headline_en: str
    address: str  # a unit contact's address, or the broadcast target
    unit: str | None = None
    ack_url: str | None = None

    def text(self) -> str:
        lines = [self.headline_zh, self.headline_en, f"CAP {self.identifier} ({self.msg_type})"]
        if self.ack_url:
            lines.append(f"确认收到 / acknowledge: {self.ack_url}")
        return "\n".join(lines)


class Channel:
    """Base of every channel kind."""

    kind: ClassVar[str] = ""
    contact_kind: ClassVar[str | None] = None  # the register's contact channel it serves

    def __init__(self, name: str, mode: str, options: Mapping[str, Any]) -> None:
        if mode not in MODES:
            raise ChannelError(f"channel {name}: mode {mode!r} is not live or drill")
        self.name = name
        self.mode = mode
        self.options = dict(options)

    def _opt(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        if required and key not in self.options:
            raise ChannelError(f"channel {self.name}: option {key!r} is missing")
        return self.options.get(key, default)

    @property
    def broadcast(self) -> tuple[str, ...]:
        """Targets that get every message published in this channel's mode."""
        return ()

    def deliver(self, d: Delivery) -> str:
        """Check drill separation, then send; returns a receipt line. Raises ChannelError."""
        if d.status not in ("Actual", "Exercise"):
            raise DrillViolation(f"channel {self.name}: status {d.status} is never sent")
        if (d.status == "Exercise") != (self.mode == "drill"):
            raise DrillViolation(
                f"channel {self.name} ({self.mode}) refuses a message with status {d.status}"
            )
        return self.send(d)

    def send(self, d: Delivery) -> str:
        raise NotImplementedError

    def link_test(self) -> str:
        """Check the route end to end without sending an alert; raise ChannelError if broken."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


KINDS: dict[str, type[Channel]] = {}


def register(cls: type[Channel]) -> type[Channel]:
    KINDS[cls.kind] = cls
    return cls


def build_channel(spec: Mapping[str, Any]) -> Channel:
    """A channel from its configuration table (name, kind, mode, options)."""
    opts = dict(spec)
    name, kind = str(opts.pop("name")), str(opts.pop("kind"))
    mode = str(opts.pop("mode", "live"))
    cls = KINDS.get(kind)
    if cls is None:
        raise ChannelError(f"channel {name}: kind {kind!r} is not one of {', '.join(KINDS)}")
    return cls(name, mode, opts)


@register
class MqttChannel(Channel):
    kind = "mqtt"
    contact_kind = "mqtt"

    def __init__(self, name: str, mode: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, mode, options)
        self.topic = str(self._opt("topic", required=True))
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def broadcast(self) -> tuple[str, ...]:
        return (self.topic,)

    def _connected(self) -> Any:
        from roadside import wire

        if self._client is not None and self._client.is_connected():
            return self._client
        settings = wire.BrokerSettings(
            str(self._opt("host", "127.0.0.1")),
            int(self._opt("port", 8883)),
            Path(self._opt("ca", required=True)),
            Path(self._opt("cert", required=True)),
            Path(self._opt("key", required=True)),
        )
        client = wire.new_client(settings, str(self._opt("client_id", f"response-{self.name}")))
        try:
            client.connect(settings.host, settings.port, keepalive=30)
        except OSError as exc:
            raise ChannelError(
                f"channel {self.name}: {settings.host}:{settings.port}: {exc}"
            ) from None
        client.loop_start()
        deadline = time.monotonic() + 10
        while not client.is_connected():
            if time.monotonic() > deadline:
                client.loop_stop()
                raise ChannelError(f"channel {self.name}: broker did not accept the connection")
            time.sleep(0.02)
        if self._client is not None:
            self._client.loop_stop()
        self._client = client
        return client

    def _publish(self, topic: str, payload: bytes, ident: str) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("delivery-id", ident)]
        props.ContentType = "application/cap+xml"
        with self._lock:
            client = self._connected()
        info = client.publish(topic, payload, qos=1, properties=props)
        try:
            info.wait_for_publish(timeout=15)
        except (RuntimeError, ValueError) as exc:
            raise ChannelError(f"channel {self.name}: publish to {topic} failed: {exc}") from None
        if not info.is_published():
            raise ChannelError(f"channel {self.name}: no PUBACK for {topic} within 15 s")

    def send(self, d: Delivery) -> str:
        topic = self.topic if d.unit is None else f"{self.topic}/unit/{d.address}"
        self._publish(topic, d.xml, d.id)
        return f"published {topic}"

    def link_test(self) -> str:
        self._publish(f"{self.topic}/linktest", b"link test", "linktest")
        return f"PUBACK from {self._opt('host', '127.0.0.1')}:{self._opt('port', 8883)}"

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


def webhook_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks ``v1,<base64 HMAC-SHA256>`` over ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@register
class WebhookChannel(Channel):
    kind = "webhook"
    contact_kind = "webhook"

    def __init__(self, name: str, mode: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, mode, options)
        self.secret = str(self._opt("secret", required=True))
        try:
            base64.b64decode(self.secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            raise ChannelError(f"channel {name}: secret is not whsec_<base64>") from None
        self.targets = tuple(self._opt("targets", ()))
        self.endpoints = dict(self._opt("endpoints", {}))
        self._http = httpx.Client(timeout=float(self._opt("timeout_s", 10.0)))

    @property
    def broadcast(self) -> tuple[str, ...]:
        return self.targets

    def _url(self, address: str) -> str:
        if address.startswith(("http://", "https://")):
            return address
        if address not in self.endpoints:
            raise ChannelError(f"channel {self.name}: no endpoint for {address!r}")
        return str(self.endpoints[address])

    def _post(self, url: str, ident: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload, ensure_ascii=False).encode()
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": ident,
            "webhook-timestamp": str(ts),
            "webhook-signature": webhook_signature(self.secret, ident, ts, body),
        }
        try:
            resp = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(f"channel {self.name}: {url}: {exc}") from None
        if resp.status_code >= 300:
            raise ChannelError(f"channel {self.name}: {url} answered {resp.status_code}")
        return resp

    def send(self, d: Delivery) -> str:
        url = self._url(d.address)
        payload = {
            "type": f"cap.{d.msg_type.lower()}",
            "identifier": d.identifier,
            "status": d.status,
            "unit": d.unit,
            "ack_url": d.ack_url,
            "headline": {"zh-CN": d.headline_zh, "en-US": d.headline_en},
            "cap": d.xml.decode(),
        }
        resp = self._post(url, d.id, payload)
        return f"{url} {resp.status_code}"

    def link_test(self) -> str:
        urls = sorted({*self.targets, *map(str, self.endpoints.values())})
        for url in urls:
            # a fresh id a post: receivers drop a repeated webhook-id as a resend
            self._post(url, f"linktest-{uuid.uuid4().hex}", {"type": "link.test"})
        return f"{len(urls)} endpoint(s) answered"

    def close(self) -> None:
        self._http.close()


@register
class EmailChannel(Channel):
    kind = "email"
    contact_kind = "email"

    def __init__(self, name: str, mode: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, mode, options)
        self.sender = str(self._opt("sender", required=True))
        self._local = threading.local()

    @property
    def broadcast(self) -> tuple[str, ...]:
        return tuple(self._opt("lists", ()))

    def _smtp(self, fresh: bool = False) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if conn is not None and not fresh:
            return conn
        host, port = str(self._opt("host", "127.0.0.1")), int(self._opt("port", 25))
        try:
            conn = smtplib.SMTP(host, port, timeout=float(self._opt("timeout_s", 15)))
            if self._opt("starttls", False):
                conn.starttls()
            if self._opt("username"):
                conn.login(str(self._opt("username")), str(self._opt("password", "")))
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"channel {self.name}: SMTP {host}:{port}: {exc}") from None
        self._local.smtp = conn
        return conn

    def send(self, d: Delivery) -> str:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = d.address
        msg["Subject"] = f"{d.headline_zh} / {d.headline_en}"
        msg["Message-ID"] = make_msgid(idstring=d.id.replace("@", "."), domain="roadside")
        msg["X-Delivery-Id"] = d.id
        msg["X-CAP-Status"] = d.status
        msg.set_content(d.text())
        msg.add_attachment(
            d.xml, maintype="application", subtype="cap+xml", filename=f"{d.identifier}.xml"
        )
        for attempt in (0, 1):  # a kept connection the server closed: reconnect once
            try:
                self._smtp(fresh=attempt == 1).send_message(msg)
                return f"accepted for {d.address}"
            except smtplib.SMTPServerDisconnected:
                continue
            except (OSError, smtplib.SMTPException) as exc:
                self._local.smtp = None
                raise ChannelError(f"channel {self.name}: {d.address}: {exc}") from None
        raise ChannelError(f"channel {self.name}: SMTP server keeps disconnecting")

    def link_test(self) -> str:
        try:
            code, _ = self._smtp(fresh=True).noop()
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"channel {self.name}: {exc}") from None
        if code != 250:
            raise ChannelError(f"channel {self.name}: NOOP answered {code}")
        return "SMTP NOOP 250"

    def close(self) -> None:
        conn = getattr(self._local, "smtp", None)
        if conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                conn.quit()
            self._local.smtp = None


@register
class SmsChannel(Channel):
    kind = "sms"
    contact_kind = "sms"

    def __init__(self, name: str, mode: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, mode, options)
        self.url = str(self._opt("url", required=True))
        token = self._opt("token")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(timeout=float(self._opt("timeout_s", 10.0)), headers=headers)

    def send(self, d: Delivery) -> str:
        text = d.headline_zh + (f" 确认: {d.ack_url}" if d.ack_url else "")
        try:
            resp = self._http.post(self.url, json={"to": d.address, "text": text, "ref": d.id})
        except httpx.HTTPError as exc:
            raise ChannelError(f"channel {self.name}: gateway {self.url}: {exc}") from None
        if resp.status_code >= 300:
            raise ChannelError(f"channel {self.name}: gateway answered {resp.status_code}")
        return f"gateway {resp.status_code}"

    def link_test(self) -> str:
        url = str(self._opt("status_url", self.url))
        try:
            resp = self._http.get(url)
        except httpx.HTTPError as exc:
            raise ChannelError(f"channel {self.name}: gateway {url}: {exc}") from None
        if resp.status_code >= 500:
            raise ChannelError(f"channel {self.name}: gateway answered {resp.status_code}")
        return f"gateway {resp.status_code}"

    def close(self) -> None:
        self._http.close()


@register
class FeedChannel(Channel):
    """The CAP Atom feed file; ``source`` (set by the publisher) renders its current content."""

    kind = "feed"

    def __init__(self, name: str, mode: str, options: Mapping[str, Any]) -> None:
        super().__init__(name, mode, options)
        self.path = Path(self._opt("path", required=True))
        self.source: Callable[[str], bytes] | None = None

    @property
    def broadcast(self) -> tuple[str, ...]:
        return ("feed",)

    def send(self, d: Delivery) -> str:
        if self.source is None:
            raise ChannelError(f"channel {self.name}: no feed source attached")
        data = self.source(self.mode)
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(self.path)
        except OSError as exc:
            raise ChannelError(f"channel {self.name}: {self.path}: {exc}") from None
        return f"{self.path} {len(data)} bytes"

    def link_test(self) -> str:
        parent = self.path.parent
        probe = parent / f".{self.path.name}.probe"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ChannelError(f"channel {self.name}: {parent} is not writable: {exc}") from None
        return f"{parent} writable"
