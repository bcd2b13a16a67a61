"""The running controller: one MQTT v5 client, the ingest worker, the config manager and a ticker.

Subscriptions: the shared ``$share/fleet/roadside/v1/st/+/up/#`` (every controller process gets
a share of batches, statuses and config acks), plus a plain ``roadside/v1/st/+/up/status`` so
each process also sees every station's retained status at start (brokers do not send retained
messages to shared subscriptions; a status seen twice is harmless).

The session is persistent (``session_expiry_s``) under a stable client id, so messages the broker
delivered but this process never acknowledged come again after a restart; two processes sharing
the load need two client ids. MQTT-level acks are manual: released only after commit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.properties import Properties

from fleet.errors import BrokerError
from fleet.ingest import Inbound, IngestLimits, IngestWorker
from fleet.rollout import DEFAULT_POLICY, ConfigManager, RolloutPolicy
from fleet.store import Store
from roadside import wire
from roadside.clock import Clock

log = logging.getLogger(__name__)

STATUS_SUBSCRIPTION = f"{wire.PREFIX}/st/+/up/status"
DEFAULT_CLIENT_ID = "fleet-controller-1"
SESSION_EXPIRY_S = 600
MAX_PACKET_BYTES = 1 << 20  # the shipped broker's max_packet_size (fleet/mosquitto)
PACKET_OVERHEAD = 64  # fixed header, packet id, properties
TICK_S = 5.0


def _settled(info: mqtt.MQTTMessageInfo) -> bool:
    """Acknowledged by the broker, or queued while disconnected (nothing to wait for now)."""
    return info.rc != mqtt.MQTT_ERR_SUCCESS or info.is_published()


class FleetService:
    """Ingest, registry updates and configuration rollout over one broker connection."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        broker: wire.BrokerSettings,
        key: Ed25519PrivateKey | None,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        policy: RolloutPolicy = DEFAULT_POLICY,
        tick_s: float = TICK_S,
        session_expiry_s: int = SESSION_EXPIRY_S,
        max_group: int = 64,
        limits: IngestLimits | None = None,
        cells: Callable[[], frozenset[str] | None] | None = None,
    ) -> None:
        """``cells`` gives the grid cells the fleet's register assigns (None: any cell a station
        names); it is read at start and every tick, and a status naming another is refused."""
        self.store = store
        self._cells = cells
        self.clock = clock
        self.broker = broker
        self.client_id = client_id
        self.tick_s = tick_s
        self.session_expiry_s = session_expiry_s
        self._connected = threading.Event()
        self._gone = threading.Event()
        self._out_lock = threading.Lock()
        self._outgoing: list[mqtt.MQTTMessageInfo] = []
        self._sub_mid: int | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.config = ConfigManager(store, key, clock, self.publish, policy=policy) if key else None
        self.worker = IngestWorker(
            store,
            clock,
            self,
            on_config_acks=self.config.on_acks if self.config else None,
            on_status=self._on_status if self.config else None,
            max_group=max_group,
            limits=limits,
        )
        self.client = self._make_client()

    # -- MQTT ------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        for path in (self.broker.ca, self.broker.cert, self.broker.key):
            if not path.is_file():
                raise BrokerError(f"broker TLS file {path} does not exist")
        client = wire.new_client(self.broker, self.client_id)
        client.manual_ack_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("broker %s:%d refused the controller: %s", *self._where(), rc)
            return
        _, self._sub_mid = client.subscribe(
            [(wire.FLEET_UPLINK_SUBSCRIPTION, 1), (STATUS_SUBSCRIPTION, 1)],
        )

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        if mid != self._sub_mid:
            return
        if any(c.is_failure for c in codes):
            log.warning("broker %s:%d refused the subscriptions: %s", *self._where(), codes)
            return
        self._connected.set()  # only now: messages published before SUBACK may have no taker
        log.info("connected to %s:%d as %s", *self._where(), self.client_id)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self._connected.clear()
        self._gone.set()
        if not self._stop.is_set():
            log.warning("disconnected from %s:%d (%s); reconnecting", *self._where(), rc)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.worker.submit(Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos))

    def _on_status(self, status: wire.Status) -> None:
        if self.config is not None and status.remote_config:
            self.config.on_status(status.station, status.remote_config)

    def _where(self) -> tuple[str, int]:
        return self.broker.host, self.broker.port

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up and the subscriptions are in place."""
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """QoS 1 publish (paho queues it while disconnected and sends it on reconnect).

        A message over the broker's packet limit is refused here with :class:`BrokerError`:
        handed to paho, the broker would drop the connection and paho would resend it on every
        reconnect, stopping ingest for the whole fleet.
        """
        size = len(payload) + len(topic.encode()) + PACKET_OVERHEAD
        if size > MAX_PACKET_BYTES:
            raise BrokerError(
                f"{topic}: {len(payload)} bytes is over the broker's {MAX_PACKET_BYTES} byte "
                "packet limit; not sent"
            )
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._out_lock:
            self._outgoing = [i for i in self._outgoing if not _settled(i)]
            self._outgoing.append(info)

    def _flush(self, timeout: float) -> None:
        """Wait until the broker has acknowledged every publish (acks, documents) or timeout."""
        deadline = time.monotonic() + timeout
        with self._out_lock:
            pending, self._outgoing = self._outgoing, []
        for info in pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(left)

    def mqtt_ack(self, mid: int, qos: int) -> None:
        """Release the PUBACK of a committed message."""
        if qos > 0:
            self.client.ack(mid, qos)

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, connect_timeout: float = 10.0) -> None:
        """Connect, subscribe and start the worker and the ticker; BrokerError if unreachable."""
        props = Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self._refresh_cells()
        self.worker.start()
        try:
            self.client.connect(
                self.broker.host,
                self.broker.port,
                keepalive=self.broker.keepalive,
                clean_start=False,
                properties=props,
            )
        except OSError as exc:
            self.worker.stop()
            host, port = self._where()
            raise BrokerError(f"broker {host}:{port}: cannot connect: {exc}") from None
        self.client.loop_start()
        if not self._connected.wait(connect_timeout):
            self.stop()
            host, port = self._where()
            raise BrokerError(f"broker {host}:{port}: no CONNACK within {connect_timeout:g} s")
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick_loop, name="fleet-tick", daemon=True)
        self._ticker.start()

    def _refresh_cells(self) -> None:
        if self._cells is not None:
            self.worker.assigned_cells = self._cells()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self._refresh_cells()
                if self.config is not None:
                    self.config.tick()
            except Exception as exc:  # a failed tick must not end the ticker
                log.warning("tick: %s", exc)

    def stop(self) -> None:
        """Leave the share, commit and ack what was received, end the session, disconnect.

        Ending the session (expiry 0 on DISCONNECT) matters with a shared subscription: a
        stopped controller's lingering session would otherwise keep taking its share of messages
        that nobody commits until the session expires. A crash keeps the session instead, so a
        restart under the same client id gets its unacknowledged messages again.
        """
        self._stop.set()
        connected = self.connected
        if connected:
            self.client.unsubscribe([wire.FLEET_UPLINK_SUBSCRIPTION, STATUS_SUBSCRIPTION])
        self.worker.stop(drain=connected)
        if connected:
            # a DISCONNECT overtaking unacknowledged publishes makes Mosquitto drop the
            # connection as an error and keep the session; let them finish first
            self._flush(timeout=5.0)
        props = Properties(mqtt.PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        self._gone.clear()
        self.client.disconnect(properties=props)
        if connected:
            self._gone.wait(5.0)
        self.client.loop_stop()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    def health(self) -> dict[str, Any]:
        """Broker connection and ingest counters (for ``/health``)."""
        return {
            "broker_connected": self.connected,
            "client_id": self.client_id,
            "queued": self.worker.pending(),
            "ingest": self.worker.stats.snapshot(),
        }

    def __enter__(self) -> FleetService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
