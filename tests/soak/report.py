"""The proving ground's report: one HTML page (tables, inline SVG plots) and soak-summary.json."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def svg_plot(series: list[tuple[float, float]], title: str, xlabel: str, ylabel: str) -> str:
    """A small line plot as inline SVG (no plotting library on the machine)."""
    w, h, pad = 640, 220, 44
    if len(series) < 2:
        return f"<p>{html.escape(title)}: not enough points</p>"
    xs, ys = [p[0] for p in series], [p[1] for p in series]
    x0, x1 = min(xs), max(xs) or 1.0
    y0, y1 = min(0.0, min(ys)), max(ys) or 1.0
    sx = (w - 2 * pad) / ((x1 - x0) or 1.0)
    sy = (h - 2 * pad) / ((y1 - y0) or 1.0)
    pts = " ".join(f"{pad + (x - x0) * sx:.1f},{h - pad - (y - y0) * sy:.1f}" for x, y in series)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">'
        f"<title>{html.escape(title)}</title>"
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#fff" stroke="#ccc"/>'
        f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#333"/>'
        f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle" font-size="11">{html.escape(xlabel)}'
        f" ({x0:.0f}–{x1:.0f})</text>"
        f'<text x="12" y="{h / 2}" font-size="11" transform="rotate(-90 12 {h / 2})" '
        f'text-anchor="middle">{html.escape(ylabel)} ({y0:.0f}–{y1:.1f})</text>'
        f'<polyline fill="none" stroke="#1f6fb2" stroke-width="1.6" points="{pts}"/></svg>'
    )


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def write_report(
    out: Path,
    summary: dict[str, Any],
    phases: list[dict[str, Any]],
    plots: list[str],
    notes: list[str],
) -> None:
    """``out/index.html`` and ``out/soak-summary.json``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak-summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    sections = []
    for phase in phases:
        rows = [(k, v) for k, v in phase.items() if k not in ("name", "what")]
        sections.append(
            f"<h2>{html.escape(phase['name'])}</h2><p>{html.escape(phase.get('what', ''))}</p>"
            + _table(rows)
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Roadside proving ground</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}
th{{background:#f4f4f4;font-weight:normal}}.ok{{color:#176}}.bad{{color:#a11}}
</style></head><body>
<h1>Roadside proving ground (<code>make soak</code>)</h1>
<p>Generated {html.escape(str(summary.get("generated", "")))}; scale {summary.get("scale")}
of the full counts of issue 9. Verdict:
<b class="{"ok" if summary.get("passed") else "bad"}">
{"passed" if summary.get("passed") else "FAILED"}</b>.</p>
<h2>Summary</h2>{_table(sorted(summary.items()))}
<h2>Honest notes</h2><ul>{"".join(f"<li>{html.escape(n)}</li>" for n in notes)}</ul>
{"".join(sections)}
<h2>Plots</h2>{"".join(plots)}
</body></html>
"""
    (out / "index.html").write_text(page)
