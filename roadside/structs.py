"""Hand-written files (station configurations, device profiles) into msgspec structs, with
one-line errors.

:func:`convert` validates a parsed document (TOML or JSON) against a :class:`msgspec.Struct`
type (strict types, constraints from ``Annotated[..., msgspec.Meta(...)]``, unknown keys refused)
and turns msgspec's error into a :class:`StructError` with the key path (``sensors[0].slave``)
and a message saying what was expected and what was given. msgspec instead of pydantic on the
station: the same checks for a fraction of the import cost (about 8 MB less resident memory).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_BOUND = re.compile(r"^Expected `[^`]*` (?P<op><=|>=|<|>) (?P<bound>\S+)$")
_LENGTH = re.compile(r"^Expected `(?P<kind>[^`]*)` of length (?P<op><=|>=) (?P<n>\d+)$")
_REGEX = re.compile(r"^Expected `str` matching regex (?P<pattern>.*)$")
_TYPE = re.compile(r"^Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.*)$")
_OPS = {
    "<": "less than",
    "<=": "less than or equal to",
    ">": "greater than",
    ">=": "greater than or equal to",
}
_KINDS = {
    "int": "a valid integer",
    "float": "a valid number",
    "str": "a valid string",
    "bool": "a valid boolean",
    "array": "a list",
    "object": "a table",
    "datetime": "a valid date and time",
}


class StructError(ValueError):
    """A document that does not fit its struct: ``where`` is the key path, ``message`` the
    expectation (``Input should be less than or equal to 90 (got 131.4)``). Callers re-raise it
    as their package's error naming the file (ConfigError, ProfileError)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def convert(doc: Any, type_: type[T], prefix: str = "") -> T:
    """``doc`` as ``type_``; :class:`StructError` (key path below ``prefix``) if it does not fit.

    A missing required key of a top-level struct is named first (msgspec reports the keys in the
    document's order and the missing ones last)."""
    if isinstance(doc, dict) and isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        for f in msgspec.structs.fields(type_):
            required = f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
            if required and f.encode_name not in doc:
                raise StructError(_join(prefix, f.encode_name), "missing (expected a value)")
    try:
        return msgspec.convert(doc, type_)
    except msgspec.ValidationError as exc:
        text, _, at = str(exc).partition(" - at `$")
        path = _parse_path(at.rstrip("`"))
        where, message = _explain(text, path, doc, type_)
        raise StructError(_join(prefix, where), message) from None


def asdict(obj: Any) -> dict[str, Any]:
    """A struct's fields as a dict (nested structs stay structs)."""
    return msgspec.structs.asdict(obj)


def replace(obj: T, **changes: Any) -> T:
    """A copy of the struct ``obj`` with ``changes`` (not validated)."""
    return msgspec.structs.replace(obj, **changes)  # type: ignore[type-var]


def to_json(obj: Any, indent: int = 1) -> str:
    """A struct as indented JSON (dates as ISO 8601)."""
    return msgspec.json.format(msgspec.json.encode(obj), indent=indent).decode()


def _parse_path(at: str) -> list[str | int]:
    """``.sensors[0].slave`` -> ``["sensors", 0, "slave"]``."""
    return [int(index) if index else key for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", at)]


def _join(prefix: str, where: str) -> str:
    if not prefix:
        return where or "(top level)"
    if not where:
        return prefix
    return prefix + where if where.startswith("[") else f"{prefix}.{where}"


def _where(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _explain(text: str, path: list[str | int], doc: Any, type_: Any) -> tuple[str, str]:
    """The key path and message for msgspec's error ``text`` at ``path``."""
    if m := _MISSING.match(text):
        return _where([*path, m["name"]]), "missing (expected a value)"
    if m := _UNKNOWN.match(text):
        known = _fields(type_, path)
        also = f" (expected one of {', '.join(known)})" if known else ""
        return _where([*path, m["name"]]), f"unknown key{also}"
    got = _input(doc, path)
    where = _where(path)
    if m := _BOUND.match(text):
        bound = m["bound"]
        if bound.endswith(".0"):
            bound = bound[:-2]  # 90, not 90.0
        if isinstance(got, float) and got != got:
            return where, "Input should be a finite number (got nan)"
        return where, f"Input should be {_OPS[m['op']]} {bound} (got {got!r})"
    if m := _LENGTH.match(text):
        what, unit = ("String", "character") if m["kind"] == "str" else ("List", "item")
        n = int(m["n"])
        least = "at least" if m["op"] == ">=" else "at most"
        return where, f"{what} should have {least} {n} {unit}{'' if n == 1 else 's'} (got {got!r})"
    if m := _REGEX.match(text):
        return where, f"String should match pattern {m['pattern']} (got {got!r})"
    if m := _ENUM.match(text):
        options = _literals(type_, path)
        want = " or ".join(repr(o) for o in options) if options else "one of the documented values"
        return where, f"Input should be {want} (got {got!r})"
    if m := _TYPE.match(text):
        kinds = [_KINDS.get(k.strip(), k.strip()) for k in m["want"].split("|") if "null" not in k]
        return where, f"Input should be {' or '.join(kinds)} (got {got!r})"
    if got is None or isinstance(got, dict | list):  # a __post_init__ check is a sentence
        return where, text
    return where, f"{text} (got {got!r})"


def _input(doc: Any, path: list[str | int]) -> Any:
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _info_at(type_: Any, path: list[str | int]) -> Any:
    """msgspec's type info for the value at ``path`` (None when the path leaves the types)."""
    from msgspec import inspect as mi

    info: Any = mi.type_info(type_)
    for part in [*path, None]:
        while isinstance(info, mi.UnionType):  # X | None: the non-null member
            members = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if len(members) != 1:
                return None
            info = members[0]
        if part is None:
            return info
        if isinstance(part, int) and isinstance(info, mi.ListType | mi.VarTupleType):
            info = info.item_type
        elif isinstance(part, str) and isinstance(info, mi.StructType | mi.DataclassType):
            fields = {f.encode_name: f.type for f in info.fields}
            if part not in fields:
                return None
            info = fields[part]
        else:
            return None
    return info


def _fields(type_: Any, path: list[str | int]) -> list[str]:
    from msgspec import inspect as mi

    info = _info_at(type_, path)
    if isinstance(info, mi.StructType | mi.DataclassType):
        return [f.encode_name for f in info.fields]
    return []


def _literals(type_: Any, path: list[str | int]) -> tuple[Any, ...]:
    from msgspec import inspect as mi

    info = _info_at(type_, path)
    return tuple(info.values) if isinstance(info, mi.LiteralType) else ()
