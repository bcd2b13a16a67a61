"""The commissioning report: site, devices, live values, calibration, checklist, enrollment.

:func:`enrollment_state` reads what the station holds (certificate, pinned fleet key, a pending
enrollment); :func:`render_html` is a pure function from the ``check --record`` document, the
configuration and that state to one self-contained HTML page; :func:`to_pdf` prints it with
Debian's ``chromium`` (headless ``--print-to-pdf``), nothing downloaded.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent.config import StationConfig
from roadside import signing

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")
STATUS_MARK = {"pass": "✔ pass", "fail": "✘ fail", "todo": "… to do"}

CSS = """
body { font: 11pt/1.4 "Noto Sans", "DejaVu Sans", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 18pt; margin-bottom: 0; } h2 { font-size: 13pt; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; margin: .5em 0 1em; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } .pass { color: #1a7f37; } .fail { color: #c62828; font-weight: bold; }
.todo { color: #9a6700; } .meta { color: #555; } code { font-size: 9.5pt; }
@page { size: A4; margin: 15mm; }
"""


def enrollment_state(config: StationConfig) -> dict[str, Any]:
    """What the station holds: certificate subject, serial and expiry, broker, pinned key."""
    up = config.uplink
    base = Path(config.source).parent
    state: dict[str, Any] = {"state": "not enrolled"}
    if (base / "pending-enrollment.json").exists():
        state["state"] = "pending (completes when the fleet is first reached)"
    cert_path = up.get("cert")
    if cert_path and (base / cert_path).exists():
        cert = x509.load_pem_x509_certificate((base / cert_path).read_bytes())
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        state.update(
            state="enrolled",
            certificate_cn=str(cn[0].value) if cn else "",
            serial=f"{cert.serial_number:x}",
            issuer=cert.issuer.rfc4514_string(),
            not_after=cert.not_valid_after_utc.isoformat(),
            broker=f"{up.get('host')}:{up.get('port', 8883)}",
        )
    key_path = up.get("fleet_key")
    if key_path and (base / key_path).exists():
        state["fleet_key_id"] = signing.key_id(signing.load_public_key(base / key_path))
    return state


def _table(headers: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    head = f"<tr>{head}</tr>" if any(headers) else ""
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def render_html(
    record: Mapping[str, Any], config: StationConfig, enrollment: Mapping[str, Any]
) -> str:
    """The report as one HTML page."""
    st = config.station
    items = list(record.get("items", []))
    site_rows = [
        ["Station id", st.id],
        ["Name", st.name or "-"],
        ["Coordinates", f"{st.lat:.5f} N, {st.lon:.5f} E"],
        ["Grid cell", st.grid_cell],
        ["Configuration", f"version {config.version}, hash {config.content_hash[:16]}"],
        ["Checked at", str(record.get("time", "-"))],
    ]
    devices = [
        [s.name, s.profile, s.port, "-" if s.slave is None else str(s.slave), f"{s.interval_s:g} s"]
        for s in config.sensors
    ]
    live = [[i["sensor"], i["value"]] for i in items if i["check"] == "answers"]
    obs = record.get("observations", {}) or {}
    settings = record.get("settings", {}) or {}
    calibration = [
        ["Installation height (survey)", _fmt(obs.get("installation_height_cm"), "cm")],
        *[[f"{k} (device)", f"{v:g}"] for k, v in settings.items()],
        ["Water poured into the gauge", _fmt(obs.get("pour_mm"), "mm")],
        ["Anemometer north offset", _fmt(obs.get("north_offset_deg"), "deg")],
    ]
    checklist = [
        [i["sensor"], i["check"], STATUS_MARK[i["status"]], i["value"], i["detail"]] for i in items
    ]
    failed = sum(i["status"] == "fail" for i in items)
    todo = sum(i["status"] == "todo" for i in items)
    verdict = (
        "Commissioned: every check passed"
        if not failed and not todo
        else f"{failed} check(s) failed, {todo} to do"
    )
    enroll_rows = [[k.replace("_", " "), str(v)] for k, v in enrollment.items()]
    made = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Commissioning report {html.escape(st.id)}</title><style>{CSS}</style></head>
<body>
<h1>Commissioning report — {html.escape(st.id)}</h1>
<p class="meta">{html.escape(st.name)} · generated {made} by roadside-provision report</p>
<p class="{"pass" if not failed and not todo else "fail" if failed else "todo"}">
{html.escape(verdict)}</p>
<h2>Site</h2>{_table(["", ""], site_rows)}
<h2>Devices</h2>{_table(["Sensor", "Profile", "Port", "Address", "Interval"], devices)}
<h2>Live values (with QC flags)</h2>{_table(["Sensor", "Latest values"], live)}
<h2>Calibration</h2>{_table(["", ""], calibration)}
<h2>Checklist</h2>{
        _table(
            ["Sensor", "Check", "Result", "Value", "Detail"],
            checklist,
            [i["status"] for i in items],
        )
    }
<h2>Enrollment</h2>{_table(["", ""], enroll_rows)}
</body></html>
"""


def _fmt(value: Any, unit: str) -> str:
    return "not recorded" if value is None else f"{value:g} {unit}"


def find_chromium() -> str | None:
    return next((p for name in CHROMIUMS if (p := shutil.which(name))), None)


def to_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 120.0) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium; RuntimeError if it cannot."""
    browser = find_chromium()
    if browser is None:
        raise RuntimeError("chromium not found (apt-get install chromium) — use --no-pdf")
    with tempfile.TemporaryDirectory(prefix="roadside-pdf-") as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf_path}",
            Path(html_path).absolute().as_uri(),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if out.returncode != 0 or not Path(pdf_path).exists():
        raise RuntimeError(f"chromium could not print {html_path}: {out.stderr.strip()[-300:]}")
    return Path(pdf_path)
