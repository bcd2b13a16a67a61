"""Choose the contract's schema library by measurement: validate and encode 10,000 records.

Each candidate declares the reading record (seq, kind, time, sensor, channel, value, unit, raw,
status, flag, reason, payload) with the same rules (kinds from a fixed set, non-negative seq,
finite value, flag a CMA digit) and runs, on the same 10,000 decoded rows (plain dicts, as a
JSON decoder hands them over):

- validate: dicts -> typed, checked objects;
- encode: objects -> one JSON array of objects (bytes);
- memory: the tracemalloc peak while 10,000 objects are held, and the resident-set growth of
  importing the library in a fresh interpreter (what it costs a station's process).

Plain dataclasses with hand-written checks are the baseline (``json`` for encoding). Medians of
``--repeat`` runs; the ratio is baseline time / msgspec time (validate + encode). Prints a table,
then one JSON line LAST.

Usage: ``python bench/bench_contract.py [--records 10000] [--repeat 5]``
"""

import argparse
import dataclasses
import json
import math
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Annotated, Any, Literal

KINDS = ("reading", "derived", "event", "gap", "forecast")


def rows(n: int) -> list[dict[str, Any]]:
    """``n`` decoded record rows: readings of three channels, a few derived values and events."""
    out = []
    for i in range(n):
        kind = "reading" if i % 10 else "derived"
        out.append(
            {
                "seq": i + 1,
                "kind": kind,
                "time": 1_780_000_000_000 + i * 1000,
                "sensor": "rain1",
                "channel": ("rain_total", "wind_speed", "water_depth")[i % 3],
                "value": (i % 97) * 0.1,
                "unit": "mm",
                "raw": str(i % 97),
                "status": "ok",
                "flag": 0,
                "reason": "",
                "payload": {"window_s": 600.0} if kind == "derived" else None,
            }
        )
    return out


def _check(d: dict[str, Any]) -> None:
    if d["kind"] not in KINDS:
        raise ValueError(f"kind {d['kind']!r}")
    if d["seq"] < 0:
        raise ValueError("seq < 0")
    v = d["value"]
    if v is not None and not math.isfinite(v):
        raise ValueError("value not finite")
    if d["flag"] is not None and not 0 <= d["flag"] <= 9:
        raise ValueError("flag")


# -- candidates -------------------------------------------------------------------------------


def dataclasses_case() -> tuple[Callable[[list[dict]], list], Callable[[list], bytes]]:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Rec:
        seq: int
        kind: str
        time: int
        sensor: str
        channel: str
        value: float | None
        unit: str
        raw: str | None
        status: str
        flag: int | None
        reason: str
        payload: dict[str, Any] | None

    def validate(ds: list[dict]) -> list:
        out = []
        for d in ds:
            if not isinstance(d["seq"], int) or not isinstance(d["time"], int):
                raise TypeError("seq/time")
            _check(d)
            out.append(Rec(**d))
        return out

    def encode(objs: list) -> bytes:
        names = [f.name for f in dataclasses.fields(Rec)]
        docs = [{n: getattr(o, n) for n in names} for o in objs]
        return json.dumps(docs, separators=(",", ":")).encode()

    return validate, encode


def msgspec_case() -> tuple[Callable[[list[dict]], list], Callable[[list], bytes]]:

    import msgspec

    class Rec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
        seq: Annotated[int, msgspec.Meta(ge=0)]
        kind: Literal["reading", "derived", "event", "gap", "forecast"]
        time: int
        sensor: str
        channel: str
        value: float | None
        unit: str
        raw: str | None
        status: str
        flag: Annotated[int, msgspec.Meta(ge=0, le=9)] | None
        reason: str
        payload: dict[str, Any] | None

        def __post_init__(self) -> None:
            if self.value is not None and not math.isfinite(self.value):
                raise ValueError("value not finite")

    encoder = msgspec.json.Encoder()

    def validate(ds: list[dict]) -> list:
        return msgspec.convert(ds, list[Rec])

    def encode(objs: list) -> bytes:
        return encoder.encode(objs)

    return validate, encode


def pydantic_case() -> tuple[Callable[[list[dict]], list], Callable[[list], bytes]]:

    import pydantic

    class Rec(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(frozen=True, extra="forbid")
        seq: Annotated[int, pydantic.Field(ge=0)]
        kind: Literal["reading", "derived", "event", "gap", "forecast"]
        time: int
        sensor: str
        channel: str
        value: Annotated[float, pydantic.Field(allow_inf_nan=False)] | None
        unit: str
        raw: str | None
        status: str
        flag: Annotated[int, pydantic.Field(ge=0, le=9)] | None
        reason: str
        payload: dict[str, Any] | None

    many = pydantic.TypeAdapter(list[Rec])

    def validate(ds: list[dict]) -> list:
        return many.validate_python(ds)

    def encode(objs: list) -> bytes:
        return many.dump_json(objs)

    return validate, encode


def attrs_case() -> tuple[Callable[[list[dict]], list], Callable[[list], bytes]]:
    import attrs
    import cattrs
    from cattrs.preconf.json import make_converter

    def finite(_i: Any, _a: Any, v: float | None) -> None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value not finite")

    @attrs.frozen(slots=True)
    class Rec:
        seq: int = attrs.field(validator=attrs.validators.ge(0))
        kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
        time: int
        sensor: str
        channel: str
        value: float | None = attrs.field(validator=finite)
        unit: str
        raw: str | None
        status: str
        flag: int | None = attrs.field(
            validator=attrs.validators.optional(
                attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(9))
            )
        )
        reason: str
        payload: dict[str, Any] | None

    conv: cattrs.Converter = make_converter(forbid_extra_keys=True)

    def validate(ds: list[dict]) -> list:
        return conv.structure(ds, list[Rec])

    def encode(objs: list) -> bytes:
        return conv.dumps(objs).encode()

    return validate, encode


CASES: dict[str, tuple[str, Callable[[], Any]]] = {
    "dataclasses+json": ("json", dataclasses_case),
    "msgspec": ("msgspec", msgspec_case),
    "pydantic v2": ("pydantic", pydantic_case),
    "attrs+cattrs": ("cattrs", attrs_case),
}


def import_rss_kb(module: str) -> int:
    """Resident-set growth (kB) of importing ``module`` in a fresh interpreter."""
    code = (
        "import resource,sys\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1])*resource.getpagesize()//1024\n"
        f"a=rss(); import {module}; b=rss(); print(b-a)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def measure(factory: Callable[[], Any], data: list[dict], repeat: int) -> dict[str, float]:
    validate, encode = factory()
    v_times, e_times = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        objs = validate(data)
        t1 = time.perf_counter()
        encode(objs)
        t2 = time.perf_counter()
        v_times.append((t1 - t0) * 1000)
        e_times.append((t2 - t1) * 1000)
        del objs
    tracemalloc.start()
    objs = validate(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del objs
    bad = dict(data[0], value=float("nan"))
    try:
        validate([bad])
        refuses_nan = False
    except Exception:
        refuses_nan = True
    assert refuses_nan, "every candidate must refuse a non-finite value"
    return {
        "validate_ms": statistics.median(v_times),
        "encode_ms": statistics.median(e_times),
        "peak_kb": peak / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = rows(args.records)
    results: dict[str, dict[str, float]] = {}
    for name, (module, factory) in CASES.items():
        r = measure(factory, data, args.repeat)
        r["import_rss_kb"] = float(import_rss_kb(module))
        results[name] = r
    print(f"{args.records} records, median of {args.repeat}")
    print(f"{'library':18} {'validate ms':>12} {'encode ms':>10} {'peak kB':>9} {'import kB':>10}")
    for name, r in results.items():
        print(
            f"{name:18} {r['validate_ms']:12.2f} {r['encode_ms']:10.2f} "
            f"{r['peak_kb']:9.0f} {r['import_rss_kb']:10.0f}"
        )
    ours, base = results["msgspec"], results["dataclasses+json"]
    total = ours["validate_ms"] + ours["encode_ms"]
    baseline = base["validate_ms"] + base["encode_ms"]
    print(
        json.dumps(
            {
                "bench": "contract",
                "metric": "validate_encode_ms",
                "value": round(total, 2),
                "unit": "ms",
                "baseline": round(baseline, 2),
                "ratio": round(baseline / total, 2),
                "records": args.records,
                "libraries": {
                    k: {m: round(v, 2) for m, v in r.items()} for k, r in results.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
