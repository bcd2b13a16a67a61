"""One record, mapped by field name through every layer (no positional copies to drift apart)."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from agent.buffer import INSERT_COLUMNS, Buffer
from agent.buffer import StoredRecord as BufferStored
from fleet.api import RecordOut
from fleet.ingest import batch_to_ingest
from fleet.store import IngestBatch, open_store
from fleet.store import StoredRecord as FleetStored
from fleet.store_sql import RECORD_COLUMNS
from roadside import contract, wire
from roadside.clock import ManualClock

T0 = datetime(2026, 7, 21, 12, tzinfo=UTC)
FIELDS = contract.RECORD_FIELDS
ROOT = Path(__file__).resolve().parents[2]


def test_every_record_shape_is_the_contract_record_plus_its_own_extras() -> None:
    assert wire.RECORD_FIELDS == FIELDS == contract.Record.__struct_fields__
    assert issubclass(BufferStored, contract.Record) and issubclass(FleetStored, contract.Record)
    assert BufferStored.__struct_fields__ == (*FIELDS, "lane", "synced")
    assert FleetStored.__struct_fields__ == (*FIELDS, "station", "lane", "received")
    assert IngestBatch.__annotations__["records"] == "tuple[Record, ...]"
    # the API model is generated from the stored record: same names, same order, all present
    assert tuple(RecordOut.model_fields) == (
        "station",
        *(f for f in FleetStored.__struct_fields__ if f != "station"),
    )
    assert all(f.is_required() for f in RecordOut.model_fields.values())
    # the SQL of both sides names the record's fields (the fleet calls its time column t)
    assert ("lane", *FIELDS[1:], "synced") == INSERT_COLUMNS
    assert RECORD_COLUMNS.split(", ")[2:-1] == ["t" if f == "time" else f for f in FIELDS]


def test_a_record_keeps_every_field_from_buffer_to_wire_to_fleet_store(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=1 << 20, clock=ManualClock(T0))
    rec = contract.Record(
        seq=contract.UNNUMBERED,
        kind="reading",
        time=T0,
        sensor="rain",
        channel="rain_total",
        value=12.5,
        unit="mm",
        raw="125",
        status="ok",
        flag=1,
        reason="step",
        payload={"detail": "x"},
    )
    (seq,) = buf.append([rec])
    (stored,) = buf.pending("live")
    (row,) = buf.pending_rows("live")
    buf.close()
    assert stored == BufferStored(**{**msgspec.structs.asdict(rec), "seq": seq}, lane="live")
    on_wire = contract.Record.from_row(row)
    assert on_wire == msgspec.structs.replace(rec, seq=seq)
    batch = wire.decode_batch(wire.encode_batch(wire.Batch("st-1", "live", (on_wire,))), now=T0)
    assert batch.records == (on_wire,)
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        store.ingest([batch_to_ingest(batch, T0)])
        (back,) = store.records(station="st-1")
    finally:
        store.close()
    assert back == FleetStored(
        **msgspec.structs.asdict(on_wire), station="st-1", lane="live", received=T0
    )


def test_an_absent_text_field_is_an_empty_string_at_every_layer(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=1 << 20, clock=ManualClock(T0))
    gap = contract.Record(seq=contract.UNNUMBERED, kind="gap", time=T0, payload={"n": 1})
    buf.append([gap])
    (stored,) = buf.pending("event")
    (row,) = buf.pending_rows("event")
    buf.close()
    on_wire = contract.Record.from_row(row)
    assert stored.sensor == on_wire.sensor == stored.unit == on_wire.reason == ""
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        batch = wire.Batch("st-1", "event", (on_wire,))
        store.ingest([batch_to_ingest(batch, T0)])
        (back,) = store.records(station="st-1", kinds=("gap",))
    finally:
        store.close()
    assert (back.sensor, back.channel, back.raw, back.payload) == ("", "", None, {"n": 1})


# -- no second declaration of the record's or the status's fields ------------------------------

DECLARED = {"record": frozenset(FIELDS), "status": frozenset(contract.STATUS_FIELDS)}
"""A class body, tuple, dict, parameter list or comma-separated name list (SQL) naming more
than half of one of these is a second declaration."""
HOMES = {
    ("roadside/contract.py", "class Record"): "the record",
    ("roadside/contract.py", "class Status"): "the status",
    ("fleet/store.py", "class Reported"): "the registry: what statuses and batches tell the "
    "fleet, merged (fleet.ingest.status_to_update maps a Status onto it by name); the stations "
    "table, the API's StationOut and the console rows derive from it",
    ("roadside/records.py", "class Reading"): "a driver's measurement before QC (no seq, kind, "
    "flag, reason, payload); agent.pipeline.reading_record maps it onto Record by name",
    ("bench/bench_agent_pipeline.py", "string"): "the naive baseline's table of driver readings",
    ("bench/bench_contract.py", "*"): "the schema-library comparison: one declaration per "
    "candidate library is what it measures (figures in roadside.contract's docstring)",
    ("tests/contract/test_record_mapping.py", "*"): "the scan's own examples of what it finds",
}
SCANNED = ("agent", "fleet", "roadside", "drivers", "edge_models", "sim", "bench", "tests")
_NAME_LIST = re.compile(r"\b\w+(?:\s*,\s*\w+){3,}")


def declarations(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, what, names) for every place in a module that lists names together."""
    out: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            names = [
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            ]
            out.append((node.lineno, f"class {node.name}", names))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            out.append((node.lineno, f"def {node.name}", [a.arg for a in args]))
        elif isinstance(node, ast.Dict | ast.Tuple | ast.List | ast.Set):
            elts = node.keys if isinstance(node, ast.Dict) else node.elts
            names = [
                e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
            out.append((node.lineno, type(node).__name__.lower(), names))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for m in _NAME_LIST.finditer(node.value):
                out.append((node.lineno, "string", re.split(r"\s*,\s*", m.group())))
    return out


def redeclarations(path: Path, rel: str) -> list[str]:
    found = []
    for line, what, names in declarations(ast.parse(path.read_text(), str(path))):
        for list_name, fields in DECLARED.items():
            shared = fields & set(names)
            if len(shared) <= len(fields) // 2:
                continue
            if (rel, what) in HOMES or (rel, "*") in HOMES:
                continue
            found.append(f"{rel}:{line}: {what} lists {len(shared)} of the {list_name}'s fields")
    return found


def test_no_module_declares_the_records_or_the_status_fields_again() -> None:
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            found += redeclarations(path, path.relative_to(ROOT).as_posix())
    assert found == [], "derive these from roadside.contract instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "@dataclass\nclass Row:\n    seq: int\n    kind: str\n    time: float\n    sensor: str\n"
        "    channel: str\n    value: float\n    unit: str\n",
        'SQL = "SELECT seq, kind, time, sensor, channel, value, unit, raw FROM records"',
        'COLS = ("seq", "kind", "time", "sensor", "channel", "value", "flag")',
        "def row(seq, kind, time, sensor, channel, value, unit): ...",
        "class S(Struct):\n    st: str\n    state: str\n    time: str\n    contracts: str\n"
        "    software: str\n    config_version: str\n    config_hash: str\n    model_version: str\n"
        "    grid_cell: str\n",
        'ROW = {"station": 1, "online": 1, "software": 1, "config_version": 1, "model_version": 1,'
        ' "grid_cell": 1, "health": 1, "devices": 1, "backlog": 1}',
    ],
)
def test_the_scan_finds_a_second_declaration(source: str, tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert redeclarations(path, "fleet/mod.py") != []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"value": float("nan")}, "not finite"),
        ({"seq": 0}, "seq outside"),
        ({"flag": 12}, "not a digit"),
        ({"kind": "bogus"}, "kind"),
        ({"time": datetime(2040, 1, 1, tzinfo=UTC)}, "ahead of the receiver"),
        ({"time": datetime(1990, 1, 1, tzinfo=UTC)}, "too old"),
    ],
)
def test_the_receiver_refuses_records_off_the_contract(change: dict, why: str) -> None:
    base = {"seq": 1, "kind": "reading", "time": T0, "value": 1.0}
    rec = contract.Record(**{**base, **change})
    payload = wire.encode_rows("st-1", "live", [rec.row()], codec="cbor")
    with pytest.raises(wire.WireError, match=why):
        wire.decode_batch(payload, now=T0)


def test_the_receiver_refuses_an_oversized_or_malformed_status() -> None:
    big = contract.Status("st-1", "online", T0, health={"log": "x" * 20_000})
    with pytest.raises(wire.WireError, match="bytes"):
        wire.decode_status(wire.encode_status(big), now=T0)
    many = contract.Status("st-1", "online", T0, devices={f"d{i}": "ok" for i in range(300)})
    with pytest.raises(wire.WireError, match="length"):
        wire.decode_status(wire.encode_status(many), now=T0)
    bad_cell = b'{"c":"1.0","st":"st-1","state":"online","time":"2026-07-21T12:00:00Z",'
    with pytest.raises(wire.WireError, match="grid_cell"):
        wire.decode_status(bad_cell + b'"grid_cell":"a/b"}', now=T0)
    status = contract.Status("st-1", "online", T0, grid_cell="G9")
    with pytest.raises(contract.ContractError, match="not assigned") as refused:
        contract.check_grid_cell(status, frozenset({"G1", "G2"}))
    assert refused.value.code == "scope"


def test_the_nowcast_shadow_skill_travels_in_the_status_into_the_registry() -> None:
    from fleet.ingest import status_to_update

    skill = contract.NowcastSkill(rmse_cm=2.5, hits=3, misses=1, false_alarms=0, n=40)
    sent = contract.Status("st-1", "online", T0, health={"healthy": True}, nowcast_skill=skill)
    received = wire.decode_status(wire.encode_status(sent), now=T0)
    update = status_to_update(received, T0)
    assert update.health == {
        "healthy": True,
        "nowcast_skill": {"rmse_cm": 2.5, "hits": 3, "misses": 1, "false_alarms": 0, "n": 40},
    }
    bare = status_to_update(contract.Status("st-1", "online", T0, health={"healthy": True}), T0)
    assert bare.health == {"healthy": True}
