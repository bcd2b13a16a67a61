"""Warning workflow on both back ends: approval rules, immutability, references, identifiers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.response import cap
from fleet.response.errors import NotFound, WorkflowError
from fleet.response.service import Response
from fleet.store import Store
from roadside.clock import ManualClock
from sim.receivers import signing_pair


def _draft(resp: Response, author: str = "alice", **kw: object) -> dict:
    args: dict = dict(
        cells=["BS-G03"], signal="waterlogging", level="III", author=author, now=resp.now()
    )
    args.update(kw)
    return resp.alerts.draft(**args)


def test_author_cannot_approve_and_publication_needs_approval(resp: Response) -> None:
    m = _draft(resp)
    with pytest.raises(WorkflowError, match="must be approved"):
        resp.publish(m["id"], "alice")
    with pytest.raises(WorkflowError, match="alice wrote this Moderate warning and cannot approve"):
        resp.alerts.approve(m["id"], "alice", resp.now())
    resp.alerts.approve(m["id"], "bob", resp.now())
    out = resp.publish(m["id"], "alice")["message"]
    assert out["state"] == "published" and out["approver"] == "bob"
    cap.validate(out["xml"].encode())


def test_two_person_rule_is_configurable_per_severity(
    sqlite_store: Store, clock: ManualClock, make_response: Callable[..., Response]
) -> None:
    resp = make_response(
        sqlite_store,
        clock,
        two_person={"Minor": False, "Moderate": True, "Severe": True, "Extreme": True},
    )
    minor = _draft(resp, level="IV")
    resp.alerts.approve(minor["id"], "alice", resp.now())  # Minor: the author may approve
    moderate = _draft(resp, level="III")
    with pytest.raises(WorkflowError, match="cannot approve"):
        resp.alerts.approve(moderate["id"], "alice", resp.now())


def test_published_message_never_changes_and_updates_reference_it(resp: Response) -> None:
    m = _draft(resp)
    resp.alerts.approve(m["id"], "bob", resp.now())
    first = resp.publish(m["id"], "alice")["message"]
    xml_before = first["xml"]
    for step in (resp.alerts.approve, resp.alerts.reject):
        with pytest.raises(WorkflowError, match="is published and never changes"):
            step(m["id"], "carol", resp.now())
    with pytest.raises(WorkflowError, match="is published and never changes"):
        resp.publish(m["id"], "alice")
    with pytest.raises(WorkflowError, match="must reference"):
        _draft(resp, msg_type="Update")
    with pytest.raises(NotFound):
        _draft(resp, msg_type="Update", references=["no-such-message"])
    resp.clock.advance(60)  # type: ignore[attr-defined]
    upd = resp.alerts.draft_change(first["identifier"], "Update", "alice", resp.now(), level="II")
    resp.alerts.approve(upd["id"], "bob", resp.now())
    upd = resp.publish(upd["id"], "alice")["message"]
    f = cap.fields(upd["xml"].encode())
    assert f["msgType"] == "Update"
    assert f["references"] == [cap.reference(resp.alerts._message(first))]
    assert upd["chain"] == first["chain"] and upd["identifier"] != first["identifier"]
    cancel = resp.alerts.draft_change(upd["identifier"], "Cancel", "alice", resp.now())
    resp.alerts.approve(cancel["id"], "bob", resp.now())
    cancel = resp.publish(cancel["id"], "alice")["message"]
    assert len(cap.fields(cancel["xml"].encode())["references"]) == 2
    assert resp.alerts.get(first["id"])["xml"] == xml_before  # untouched
    assert resp.alerts.active_chain("BS-G03", None, resp.now()) is None


def test_expired_draft_is_refused_at_publication(resp: Response) -> None:
    m = _draft(resp, expires=resp.now() + 60)
    resp.alerts.approve(m["id"], "bob", resp.now())
    resp.clock.advance(120)  # type: ignore[attr-defined]
    with pytest.raises(cap.CapError, match=r"expires .* is not after sent"):
        resp.publish(m["id"], "alice")
    assert resp.alerts.get(m["id"])["state"] == "approved"  # nothing half-published


def test_identifiers_unique_under_concurrent_publication(
    any_store: Store, clock: ManualClock, make_response: Callable[..., Response]
) -> None:
    resp = make_response(any_store, clock)
    drafts = []
    for _ in range(12):
        m = _draft(resp)
        resp.alerts.approve(m["id"], "bob", resp.now())
        drafts.append(m["id"])
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(drafts))

    def go(ident: str) -> None:
        try:
            barrier.wait()
            resp.publish(ident, "alice")
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(d,)) for d in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    idents = [resp.alerts.get(d)["identifier"] for d in drafts]
    assert len(set(idents)) == len(drafts)  # same second (manual clock), all different
    assert sorted(int(i.rsplit("_", 1)[1]) for i in idents) == list(range(1, len(drafts) + 1))


def test_thunderstorm_warning_names_overdue_lightning_inspections(resp: Response) -> None:
    resp.grid.add_inspection("KU-003", due=resp.now() - 86400, by="admin")  # overdue
    m = _draft(resp, cells=["BS-G07"], signal="thunderstorm", level="III")
    assert "KU-003" in m["content"]["description"][1]
    assert "KU-003" in m["content"]["description"][0]


def test_signed_publication_verifies_against_the_pinned_certificate(
    sqlite_store: Store, clock: ManualClock, make_response: Callable[..., Response], tmp_path: Path
) -> None:
    key, cert = signing_pair("district observatory")
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "c.pem").write_bytes(cert)
    resp = make_response(
        sqlite_store, clock, sign_key=str(tmp_path / "k.pem"), sign_cert=str(tmp_path / "c.pem")
    )
    m = _draft(resp)
    resp.alerts.approve(m["id"], "bob", resp.now())
    xml = resp.publish(m["id"], "alice")["message"]["xml"].encode()
    assert cap.fields(xml)["signed"]
    cap.validate(xml)
    cap.verify(xml, cert)
