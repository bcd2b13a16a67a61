"""The columnar batch codec (``columnar``): about a byte or two a value on a metered link.

A batch of record rows (:data:`roadside.wire.RECORD_FIELDS` order) is written column by column as
unsigned LEB128 varints, then compressed with zstd and a dictionary trained on real batches:

- strings (kinds, sensors, channels, units, statuses, reasons, payload JSON, odd raw values) go
  once into a table; rows refer to them by index;
- a row's series is (sensor, channel, unit) from a series table that also holds the series'
  decimal scale ``k`` and raw exponent; consecutive polls repeat the same series pattern, which
  zstd then stores as one match;
- ``seq`` as deltas (1 mostly), ``time`` as the delta to the previous row (0 within a poll, the
  sampling interval between polls: time is implicit at the sampling interval);
- ``value`` as an integer ``v * 10**k`` (exact: the decoder reproduces the same float), stored as
  the zigzag delta to the series' previous value in the batch; values that are no such decimal go
  as float64; ``raw`` (the register count) as "the scaled value times 10**e" when it is;
- value mode, raw mode, kind, status, flag, reason and payload as run-length (value, count) pairs.

Layout: ``MAGIC`` (2 bytes), the dictionary version (1 byte), then a magic-less zstd frame without
dictionary id or checksum (the transport has its own). The dictionary version is part of the
contract: :data:`DICTIONARY_VERSIONS` lists the ones a reader knows; an unknown one is a
:class:`~roadside.wire.ContractVersionError`-like refusal with the versions this side speaks.
A decoded batch is a plain document (``c, st, lane, first, last, sent, fields, rows``), the same
as the JSON and CBOR codecs give, so :func:`roadside.wire.decode_batch` validates all alike.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import struct
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

import zstandard

MAGIC = b"RC"  # 0x52 0x43: neither JSON ("{"), nor a zstd frame, nor a CBOR map
DICTIONARY_VERSION = 1
LEVEL = 19  # on a live batch (300 values: 538 B in 0.8 ms; level 16: 617 B in 0.1 ms)
LEVEL_LARGE = 16  # above LARGE bytes of columns the highest levels cost milliseconds
LARGE = 2 << 10  # a live batch of ten 1 s polls of 30 values is 1.8 KB of columns
MAX_DECODED = 64 << 20
MAX_K = 6  # at most six decimals as an exact scaled integer
LANES = ("event", "live", "backlog")
_F64 = struct.Struct("<d")


class ColumnarError(ValueError):
    """Bytes that are not a columnar batch this side can read."""


# -- dictionaries --------------------------------------------------------------------------------


@cache
def dictionary(version: int) -> zstandard.ZstdCompressionDict:
    from roadside.columnar_dict import DICTIONARIES

    if version not in DICTIONARIES:
        known = ", ".join(str(v) for v in sorted(DICTIONARIES))
        raise ColumnarError(f"columnar dictionary v{version} unknown (this side knows {known})")
    return zstandard.ZstdCompressionDict(base64.b64decode(DICTIONARIES[version]))


def _params(level: int) -> zstandard.ZstdCompressionParameters:
    return zstandard.ZstdCompressionParameters.from_level(
        level,
        format=zstandard.FORMAT_ZSTD1_MAGICLESS,
        write_checksum=False,
        write_dict_id=False,
        write_content_size=True,
    )


_local = threading.local()
"""zstd (de)compressor objects are not thread-safe: each thread keeps its own (two threads
sharing one crashed the interpreter when several stations' uplinks ran in one process)."""


def _compressor(version: int, level: int) -> zstandard.ZstdCompressor:
    made: dict[tuple[int, int], zstandard.ZstdCompressor] = _local.__dict__.setdefault("c", {})
    if (version, level) not in made:
        made[version, level] = zstandard.ZstdCompressor(
            dict_data=zstandard.ZstdCompressionDict(dictionary(version).as_bytes()),
            compression_params=_params(level),
        )
    return made[version, level]


def _decompressor(version: int) -> zstandard.ZstdDecompressor:
    made: dict[int, zstandard.ZstdDecompressor] = _local.__dict__.setdefault("d", {})
    if version not in made:
        made[version] = zstandard.ZstdDecompressor(
            dict_data=zstandard.ZstdCompressionDict(dictionary(version).as_bytes()),
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
        )
    return made[version]


# -- varints -------------------------------------------------------------------------------------


def _uv(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _sv(out: bytearray, n: int) -> None:
    _uv(out, (n << 1) ^ (n >> 63) if -(1 << 63) <= n < (1 << 63) else _too_big(n))


def _too_big(n: int) -> int:
    raise ColumnarError(f"integer {n} does not fit 64 bits")


def _rle(out: bytearray, values: Sequence[int]) -> None:
    i, n = 0, len(values)
    while i < n:
        v, j = values[i], i + 1
        while j < n and values[j] == v:
            j += 1
        _uv(out, v)
        _uv(out, j - i)
        i = j


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def uv(self) -> int:
        buf, pos = self.buf, self.pos
        shift = result = 0
        while True:
            try:
                b = buf[pos]
            except IndexError:
                raise ColumnarError("columnar batch truncated") from None
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                self.pos = pos
                return result
            shift += 7
            if shift > 70:
                raise ColumnarError("columnar varint too long")

    def sv(self) -> int:
        n = self.uv()
        return (n >> 1) ^ -(n & 1)

    def uvs(self, k: int) -> list[int]:
        """``k`` unsigned varints in one loop (most are one byte)."""
        buf, pos = self.buf, self.pos
        out: list[int] = []
        append = out.append
        try:
            for _ in range(k):
                b = buf[pos]
                pos += 1
                if b < 0x80:
                    append(b)
                    continue
                result, shift = b & 0x7F, 7
                while True:
                    b = buf[pos]
                    pos += 1
                    result |= (b & 0x7F) << shift
                    if b < 0x80:
                        break
                    shift += 7
                    if shift > 70:
                        raise ColumnarError("columnar varint too long")
                append(result)
        except IndexError:
            raise ColumnarError("columnar batch truncated") from None
        self.pos = pos
        return out

    def svs(self, k: int) -> list[int]:
        return [(n >> 1) ^ -(n & 1) for n in self.uvs(k)]

    def text(self) -> str:
        n = self.uv()
        end = self.pos + n
        if end > len(self.buf):
            raise ColumnarError("columnar batch truncated")
        s = self.buf[self.pos : end].decode()
        self.pos = end
        return s

    def f64(self) -> float:
        end = self.pos + 8
        if end > len(self.buf):
            raise ColumnarError("columnar batch truncated")
        (v,) = _F64.unpack_from(self.buf, self.pos)
        self.pos = end
        return float(v)

    def rle(self, n: int) -> list[int]:
        out: list[int] = []
        while len(out) < n:
            v, count = self.uv(), self.uv()
            if count == 0 or len(out) + count > n:
                raise ColumnarError("columnar run length out of bounds")
            out.extend([v] * count)
        return out


# -- values --------------------------------------------------------------------------------------

# value modes: 0 None, 1 int / 10**k, 2 int * 10.0**-k, 3 float64
# raw modes:   0 None, 1 str(scaled * 10**e), 2 string from the table, 3 JSON number from the
#              table, 4 int(scaled * 10**e), 5 str(value) (a driver that reports its value)


def _decimals(v: float) -> int | None:
    """The fewest decimals (<= MAX_K) that hold ``v`` exactly in either decoding, or None."""
    if not math.isfinite(v):
        return None
    for k in range(MAX_K + 1):
        i = round(v * 10**k)
        if i / 10**k == v or i * 10.0**-k == v:
            return k
    return None


def _scaled(v: float, k: int) -> tuple[int, int] | None:
    """(mode, integer) for ``v`` at ``k`` decimals, None when it is not exact there."""
    if not math.isfinite(v) or abs(v) * 10**k >= 2**62:
        return None
    i = round(v * 10**k)
    if i / 10**k == v:
        return 1, i
    if i * 10.0**-k == v:
        return 2, i
    return None


def _raw_exponent(raw: Any, scaled: int) -> int | None:
    """``e`` with ``raw == str(scaled * 10**e)`` (e may be negative when exact), or None."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        r = raw
    elif isinstance(raw, str) and raw.lstrip("-").isdigit() and str(int(raw)) == raw:
        r = int(raw)
    else:
        return None
    for e in range(-MAX_K, MAX_K + 1):
        if e >= 0 and scaled * 10**e == r:
            return e
        if e < 0 and scaled % 10**-e == 0 and scaled // 10**-e == r:
            return e
    return None


def _raw_from(scaled: int, e: int) -> str:
    return str(scaled * 10**e if e >= 0 else scaled // 10**-e)


# -- encode --------------------------------------------------------------------------------------


def encode(doc: dict[str, Any], version: int = DICTIONARY_VERSION) -> bytes:
    """A batch document (as :func:`roadside.wire.encode_rows` builds it) as columnar bytes."""
    plain = columns(doc)
    level = LEVEL if len(plain) <= LARGE else LEVEL_LARGE
    return MAGIC + bytes([version]) + _compressor(version, level).compress(plain)


def columns(doc: dict[str, Any]) -> bytes:
    """The uncompressed column stream of a batch document (what the dictionary is trained on)."""
    from roadside.wire import RECORD_FIELDS

    if tuple(doc.get("fields") or RECORD_FIELDS) != RECORD_FIELDS:
        raise ColumnarError("columnar codec writes only the current record fields")
    rows: Sequence[Sequence[Any]] = doc["rows"]
    strings: dict[str, int] = {}

    def s(text: str) -> int:
        idx = strings.get(text)
        if idx is None:
            idx = strings[text] = len(strings)
        return idx

    series: dict[tuple[str, str, str], int] = {}
    series_k: list[int] = []
    series_e: list[int | None] = []
    row_series: list[int] = []
    found: list[tuple[int, tuple[int, int]] | None] = []  # (decimals, scaled) seen in this pass
    for r in rows:  # first pass: series and their decimals
        key = (r[3] or "", r[4] or "", r[6] or "")
        idx = series.get(key)
        if idx is None:
            idx = series[key] = len(series)
            series_k.append(0)
            series_e.append(None)
        row_series.append(idx)
        found.append(None)
        v = r[5]
        if isinstance(v, int | float) and not isinstance(v, bool):
            have = series_k[idx]
            if have and (hit := _scaled(float(v), have)) is not None:
                found[-1] = (have, hit)  # exact at the series' decimals already (most rows)
                continue
            k = _decimals(float(v))
            if k is not None and k > have:
                series_k[idx] = k
    body = bytearray()
    cols = bytearray()
    n = len(rows)
    # seq and time
    prev_seq = prev_ms = 0
    push = cols.append
    for r in rows:
        seq, ms = int(r[0]), int(r[2])
        d_seq, d_ms = seq - prev_seq, ms - prev_ms
        if -64 <= d_seq < 64 and -64 <= d_ms < 64:  # one byte each (consecutive rows)
            push((d_seq << 1) ^ (d_seq >> 63))
            push((d_ms << 1) ^ (d_ms >> 63))
        else:
            _sv(cols, d_seq)
            _sv(cols, d_ms)
        prev_seq, prev_ms = seq, ms
    for i in row_series:
        if i < 0x80:
            push(i)
        else:
            _uv(cols, i)
    # values and raw
    vmodes: list[int] = []
    rmodes: list[int] = []
    ints = bytearray()
    floats = bytearray()
    raw_strings: list[int] = []
    last: dict[int, int] = {}
    for r, si, seen in zip(rows, row_series, found, strict=True):
        v, raw = r[5], r[7]
        hit = None
        if seen is not None and seen[0] == series_k[si]:
            hit = seen[1]  # the series' decimals did not grow after the first pass saw it
        elif isinstance(v, int | float) and not isinstance(v, bool):
            hit = _scaled(float(v), series_k[si])
        if v is None:
            vmodes.append(0)
        elif hit is None:
            vmodes.append(3)
            floats += _F64.pack(float(v))
        else:
            vmodes.append(hit[0])
            d = hit[1] - last.get(si, 0)
            if -64 <= d < 64:
                ints.append((d << 1) ^ (d >> 63))
            else:
                _sv(ints, d)
            last[si] = hit[1]
        if raw is None:
            rmodes.append(0)
            continue
        if hit is not None:
            if series_e[si] is None:
                series_e[si] = _raw_exponent(raw, hit[1])
            e = series_e[si]
            if e is not None and isinstance(raw, str) and _raw_from(hit[1], e) == raw:
                rmodes.append(1)
                continue
            if e is not None and type(raw) is int and int(_raw_from(hit[1], e)) == raw:
                rmodes.append(4)
                continue
        if isinstance(raw, str) and type(v) is float and raw == str(v):
            rmodes.append(5)
        elif isinstance(raw, str):
            rmodes.append(2)
            raw_strings.append(s(raw))
        else:
            rmodes.append(3)
            raw_strings.append(s(json.dumps(raw)))
    kinds = [strings[kind] if (kind := str(r[1])) in strings else s(kind) for r in rows]
    statuses = [strings[x] if (x := r[8] or "") in strings else s(x) for r in rows]
    flags = [0 if r[9] is None else int(r[9]) + 1 for r in rows]
    reasons = [strings[x] if (x := r[10] or "") in strings else s(x) for r in rows]
    payloads = [0 if not r[11] else s(_json(r[11])) + 1 for r in rows]
    # header
    major, minor = (int(x) for x in str(doc["c"]).split("."))
    _uv(body, major)
    _uv(body, minor)
    _uv(body, s(str(doc["st"])))
    _uv(body, LANES.index(doc["lane"]))
    sent = doc.get("sent")
    first_ms = int(rows[0][2]) if rows else 0
    _uv(body, 0 if sent is None else 1)
    if sent is not None:
        _sv(body, int(sent) - first_ms)
    _uv(body, n)
    for (sensor, channel, unit), k, e in zip(series, series_k, series_e, strict=True):
        _uv(body, s(sensor))
        _uv(body, s(channel))
        _uv(body, s(unit))
        _uv(body, k)
        _sv(body, 0 if e is None else e + 1 if e >= 0 else e)
    body += cols
    for column in (vmodes, rmodes, kinds, statuses, flags, reasons, payloads):
        _rle(body, column)
    for i in raw_strings:
        _uv(body, i)
    body += ints
    body += floats
    table = bytearray()
    _uv(table, len(strings))
    _uv(table, len(series))
    for text in strings:
        b = text.encode()
        _uv(table, len(b))
        table += b
    return bytes(table + body)


def train_dictionary(docs: Sequence[dict[str, Any]], size: int = 4096) -> bytes:
    """A zstd dictionary of ``size`` bytes trained on the column streams of ``docs``."""
    samples: list[bytes | bytearray | memoryview] = [columns(d) for d in docs]
    return zstandard.train_dictionary(size, samples, level=LEVEL).as_bytes()


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, default=str)


# -- decode --------------------------------------------------------------------------------------


def is_columnar(data: bytes | bytearray) -> bool:
    return data[:2] == MAGIC


def decode(data: bytes | bytearray, max_size: int = MAX_DECODED) -> dict[str, Any]:
    """Columnar bytes back to the batch document; :class:`ColumnarError` on anything else."""
    from roadside.wire import RECORD_FIELDS

    if len(data) < 4 or not is_columnar(data):
        raise ColumnarError("not a columnar batch")
    try:
        plain = _decompressor(data[2]).decompress(bytes(data[3:]), max_output_size=max_size)
    except zstandard.ZstdError as exc:
        raise ColumnarError(f"columnar batch does not decompress: {exc}") from None
    if len(plain) > max_size:
        raise ColumnarError(f"columnar batch decompresses beyond {max_size} bytes")
    rd = _Reader(plain)
    strings = [""] * rd.uv()
    n_series = rd.uv()
    if len(strings) > len(plain) or n_series > len(plain):
        raise ColumnarError("columnar table sizes out of bounds")
    try:
        for i in range(len(strings)):
            strings[i] = rd.text()
        major, minor = rd.uv(), rd.uv()
        station = strings[rd.uv()]
        lane = LANES[rd.uv()]
        has_sent = rd.uv()
        sent_delta = rd.sv() if has_sent else 0
        n = rd.uv()
        if n > len(plain):
            raise ColumnarError("columnar row count out of bounds")
        series: list[tuple[str, str, str, int, int | None]] = []
        for _ in range(n_series):
            sensor, channel, unit = strings[rd.uv()], strings[rd.uv()], strings[rd.uv()]
            k, ev = rd.uv(), rd.sv()
            series.append((sensor, channel, unit, k, None if ev == 0 else ev - 1 if ev > 0 else ev))
        pairs = rd.svs(2 * n)
        seqs = list(itertools.accumulate(pairs[0::2]))
        times = list(itertools.accumulate(pairs[1::2]))
        sids = rd.uvs(n)
        vmodes, rmodes, kinds, statuses, flags, reasons, payloads = (rd.rle(n) for _ in range(7))
        raw_idx = rd.uvs(sum(1 for m in rmodes if m in (2, 3)))
        rows: list[list[Any]] = []
        last: dict[int, int] = {}
        raws = iter(raw_idx)
        values: list[Any] = []
        scaled_of: list[int] = []
        deltas = iter(rd.svs(sum(1 for m in vmodes if m in (1, 2))))
        div = [10 ** se[3] for se in series]
        mul = [10.0 ** -se[3] for se in series]
        for si, vm in zip(sids, vmodes, strict=True):
            if vm == 1 or vm == 2:
                i = last.get(si, 0) + next(deltas)
                last[si] = i
                values.append(i / div[si] if vm == 1 else i * mul[si])
                scaled_of.append(i)
            else:
                values.append(None)  # None, or filled from the float column below
                scaled_of.append(0)
        for j, vm in enumerate(vmodes):
            if vm == 3:
                values[j] = rd.f64()
        for j in range(n):
            sensor, channel, unit, _k, e = series[sids[j]]
            rm = rmodes[j]
            if rm == 0:
                raw: Any = None
            elif rm in (1, 4) and e is not None:
                raw = _raw_from(scaled_of[j], e)
                raw = int(raw) if rm == 4 else raw
            elif rm == 2:
                raw = strings[next(raws)]
            elif rm == 3:
                raw = json.loads(strings[next(raws)])
            elif rm == 5 and values[j] is not None:
                raw = str(values[j])
            else:
                raise ColumnarError("columnar raw mode without exponent")
            payload = json.loads(strings[payloads[j] - 1]) if payloads[j] else None
            flag = None if flags[j] == 0 else flags[j] - 1
            rows.append(
                [
                    seqs[j],
                    strings[kinds[j]],
                    times[j],
                    sensor,
                    channel,
                    values[j],
                    unit,
                    raw,
                    strings[statuses[j]],
                    flag,
                    strings[reasons[j]],
                    payload,
                ]
            )
    except (IndexError, StopIteration, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ColumnarError):
            raise
        raise ColumnarError(f"columnar batch inconsistent: {exc}") from None
    doc: dict[str, Any] = {
        "c": f"{major}.{minor}",
        "st": station,
        "lane": lane,
        "first": seqs[0] if seqs else 0,
        "last": seqs[-1] if seqs else 0,
        "fields": list(RECORD_FIELDS),
        "rows": rows,
    }
    if has_sent:
        doc["sent"] = (times[0] if times else 0) + sent_delta
    return doc
