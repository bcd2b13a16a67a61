"""Admission at the broker: the fleet, as a broker admin, gives an enrolled station its identity.

Mosquitto's dynamic-security plugin (``fleet/mosquitto/``) lets a client in only if a client of
that user name exists; with ``use_identity_as_username`` the name is the certificate's CN. So
enrolling a station ends with the fleet sending, on ``$CONTROL/dynamic-security/v1`` and as a
client holding the ``broker-admin`` role::

    createRole station-<id>                  (its own uplink and downlink topics, literal:
                                             no %u in 2.0)
    createClient <id> roles station, station-<id>   (no password: its certificate)

The commands are plain data (:func:`client_commands`, also used by the test broker); the
answers are checked one by one; "already exists" is success (re-enrolling a station renews its
certificate, its broker identity stays), and an existing client missing a role gets it
(``addClientRole``).

Without its client a station whose certificate the CA signed still completes CONNECT (Mosquitto
2.0 does not ask the plugin about certificate identities), but every publish and subscription is
refused (``defaultACLAccess`` denies all): admission is what lets it do anything.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

from fleet.errors import BrokerError
from roadside import wire

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
CONTROLLER_IDENTITY = "fleet-controller"
STATION_ROLE = "station"
CONTROLLER_ROLE = "controller"
ADMIN_ROLE = "broker-admin"
SERVICE_ROLES = {
    "broker-admin": ADMIN_ROLE,
    "fleet-response": "response",  # the response chain's CAP publisher
    "ops-platform": "alerts-reader",  # the city's operations platform
}
"""Identities that are neither a station nor a controller, and their shipped role."""
HARMLESS = ("already exists",)
"""Answers that mean the wanted state is already there (idempotent admission)."""


def is_controller(identity: str) -> bool:
    """Controller processes: ``fleet-controller`` and ``fleet-controller-<n>``."""
    return identity == CONTROLLER_IDENTITY or identity.startswith(CONTROLLER_IDENTITY + "-")


def station_role(station: str) -> dict[str, Any]:
    """The dynamic-security role of one station: its own uplink (write) and downlink (read).

    Mosquitto 2.0's plugin has no ``%u`` in ACL topics (tested), so each station has a role of
    literal topics; fleet and grid configuration come from the shared ``station`` role.
    """
    up = f"{wire.PREFIX}/st/{wire.check_id(station)}/up/#"
    down = f"{wire.PREFIX}/st/{station}/down/#"
    acl = [("publishClientSend", up), ("subscribePattern", down), ("publishClientReceive", down)]
    return {
        "rolename": f"station-{station}",
        "acls": [{"acltype": t, "topic": topic, "priority": 0, "allow": True} for t, topic in acl],
    }


def client_commands(identity: str) -> list[dict[str, Any]]:
    """Dynamic-security commands that register ``identity`` (``$CONTROL`` or ``mosquitto_ctrl``):
    a station's own role and its client with both roles; a controller or service client with
    its shipped role."""
    if identity in SERVICE_ROLES or is_controller(identity):
        role = SERVICE_ROLES.get(identity, CONTROLLER_ROLE)
        return [{"command": "createClient", "username": identity, "roles": [{"rolename": role}]}]
    own = station_role(identity)
    roles = [{"rolename": STATION_ROLE}, {"rolename": own["rolename"]}]
    return [
        {"command": "createRole", **own},
        {"command": "createClient", "username": identity, "roles": roles},
    ]


def missing_roles(commands: list[dict[str, Any]], client: dict[str, Any]) -> list[dict[str, Any]]:
    """``addClientRole`` commands for the roles ``commands`` give a client that ``client`` (a
    ``getClient`` answer's ``data.client``) lacks: repairs a client that exists with fewer.

    (Mosquitto 2.0.11 answers "Internal error" to adding a role the client already has, so the
    roles are compared here rather than added blindly.)"""
    have = {r.get("rolename") for r in client.get("roles", [])}
    return [
        {"command": "addClientRole", "username": c["username"], "rolename": r["rolename"]}
        for c in commands
        if c["command"] == "createClient"
        for r in c.get("roles", [])
        if r["rolename"] not in have
    ]


def refusals(responses: Sequence[dict[str, Any]]) -> list[str]:
    """The errors among dynamic-security answers that are not "already there"."""
    return [
        f"{r.get('command')}: {r['error']}"
        for r in responses
        if r.get("error") and not any(h in str(r["error"]).lower() for h in HARMLESS)
    ]


class BrokerAdmin:
    """Sends dynamic-security commands as the broker admin identity and checks every answer.

    One short connection per call, serialised in this process: with ``use_username_as_clientid``
    two connections of one admin certificate would take each other's session, so each controller
    process that enrolls stations holds its own admin certificate (``fleet/mosquitto/``).
    """

    def __init__(self, settings: wire.BrokerSettings, timeout_s: float = 15.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._lock = threading.Lock()

    def admit(self, station: str) -> None:
        """Create ``station``'s broker client (CN = station id, roles ``station`` and its own),
        or complete an existing one's roles; raises :class:`BrokerError` (one line) if the
        broker cannot be reached or refuses."""
        commands = client_commands(wire.check_id(station))
        answers = self.send(commands)
        if any("already exists" in str(a.get("error", "")) for a in answers[1:]):
            got = self.send([{"command": "getClient", "username": station}])[0]
            repair = missing_roles(commands, got.get("data", {}).get("client", {}))
            if repair:
                self.send(repair)
        log.info("broker: admitted station %s", station)

    def send(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` in one message; return the answers once all have come."""
        tagged = [{**c, "correlationData": uuid.uuid4().hex} for c in commands]
        want = {c["correlationData"] for c in tagged}
        answers: dict[str, dict[str, Any]] = {}
        done, ready, up = threading.Event(), threading.Event(), threading.Event()
        failed: list[str] = []

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            if rc.is_failure:
                failed.append(f"connect refused ({rc})")
            up.set()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            try:
                responses = json.loads(msg.payload).get("responses", [])
            except (ValueError, AttributeError):
                return
            for r in responses:
                if isinstance(r, dict) and r.get("correlationData") in want:
                    answers[r["correlationData"]] = r
            if want <= answers.keys():
                done.set()

        s = self.settings
        where = f"broker {s.host}:{s.port}"
        with self._lock:
            try:
                client = wire.new_client(s, f"admin-{uuid.uuid4().hex[:8]}")
            except wire.WireError as exc:
                raise BrokerError(f"{where}: broker admin {exc}") from None
            client.on_connect = on_connect
            client.on_message = on_message
            client.on_subscribe = lambda *_: ready.set()
            try:
                client.connect(s.host, s.port)
            except OSError as exc:
                raise BrokerError(f"{where}: cannot connect as broker admin: {exc}") from None
            client.loop_start()
            try:
                if not up.wait(self.timeout_s) or failed:
                    raise BrokerError(
                        f"{where}: broker admin {failed[0] if failed else 'timed out'}"
                    )
                client.subscribe(RESPONSE_TOPIC, qos=1)
                if not ready.wait(self.timeout_s):
                    raise BrokerError(f"{where}: no SUBACK for {RESPONSE_TOPIC}")
                client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
                if not done.wait(self.timeout_s):
                    raise BrokerError(
                        f"{where}: dynamic-security answered {len(answers)} of "
                        f"{len(tagged)} commands (is the admin certificate's client "
                        f"in role {ADMIN_ROLE}?)"
                    )
            finally:
                client.disconnect()
                client.loop_stop()
        ordered = [answers[c["correlationData"]] for c in tagged]
        errors = refusals(ordered)
        if errors:
            raise BrokerError(f"{where}: dynamic-security refused: {'; '.join(errors[:3])}")
        return ordered
