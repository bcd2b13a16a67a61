"""The wire contract between a station and the fleet: topics, payloads and their version.

Both sides import this module and nothing else to talk MQTT, so the two cannot drift apart.

Topics (contract major version in the prefix)::

    roadside/v1/st/{station}/up/data       Batch, lane live or backlog        station -> fleet
    roadside/v1/st/{station}/up/events     Batch, lane event (warnings)       station -> fleet
    roadside/v1/st/{station}/up/status     Status, retained, also last will   station -> fleet
    roadside/v1/st/{station}/up/cfg_ack    ConfigAck                          station -> fleet
    roadside/v1/st/{station}/down/ack      Ack (seq ranges committed)         fleet -> station
    roadside/v1/st/{station}/down/config   signed document, retained          fleet -> station
    roadside/v1/grid/{cell}/down/config    signed document, retained          fleet -> grid cell
    roadside/v1/fleet/down/config          signed document, retained          fleet -> everyone

The controller reads ``$share/fleet/roadside/v1/st/+/up/#`` so several processes share the load.

Contract version ``MAJOR.MINOR``: a reader accepts any minor of a major it speaks (unknown fields
are ignored) and refuses another major with :class:`ContractVersionError`, whose message says
which versions it speaks. Each station advertises the versions it speaks in its status message
(``contracts``); :func:`negotiate` picks the highest both sides share.

Batch codec, chosen by measurement (``bench/bench_backlog_drain.py`` prints this table first):
a day of one-minute readings from 10 channels (14,400 records, a storm in the afternoon) in
batches of 500; median bytes per batch and per reading, and encode+decode time per batch
(x86-64, 2 cores, quiet machine; under load all four slow down alike)::

    codec        bytes/batch  bytes/reading  enc+dec ms
    json               42700           85.4        4.52
    cbor               28620           57.2        4.41
    json+zstd           3446            6.9        5.00
    cbor+zstd           4445            8.9        4.97

zstd shrinks either by an order of magnitude; after it JSON ends up 22 % smaller than CBOR (its
repeated text compresses better than CBOR's binary floats) at the same speed, so JSON with zstd
(level 3) is the default (:data:`DEFAULT_CODEC`). Records travel column-wise as rows of a fixed
field order, with times as integer milliseconds. Decoding is self-describing: a zstd frame is
recognised by its magic bytes, JSON by its leading ``{``, anything else is CBOR, so a reader
accepts all four codecs.

Status, acknowledgements and configuration acks are small JSON objects (readable with
``mosquitto_sub``); configuration documents are signed JSON (see :mod:`roadside.signing`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

import cbor2
import paho.mqtt.client as mqtt
import zstandard
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

CONTRACT_VERSION = "1.0"
"""The version this code writes."""
SUPPORTED_CONTRACTS: tuple[str, ...] = ("1.0",)
"""Versions this code reads (one per major; any minor of these majors is accepted)."""

ROOT = "roadside"
PREFIX = f"{ROOT}/v{CONTRACT_VERSION.split('.')[0]}"
SHARED_GROUP = "fleet"

UpKind = Literal["data", "events", "status", "cfg_ack"]
DownKind = Literal["ack", "config"]
Lane = Literal["event", "live", "backlog"]
Codec = Literal["json", "cbor", "json+zstd", "cbor+zstd"]
Payload = bytes | bytearray

UP_KINDS: tuple[str, ...] = ("data", "events", "status", "cfg_ack")
DOWN_KINDS: tuple[str, ...] = ("ack", "config")
LANES: tuple[str, ...] = ("event", "live", "backlog")
CODECS: tuple[str, ...] = ("json", "cbor", "json+zstd", "cbor+zstd")
DEFAULT_CODEC: Codec = "json+zstd"
ZSTD_LEVEL = 3

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class WireError(ValueError):
    """A payload or topic that does not follow the contract (message says what and where)."""


class ContractVersionError(WireError):
    """A payload written for a contract major version this side does not speak."""


# ---------------------------------------------------------------- topics


def check_id(value: str, what: str = "station id") -> str:
    """Return ``value`` if it is a safe topic level (letters, digits, ``_.-``; max 64)."""
    if not isinstance(value, str) or not _ID.match(value):
        raise WireError(f"{what} {value!r} must be 1-64 of [A-Za-z0-9_.-], starting alphanumeric")
    return value


def up_topic(station: str, kind: UpKind) -> str:
    """Topic a station publishes ``kind`` on."""
    if kind not in UP_KINDS:
        raise WireError(f"unknown uplink kind {kind!r} (one of {', '.join(UP_KINDS)})")
    return f"{PREFIX}/st/{check_id(station)}/up/{kind}"


def down_topic(station: str, kind: DownKind) -> str:
    """Topic the fleet publishes ``kind`` on for one station."""
    if kind not in DOWN_KINDS:
        raise WireError(f"unknown downlink kind {kind!r} (one of {', '.join(DOWN_KINDS)})")
    return f"{PREFIX}/st/{check_id(station)}/down/{kind}"


def grid_config_topic(cell: str) -> str:
    """Retained configuration for every station in one grid cell."""
    return f"{PREFIX}/grid/{check_id(cell, 'grid cell')}/down/config"


FLEET_CONFIG_TOPIC = f"{PREFIX}/fleet/down/config"
"""Retained fleet-wide configuration (thresholds for everyone)."""

FLEET_UPLINK_SUBSCRIPTION = f"$share/{SHARED_GROUP}/{PREFIX}/st/+/up/#"
"""What controller processes subscribe to; the broker spreads messages across them."""


def station_subscriptions(station: str, grid_cell: str | None = None) -> list[str]:
    """Topics a station subscribes to: its own downlink, the fleet's and its grid cell's config."""
    topics = [f"{PREFIX}/st/{check_id(station)}/down/#", FLEET_CONFIG_TOPIC]
    if grid_cell:
        topics.append(grid_config_topic(grid_cell))
    return topics


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: ``scope`` st/grid/fleet, ``target`` station or cell id ("" for fleet)."""

    scope: Literal["st", "grid", "fleet"]
    target: str
    direction: Literal["up", "down"]
    kind: str


def parse_topic(topic: str) -> Topic:
    """Split a contract topic into its parts; :class:`WireError` names a topic that is not one."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT or not parts[1].startswith("v"):
        raise WireError(f"topic {topic!r} is not a roadside topic")
    if parts[1] != PREFIX.split("/")[1]:
        raise ContractVersionError(
            f"topic {topic!r} is for contract {parts[1]}; this side speaks "
            + ", ".join(SUPPORTED_CONTRACTS)
        )
    rest = parts[2:]
    if len(rest) == 4 and rest[0] == "st" and rest[2] in ("up", "down"):
        kinds = UP_KINDS if rest[2] == "up" else DOWN_KINDS
        if rest[3] in kinds and _ID.match(rest[1]):
            return Topic("st", rest[1], rest[2], rest[3])  # type: ignore[arg-type]
    is_grid = len(rest) == 4 and rest[0] == "grid" and rest[2:] == ["down", "config"]
    if is_grid and _ID.match(rest[1]):
        return Topic("grid", rest[1], "down", "config")
    if rest == ["fleet", "down", "config"]:
        return Topic("fleet", "", "down", "config")
    raise WireError(f"topic {topic!r} does not follow the contract")


# ---------------------------------------------------------------- versions


def _major_minor(version: str) -> tuple[int, int]:
    try:
        major, minor = version.split(".")
        return int(major), int(minor)
    except (AttributeError, ValueError):
        raise WireError(f"contract version {version!r} is not MAJOR.MINOR") from None


def check_contract(version: str, supported: Sequence[str] = SUPPORTED_CONTRACTS) -> None:
    """Raise :class:`ContractVersionError` unless ``version``'s major is one we speak."""
    major, _ = _major_minor(version)
    if major not in {_major_minor(v)[0] for v in supported}:
        raise ContractVersionError(
            f"contract version {version} refused: this side speaks {', '.join(supported)}"
        )


def negotiate(theirs: Iterable[str], ours: Sequence[str] = SUPPORTED_CONTRACTS) -> str | None:
    """Highest version both sides can use (their minor capped by ours), or None if none shared."""
    best: tuple[int, int] | None = None
    our_by_major: dict[int, int] = {}
    for v in ours:
        ma, mi = _major_minor(v)
        our_by_major[ma] = max(mi, our_by_major.get(ma, -1))
    for v in theirs:
        try:
            ma, mi = _major_minor(v)
        except WireError:
            continue
        if ma in our_by_major:
            cand = (ma, min(mi, our_by_major[ma]))
            best = cand if best is None or cand > best else best
    return None if best is None else f"{best[0]}.{best[1]}"


# ---------------------------------------------------------------- times


def to_ms(when: datetime) -> int:
    """UTC datetime -> integer milliseconds since the epoch."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Integer milliseconds since the epoch -> UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# ---------------------------------------------------------------- batches


RECORD_FIELDS: tuple[str, ...] = (
    "seq",
    "kind",
    "time",
    "sensor",
    "channel",
    "value",
    "unit",
    "raw",
    "status",
    "flag",
    "reason",
    "payload",
)
"""Column order of a record row on the wire (``time`` as integer milliseconds)."""


class WireRecord(NamedTuple):
    """One buffered record as it travels: a reading, derived value, event, gap or forecast.

    ``seq`` is the station buffer's sequence number: with ``station`` it is the idempotency key.
    A named tuple rather than a frozen dataclass: as immutable, and four times cheaper to build,
    which is most of the decoding cost of a batch.
    """

    seq: int
    kind: str
    time: datetime
    sensor: str = ""
    channel: str = ""
    value: float | None = None
    unit: str = ""
    raw: int | float | str | None = None
    status: str = ""
    flag: int | None = None
    reason: str = ""
    payload: dict[str, Any] | None = None

    def row(self) -> list[Any]:
        """The record as a list in :data:`RECORD_FIELDS` order."""
        return [
            self.seq,
            self.kind,
            to_ms(self.time),
            self.sensor,
            self.channel,
            self.value,
            self.unit,
            self.raw,
            self.status,
            self.flag,
            self.reason,
            self.payload,
        ]

    @classmethod
    def from_row(cls, row: Sequence[Any], fields: Sequence[str] = RECORD_FIELDS) -> WireRecord:
        """Inverse of :meth:`row`; columns named in ``fields`` (unknown ones are ignored)."""
        if tuple(fields) != RECORD_FIELDS:  # a writer with another column set (newer minor)
            d = dict(zip(fields, row, strict=False))
            row = [d.get(name) for name in RECORD_FIELDS]
        try:
            seq, kind, ms, sensor, channel, value, unit, raw, status, flag, reason, payload = row[
                :12
            ]
            return cls(
                seq=int(seq),
                kind=str(kind),
                time=from_ms(int(ms)),
                sensor=sensor or "",
                channel=channel or "",
                value=None if value is None else float(value),
                unit=unit or "",
                raw=raw,
                status=status or "",
                flag=None if flag is None else int(flag),
                reason=reason or "",
                payload=payload,
            )
        except (TypeError, ValueError) as exc:
            raise WireError(f"bad record row {list(row)!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive-by-lane records from one station, ``first_seq``..``last_seq`` inclusive.

    Seqs inside need not be contiguous (other lanes interleave), but they are ascending.
    """

    station: str
    lane: Lane
    records: tuple[WireRecord, ...]
    contract: str = CONTRACT_VERSION
    sent: datetime | None = None

    @property
    def first_seq(self) -> int:
        return self.records[0].seq if self.records else 0

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq if self.records else 0

    @property
    def seqs(self) -> list[int]:
        return [r.seq for r in self.records]


def encode_batch(batch: Batch, codec: Codec = DEFAULT_CODEC) -> bytes:
    """Serialise a batch with ``codec`` (see module docstring for the measured choice)."""
    rows = [r.row() for r in batch.records]
    return encode_rows(
        batch.station, batch.lane, rows, sent=batch.sent, codec=codec, contract=batch.contract
    )


def encode_rows(
    station: str,
    lane: Lane,
    rows: Sequence[Sequence[Any]],
    *,
    sent: datetime | None = None,
    codec: Codec = DEFAULT_CODEC,
    contract: str = CONTRACT_VERSION,
) -> bytes:
    """Serialise a batch given as rows in :data:`RECORD_FIELDS` order (time in milliseconds).

    What :func:`encode_batch` does after turning records into rows; a sender holding rows
    already (the station's buffer) skips building records it would only take apart again.
    """
    check_id(station)
    if lane not in LANES:
        raise WireError(f"unknown lane {lane!r} (one of {', '.join(LANES)})")
    if any(b[0] <= a[0] for a, b in itertools.pairwise(rows)):
        raise WireError("batch records must be in strictly ascending seq order")
    doc: dict[str, Any] = {
        "c": contract,
        "st": station,
        "lane": lane,
        "first": rows[0][0] if rows else 0,
        "last": rows[-1][0] if rows else 0,
        "fields": list(RECORD_FIELDS),
        "rows": rows,
    }
    if sent is not None:
        doc["sent"] = to_ms(sent)
    return _pack(doc, codec)


def decode_batch(data: Payload, supported: Sequence[str] = SUPPORTED_CONTRACTS) -> Batch:
    """Parse a batch written with any codec; refuse unknown contract majors and inconsistencies."""
    doc = _unpack(data)
    if not isinstance(doc, dict):
        raise WireError("batch payload is not a map")
    check_contract(str(doc.get("c", "")), supported)
    try:
        fields = tuple(doc.get("fields") or RECORD_FIELDS)
        if fields != RECORD_FIELDS:
            index = {name: i for i, name in enumerate(fields)}
            pick = [index.get(name) for name in RECORD_FIELDS]
            rows = [[None if i is None else r[i] for i in pick] for r in doc["rows"]]
        else:
            rows = doc["rows"]
        records = tuple(WireRecord.from_row(r) for r in rows)
        batch = Batch(
            station=check_id(str(doc["st"])),
            lane=doc["lane"],
            records=records,
            contract=str(doc["c"]),
            sent=from_ms(int(doc["sent"])) if doc.get("sent") is not None else None,
        )
        first, last = int(doc["first"]), int(doc["last"])
    except (KeyError, TypeError) as exc:
        raise WireError(f"batch payload lacks or mistypes {exc}") from None
    if batch.lane not in LANES:
        raise WireError(f"unknown lane {batch.lane!r}")
    if records and (first != batch.first_seq or last != batch.last_seq):
        raise WireError(f"batch header says {first}..{last} but rows hold {batch.first_seq}..")
    return batch


def _pack(doc: Any, codec: Codec) -> bytes:
    if codec not in CODECS:
        raise WireError(f"unknown codec {codec!r} (one of {', '.join(CODECS)})")
    if codec.startswith("json"):
        raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    else:
        raw = cbor2.dumps(doc, canonical=True)
    if codec.endswith("+zstd"):
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)
    return raw


MAX_PAYLOAD_BYTES = 1 << 20
"""Largest payload accepted as it arrives (the broker's ``max_packet_size``)."""
MAX_DECODED_BYTES = 4 << 20
"""Largest payload after decompression; a zstd frame is never expanded past this."""
MAX_CONTAINERS = 20_000
"""Most lists and maps one payload may hold (a batch's rows plus their payload maps)."""
MAX_ITEMS = 200_000
"""Most CBOR data items one payload may hold (a 5000-row batch of 13 fields is 70,000)."""
MAX_DEPTH = 16
"""Deepest nesting of lists and maps (a batch needs 4)."""
ZSTD_MAX_WINDOW = 1 << 23  # the encoder's level 3 uses 2 MiB; a frame asking for more is refused


def _unpack(data: Payload) -> Any:
    """Decode a payload, bounded *before* anything large is allocated: the input size, a zstd
    frame's declared and streamed size, the number of containers and items, and the depth."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError(f"payload of {len(data)} bytes is over the {MAX_PAYLOAD_BYTES} limit")
    try:
        if data[:4] == _ZSTD_MAGIC:
            data = _bounded_zstd(data)
        if data[:1] == b"{":
            if data.count(b"[") + data.count(b"{") > MAX_CONTAINERS:
                raise WireError(f"payload holds more than {MAX_CONTAINERS} lists and maps")
            return json.loads(data)
        _check_cbor(data)
        return cbor2.loads(data)
    except RecursionError:
        raise WireError(f"payload ({len(data)} bytes) is nested too deep") from None
    except (zstandard.ZstdError, ValueError, cbor2.CBORDecodeError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"undecodable payload ({len(data)} bytes): {exc}") from None


def _bounded_zstd(data: Payload) -> bytes:
    """Decompress one zstd frame, refusing a declared or actual size over the limit."""
    declared = zstandard.frame_content_size(bytes(data[:18]))
    if declared > MAX_DECODED_BYTES:
        raise WireError(f"zstd frame declares {declared} bytes, over the {MAX_DECODED_BYTES} limit")
    reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(bytes(data))
    out = bytearray()
    while len(out) <= MAX_DECODED_BYTES:
        chunk = reader.read(1 << 16)
        if not chunk:
            return bytes(out)
        out += chunk
    raise WireError(f"zstd frame expands past the {MAX_DECODED_BYTES} byte limit")


def _check_cbor(data: Payload) -> None:
    """Walk CBOR item heads (no objects built): refuse indefinite lengths, more than
    :data:`MAX_ITEMS` items or :data:`MAX_CONTAINERS` containers, nesting past
    :data:`MAX_DEPTH`, and lengths that run past the end."""
    view = memoryview(bytes(data))
    pos, items, containers = 0, 0, 0
    stack: list[int] = [1]  # items still expected at each open level
    end = len(view)
    while stack:
        if stack[-1] == 0:
            stack.pop()
            continue
        stack[-1] -= 1
        if pos >= end:
            raise WireError("CBOR payload ends inside an item")
        head = view[pos]
        major, info = head >> 5, head & 0x1F
        pos += 1
        items += 1
        if info < 24:
            arg = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > end:
                raise WireError("CBOR payload ends inside an item head")
            arg = int.from_bytes(view[pos : pos + size], "big")
            pos += size
        else:
            raise WireError("CBOR payload uses indefinite lengths (not written by this contract)")
        if major in (2, 3):
            if arg > end - pos:
                raise WireError("CBOR string runs past the end of the payload")
            pos += arg
        elif major in (4, 5):
            containers += 1
            count = arg * (2 if major == 5 else 1)
            if count > end - pos:
                raise WireError("CBOR container claims more items than the payload holds")
            stack.append(count)
            if len(stack) > MAX_DEPTH + 1:
                raise WireError(f"CBOR payload nested deeper than {MAX_DEPTH}")
        elif major == 6:  # tags (shared references, string references): not in the contract
            raise WireError(f"CBOR payload uses tag {arg} (not written by this contract)")
        if items > MAX_ITEMS or containers > MAX_CONTAINERS:
            raise WireError(f"CBOR payload holds more than {MAX_ITEMS} items")
    if pos != end:
        raise WireError(f"{end - pos} bytes after the CBOR item")


# ---------------------------------------------------------------- small JSON messages


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _load_json(data: Payload, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"{what} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError(f"{what} is not a JSON object")
    check_contract(str(obj.get("c", "")))
    return obj


@dataclass(frozen=True, slots=True)
class Ack:
    """The controller committed (or refused, when ``error`` is set) these seq ranges."""

    station: str
    ranges: tuple[tuple[int, int], ...]
    lane: str = ""
    error: str = ""
    contract: str = CONTRACT_VERSION

    def seqs(self) -> list[int]:
        """Every seq covered by the ranges (inclusive)."""
        return [s for a, b in self.ranges for s in range(a, b + 1)]


def seq_ranges(seqs: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Compress sequence numbers into sorted inclusive ``(first, last)`` runs."""
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return tuple(out)


def encode_ack(ack: Ack) -> bytes:
    return _json(
        {
            "c": ack.contract,
            "st": ack.station,
            "ranges": [list(r) for r in ack.ranges],
            "lane": ack.lane,
            "error": ack.error,
        }
    )


def decode_ack(data: Payload) -> Ack:
    obj = _load_json(data, "ack")
    try:
        ranges = tuple((int(a), int(b)) for a, b in obj["ranges"])
        return Ack(
            station=str(obj["st"]),
            ranges=ranges,
            lane=str(obj.get("lane", "")),
            error=str(obj.get("error", "")),
            contract=str(obj["c"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"ack payload lacks or mistypes {exc}") from None


@dataclass(frozen=True, slots=True)
class Status:
    """Retained station status; the last will is the same message with ``state='offline'``.

    ``config_version``/``config_hash`` name the local configuration file; ``remote_config`` maps
    each applied document's scope key (``fleet``, ``grid:<cell>``, ``station:<id>``) to
    ``{"version": int, "hash": str}``.
    """

    station: str
    state: Literal["online", "offline"]
    time: datetime
    contracts: tuple[str, ...] = SUPPORTED_CONTRACTS
    software: str = ""
    config_version: str | None = None
    config_hash: str = ""
    model_version: str = ""
    health: dict[str, Any] = field(default_factory=dict)
    remote_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    contract: str = CONTRACT_VERSION


def encode_status(status: Status) -> bytes:
    return _json(
        {
            "c": status.contract,
            "st": status.station,
            "state": status.state,
            "time": status.time.astimezone(UTC).isoformat(),
            "contracts": list(status.contracts),
            "software": status.software,
            "config_version": status.config_version,
            "config_hash": status.config_hash,
            "model_version": status.model_version,
            "health": status.health,
            "remote_config": status.remote_config,
        }
    )


def decode_status(data: Payload) -> Status:
    obj = _load_json(data, "status")
    try:
        state = obj["state"]
        if state not in ("online", "offline"):
            raise ValueError(f"state {state!r}")
        return Status(
            station=str(obj["st"]),
            state=state,
            time=datetime.fromisoformat(obj["time"]),
            contracts=tuple(str(v) for v in obj.get("contracts", ())),
            software=str(obj.get("software", "")),
            config_version=(
                None if obj.get("config_version") is None else str(obj["config_version"])
            ),
            config_hash=str(obj.get("config_hash", "")),
            model_version=str(obj.get("model_version", "")),
            health=dict(obj.get("health") or {}),
            remote_config=dict(obj.get("remote_config") or {}),
            contract=str(obj["c"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"status payload lacks or mistypes {exc}") from None


@dataclass(frozen=True, slots=True)
class ConfigAck:
    """A station's answer to a configuration document: applied (ok) or refused with a reason.

    ``scope`` is the document's scope key (``fleet``, ``grid:<cell>``, ``station:<id>``);
    ``version`` and ``hash`` (:func:`roadside.signing.document_hash`) are the document's as
    received (None/"" when unreadable); ``running_version`` is what the station runs for that scope
    afterwards. A refusal's ``reason`` starts with one of :data:`NACK_CODES` and a colon.
    """

    station: str
    ok: bool
    scope: str
    version: int | None
    hash: str
    reason: str = ""
    running_version: int | None = None
    time: datetime | None = None
    contract: str = CONTRACT_VERSION


NACK_CODES: tuple[str, ...] = (
    "malformed",  # not JSON / not an envelope
    "unsigned",  # no signature
    "bad-signature",  # does not verify with the provisioned key
    "contract",  # a contract major version the station does not speak
    "scope",  # addressed to another station/cell, or on the wrong topic
    "schema",  # body or resulting configuration invalid
    "older",  # version not newer than the one running (or same version, other content)
    "unsafe",  # would disable or blunt warnings
    "apply",  # valid but could not be applied (disk, runtime); the old one stays
)


def encode_config_ack(ack: ConfigAck) -> bytes:
    return _json(
        {
            "c": ack.contract,
            "st": ack.station,
            "ok": ack.ok,
            "scope": ack.scope,
            "version": ack.version,
            "hash": ack.hash,
            "reason": ack.reason,
            "running_version": ack.running_version,
            "time": ack.time.astimezone(UTC).isoformat() if ack.time else None,
        }
    )


def decode_config_ack(data: Payload) -> ConfigAck:
    obj = _load_json(data, "config ack")
    try:
        return ConfigAck(
            station=str(obj["st"]),
            ok=bool(obj["ok"]),
            scope=str(obj["scope"]),
            version=None if obj.get("version") is None else int(obj["version"]),
            hash=str(obj.get("hash", "")),
            reason=str(obj.get("reason", "")),
            running_version=(
                None if obj.get("running_version") is None else int(obj["running_version"])
            ),
            time=datetime.fromisoformat(obj["time"]) if obj.get("time") else None,
            contract=str(obj["c"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"config ack payload lacks or mistypes {exc}") from None


# ---------------------------------------------------------------- connection


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and which certificate this side presents (its CN is the identity)."""

    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    keepalive: int = 30
    session_expiry_s: int = 86_400


def new_client(settings: BrokerSettings, client_id: str) -> mqtt.Client:
    """A paho-mqtt 2.x MQTT v5 client with mutual TLS, not yet connected."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(
        ca_certs=str(settings.ca), certfile=str(settings.cert), keyfile=str(settings.key)
    )
    return client


def connect_properties(settings: BrokerSettings) -> Properties:
    """CONNECT properties: keep the session (queued QoS 1 downlink) for ``session_expiry_s``."""
    props = Properties(mqtt.PacketTypes.CONNECT)
    props.SessionExpiryInterval = settings.session_expiry_s
    return props
