"""The risk register: grid cells, hazard points, key units and lightning-protection inspections.

Pure parsing and plain records; storage (versioned, every import a new version per entity) is in
:mod:`fleet.response.db`. Imports are GeoJSON (FeatureCollection) or CSV; every error names the
file and the feature or row (CSV rows count from 1 for the header, as a spreadsheet shows them).

CSV columns: cells ``code,name,kind,vulnerability,wkt`` (WKT polygon, lon/lat); hazard points
``id,kind,name,lon,lat[,cell]``. Key units come as GeoJSON points whose properties carry
``contacts`` and ``backups``: ordered lists of ``{"channel": "sms"|"email"|"webhook"|"mqtt",
"address": ...}``, tried in that order.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shapely import wkt
from shapely.errors import ShapelyError
from shapely.geometry import Point, Polygon, shape

from fleet.response.errors import RegisterError

CELL_KINDS = ("residential", "commercial", "industrial", "transport", "riverside")
HAZARD_KINDS = ("underpass", "low_road", "ponding_spot", "tunnel", "riverbank")
UNIT_KINDS = (
    "school",
    "hospital",
    "nursing_home",
    "chemical_store",
    "fuel_depot",
    "gas_station",
    "metro_station",
    "fireworks_store",
    "construction_site",
)
CONTACT_CHANNELS = ("sms", "email", "webhook", "mqtt")
LIGHTNING_KINDS = ("chemical_store", "fuel_depot", "gas_station", "fireworks_store")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Cell:
    """A grid cell (网格): code, kind of cell (selects the plan's actions), vulnerability 0..1."""

    code: str
    name: str
    kind: str
    vulnerability: float
    polygon: tuple[tuple[float, float], ...]  # (lon, lat), closed ring

    def geometry(self) -> Polygon:
        return Polygon(self.polygon)


@dataclass(frozen=True)
class HazardPoint:
    """An underpass, low road or known ponding spot."""

    id: str
    kind: str
    name: str
    lon: float
    lat: float
    cell: str


@dataclass(frozen=True)
class Contact:
    """One way to reach a unit: a channel kind and its address."""

    channel: str
    address: str
    name: str = ""


@dataclass(frozen=True)
class KeyUnit:
    """A school, hospital, chemical store...: who to reach, by which channels, in order."""

    id: str
    name: str
    kind: str
    address: str
    lon: float
    lat: float
    cell: str
    contacts: tuple[Contact, ...]
    backups: tuple[Contact, ...] = ()
    lightning_protection: bool = False


@dataclass(frozen=True)
class Inspection:
    """A lightning-protection inspection of a key unit: due, done (or not), result, findings."""

    unit: str
    due: float  # epoch seconds
    done: float | None = None
    result: str = ""  # pass | fail | ""
    findings: str = ""

    def overdue(self, now: float) -> bool:
        return self.done is None and now > self.due


@dataclass(frozen=True)
class Register:
    """One consistent view of the register."""

    cells: Mapping[str, Cell] = field(default_factory=dict)
    hazards: Mapping[str, HazardPoint] = field(default_factory=dict)
    units: Mapping[str, KeyUnit] = field(default_factory=dict)

    def cell_of(self, lon: float, lat: float) -> str | None:
        """The code of the cell containing a point (None outside the district)."""
        p = Point(lon, lat)
        for cell in self.cells.values():
            if cell.geometry().covers(p):
                return cell.code
        return None


# -- plain data ------------------------------------------------------------------------------------
def to_plain(item: Cell | HazardPoint | KeyUnit) -> dict[str, Any]:
    """The record as JSON-ready data."""
    return json.loads(json.dumps(asdict(item)))  # tuples -> lists


def cell_from(d: Mapping[str, Any]) -> Cell:
    return Cell(
        str(d["code"]),
        str(d["name"]),
        str(d["kind"]),
        float(d["vulnerability"]),
        tuple((float(x), float(y)) for x, y in d["polygon"]),
    )


def hazard_from(d: Mapping[str, Any]) -> HazardPoint:
    return HazardPoint(
        str(d["id"]), str(d["kind"]), str(d["name"]), float(d["lon"]), float(d["lat"]), d["cell"]
    )


def unit_from(d: Mapping[str, Any]) -> KeyUnit:
    return KeyUnit(
        id=str(d["id"]),
        name=str(d["name"]),
        kind=str(d["kind"]),
        address=str(d.get("address", "")),
        lon=float(d["lon"]),
        lat=float(d["lat"]),
        cell=str(d["cell"]),
        contacts=tuple(Contact(**c) for c in d.get("contacts", ())),
        backups=tuple(Contact(**c) for c in d.get("backups", ())),
        lightning_protection=bool(d.get("lightning_protection", False)),
    )


# -- parsing ---------------------------------------------------------------------------------------
def _features(text: str, source: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RegisterError(f"{source}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise RegisterError(f"{source}: expected a GeoJSON FeatureCollection")
    feats = doc.get("features")
    if not isinstance(feats, list):
        raise RegisterError(f"{source}: 'features' is not a list")
    return feats


def _text(props: Mapping[str, Any], key: str, where: str) -> str:
    value = props.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RegisterError(f"{where}: '{key}' is missing or empty")
    return value.strip()


def _choice(props: Mapping[str, Any], key: str, allowed: Sequence[str], where: str) -> str:
    value = _text(props, key, where)
    if value not in allowed:
        raise RegisterError(f"{where}: '{key}' is {value!r}; expected one of {', '.join(allowed)}")
    return value


def _code(props: Mapping[str, Any], key: str, where: str) -> str:
    value = _text(props, key, where)
    if not _CODE.match(value):
        raise RegisterError(f"{where}: '{key}' {value!r} is not a code (letters, digits, _.-)")
    return value


def _number(value: Any, key: str, where: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RegisterError(f"{where}: '{key}' {value!r} is not a number") from None
    if not lo <= number <= hi:
        raise RegisterError(f"{where}: '{key}' {number} is outside {lo}..{hi}")
    return number


def _polygon(geom: Any, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(geom, Polygon) or geom.is_empty:
        raise RegisterError(f"{where}: geometry is not a polygon")
    if not geom.is_valid:
        raise RegisterError(f"{where}: polygon is not valid (self-intersecting or degenerate)")
    ring = tuple((round(x, 6), round(y, 6)) for x, y in geom.exterior.coords)
    for lon, lat in ring:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise RegisterError(f"{where}: coordinate ({lon}, {lat}) is not lon/lat")
    return ring


def _unique(items: Iterable[Any], key: str, source: str) -> None:
    seen: set[str] = set()
    for item in items:
        ident = getattr(item, key)
        if ident in seen:
            raise RegisterError(f"{source}: {key} {ident!r} appears twice")
        seen.add(ident)


def _cell(props: Mapping[str, Any], geom: Any, where: str) -> Cell:
    return Cell(
        code=_code(props, "code", where),
        name=_text(props, "name", where),
        kind=_choice(props, "kind", CELL_KINDS, where),
        vulnerability=_number(props.get("vulnerability"), "vulnerability", where, 0.0, 1.0),
        polygon=_polygon(geom, where),
    )


def parse_cells(text: str, source: str) -> list[Cell]:
    """Grid cells from GeoJSON (a ``.geojson``/``.json`` source) or CSV."""
    cells: list[Cell] = []
    if source.lower().endswith(".csv"):
        for where, row in _csv_rows(text, source, ("code", "name", "kind", "vulnerability", "wkt")):
            try:
                geom = wkt.loads(row["wkt"])
            except (ShapelyError, ValueError, TypeError):
                raise RegisterError(f"{where}: 'wkt' is not a WKT polygon") from None
            cells.append(_cell(row, geom, where))
    else:
        for i, feat in enumerate(_features(text, source), start=1):
            where = f"{source}: feature {i}"
            cells.append(_cell(_props(feat, where), _geometry(feat, where), where))
    _unique(cells, "code", source)
    return cells


def _props(feat: Any, where: str) -> dict[str, Any]:
    props = feat.get("properties") if isinstance(feat, dict) else None
    if not isinstance(props, dict):
        raise RegisterError(f"{where}: feature has no properties")
    return props


def _geometry(feat: dict[str, Any], where: str) -> Any:
    try:
        return shape(feat["geometry"])
    except (KeyError, TypeError, ValueError, AttributeError, ShapelyError):
        raise RegisterError(f"{where}: missing or malformed geometry") from None


def _point(feat: dict[str, Any], where: str) -> tuple[float, float]:
    geom = _geometry(feat, where)
    if not isinstance(geom, Point):
        raise RegisterError(f"{where}: geometry is not a point")
    return _lonlat(geom.x, geom.y, where)


def _lonlat(lon: Any, lat: Any, where: str) -> tuple[float, float]:
    return _number(lon, "lon", where, -180, 180), _number(lat, "lat", where, -90, 90)


def _csv_rows(
    text: str, source: str, required: Sequence[str]
) -> Iterable[tuple[str, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise RegisterError(f"{source}: row 1: missing column(s) {', '.join(missing)}")
    for n, row in enumerate(reader, start=2):
        yield f"{source}: row {n}", {k: (v or "").strip() for k, v in row.items() if k}


def _in_cell(register: Register, lon: float, lat: float, given: Any, where: str) -> str:
    if given:
        if str(given) not in register.cells:
            raise RegisterError(f"{where}: cell {given!r} is not in the register")
        return str(given)
    cell = register.cell_of(lon, lat)
    if cell is None:
        raise RegisterError(f"{where}: ({lon}, {lat}) lies in no grid cell of the register")
    return cell


def parse_hazards(text: str, source: str, register: Register) -> list[HazardPoint]:
    """Hazard points from GeoJSON points or CSV; each falls in a cell of ``register``."""
    items: list[tuple[str, Mapping[str, Any], float, float]] = []
    if source.lower().endswith(".csv"):
        for where, row in _csv_rows(text, source, ("id", "kind", "name", "lon", "lat")):
            items.append((where, row, *_lonlat(row["lon"], row["lat"], where)))
    else:
        for i, feat in enumerate(_features(text, source), start=1):
            where = f"{source}: feature {i}"
            items.append((where, _props(feat, where), *_point(feat, where)))
    out = [
        HazardPoint(
            id=_code(p, "id", where),
            kind=_choice(p, "kind", HAZARD_KINDS, where),
            name=_text(p, "name", where),
            lon=lon,
            lat=lat,
            cell=_in_cell(register, lon, lat, p.get("cell"), where),
        )
        for where, p, lon, lat in items
    ]
    _unique(out, "id", source)
    return out


def _contacts(value: Any, key: str, where: str) -> tuple[Contact, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RegisterError(f"{where}: '{key}' is not a list")
    out = []
    for j, c in enumerate(value, start=1):
        at = f"{where}: {key}[{j}]"
        if not isinstance(c, dict):
            raise RegisterError(f"{at}: not an object")
        out.append(
            Contact(
                channel=_choice(c, "channel", CONTACT_CHANNELS, at),
                address=_text(c, "address", at),
                name=str(c.get("name", "")),
            )
        )
    return tuple(out)


def parse_units(text: str, source: str, register: Register) -> list[KeyUnit]:
    """Key units from GeoJSON points; each needs at least one contact."""
    out = []
    for i, feat in enumerate(_features(text, source), start=1):
        where = f"{source}: feature {i}"
        p = _props(feat, where)
        lon, lat = _point(feat, where)
        contacts = _contacts(p.get("contacts"), "contacts", where)
        if not contacts:
            raise RegisterError(f"{where}: 'contacts' is empty: a key unit needs one channel")
        kind = _choice(p, "kind", UNIT_KINDS, where)
        out.append(
            KeyUnit(
                id=_code(p, "id", where),
                name=_text(p, "name", where),
                kind=kind,
                address=str(p.get("address", "")),
                lon=lon,
                lat=lat,
                cell=_in_cell(register, lon, lat, p.get("cell"), where),
                contacts=contacts,
                backups=_contacts(p.get("backups"), "backups", where),
                lightning_protection=bool(p.get("lightning_protection", kind in LIGHTNING_KINDS)),
            )
        )
    _unique(out, "id", source)
    return out


def feature_collection(items: Iterable[Cell | HazardPoint | KeyUnit]) -> dict[str, Any]:
    """Cells, hazard points or units as a GeoJSON FeatureCollection (for partners and maps)."""
    feats = []
    for item in items:
        props = to_plain(item)
        if isinstance(item, Cell):
            geometry: dict[str, Any] = {"type": "Polygon", "coordinates": [props.pop("polygon")]}
        else:
            geometry = {"type": "Point", "coordinates": [props.pop("lon"), props.pop("lat")]}
        feats.append({"type": "Feature", "geometry": geometry, "properties": props})
    return {"type": "FeatureCollection", "features": feats}
