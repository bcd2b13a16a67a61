"""CAP: schema validity of what we render, rule checks, identifiers, signatures, the feed."""

from __future__ import annotations

import datetime as dt

import pytest

from fleet.response import cap
from fleet.response.errors import CapError
from fleet.response.feed import FeedItem, render_feed
from sim.receivers import signing_pair

NOW = dt.datetime(2026, 7, 1, 6, 0, tzinfo=dt.UTC)
RING = ((121.40, 31.38), (121.43, 31.38), (121.43, 31.40), (121.40, 31.40), (121.40, 31.38))


def message(**kw: object) -> cap.Message:
    content = cap.Content(
        "waterlogging",
        "yellow",
        "III",
        "Observed",
        "Immediate",
        NOW,
        NOW + dt.timedelta(hours=3),
        (cap.Area("月浦北网格", "grid cell BS-G01", (RING,), (("roadside grid cell", "BS-G01"),)),),
    )
    base: dict[str, object] = dict(
        identifier=cap.IdScheme().identifier(NOW, 1),
        sender="roadside@310113.example",
        sent=NOW,
        status="Actual",
        msg_type="Alert",
        content=content,
    )
    base.update(kw)
    return cap.Message(**base)  # type: ignore[arg-type]


def test_rendered_alert_is_schema_valid_with_two_languages() -> None:
    xml = cap.build(message())
    f = cap.fields(xml)
    assert f["identifier"] == "31011341600000_20260701140000_1"  # Beijing time
    assert f["sent"] == "2026-07-01T14:00:00+08:00"
    assert f["languages"] == ["zh-CN", "en-US"]
    assert f["headline"] == "内涝黄色预警[Ⅲ级/较重]"


def test_schema_rejects_what_the_schema_forbids() -> None:
    xml = cap.render(message()).replace(b"<scope>Public</scope>", b"<scope>Everyone</scope>")
    with pytest.raises(CapError, match="CAP schema: line"):
        cap.validate(xml)


def test_time_and_reference_rules() -> None:
    with pytest.raises(CapError, match=r"expires .* is not after sent"):
        cap.check_rules(message(sent=NOW + dt.timedelta(hours=4)))
    with pytest.raises(CapError, match="must reference"):
        cap.check_rules(message(msg_type="Update"))
    me = cap.IdScheme().identifier(NOW, 1)
    with pytest.raises(CapError, match="cannot reference itself"):
        cap.check_rules(message(msg_type="Cancel", references=(f"s,{me},x",)))
    with pytest.raises(CapError, match="names its drill"):
        cap.check_rules(message(status="Exercise"))
    with pytest.raises(CapError, match=r"onset .* out of bounds"):
        cap.check_rules(message(sent=NOW - dt.timedelta(days=4)))


def test_signature_verifies_only_against_the_pinned_certificate() -> None:
    key, cert = signing_pair("district observatory")
    other_key, other_cert = signing_pair("impostor")
    signed = cap.sign(cap.build(message()), key, cert)
    assert cap.fields(signed)["signed"]
    cap.validate(signed)  # the ds:Signature is allowed by the schema
    assert b"31011341600000_20260701140000_1" in cap.verify(signed, cert)
    with pytest.raises(CapError, match="signature refused"):
        cap.verify(signed, other_cert)
    forged = cap.sign(cap.build(message()), other_key, other_cert)
    with pytest.raises(CapError, match="signature refused"):
        cap.verify(forged, cert)
    tampered = signed.replace("内涝黄色".encode(), "内涝红色".encode())
    with pytest.raises(CapError, match="signature refused"):
        cap.verify(tampered, cert)


def _item(ident: str, status: str, sent: float, expires: float, ended: float | None) -> FeedItem:
    return FeedItem(ident, status, "Alert", sent, expires, f"h {ident}", "s", ended)


def test_feed_keeps_ended_alerts_24h_and_only_actual() -> None:
    now = 1_000_000.0
    items = [
        _item("active", "Actual", now - 60, now + 3600, None),
        _item("cancelled-recent", "Actual", now - 7200, now + 3600, now - 3600),
        _item("expired-old", "Actual", now - 200_000, now - 90_000, None),
        _item("drill", "Exercise", now - 60, now + 3600, None),
    ]
    live = render_feed(items, mode="live", base_url="http://x", now=now).decode()
    assert "active" in live and "cancelled-recent" in live
    assert "expired-old" not in live and "h drill" not in live
    drill = render_feed(items, mode="drill", base_url="http://x", now=now).decode()
    assert "h drill" in drill and "h active" not in drill


def test_feed_stays_under_the_size_limit() -> None:
    now = 1_000_000.0
    items = [_item(f"a{i:05d}" + "x" * 2000, "Actual", now - i, now + 9, None) for i in range(600)]
    data = render_feed(items, mode="live", base_url="http://x", now=now)
    assert len(data) < 900_000
    assert b"a00000" in data  # the newest are kept


def test_identifier_scheme_refuses_bad_codes() -> None:
    with pytest.raises(CapError, match="six digits"):
        cap.IdScheme(admin_code="3101")
