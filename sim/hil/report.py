"""The scorecard as one self-contained HTML page: tables and inline SVG plots.

Each scored channel gets a plot with the truth (line) and what the device reported (points; flagged
ones in red) on one scenario-time axis, the injected faults of that device shaded, and, on depth
plots, the waterlogging tiers and the DUT's warnings as vertical marks. No JavaScript, no assets.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from typing import Any

from sim.hil.observe import Observed, Value
from sim.hil.runfile import RunSpec
from sim.hil.score import (
    DETECTED_FLAGS,
    GOOD_FLAGS,
    accumulated,
    fault_windows,
    signal_levels,
    truth_of,
)

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 860, 220, 56, 16, 14, 30
MAX_POINTS = 600
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:900px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px}
th{background:#f3f3f3}.ok{color:#17702a;font-weight:600}.bad{color:#b3261e;font-weight:600}
svg{background:#fff;border:1px solid #ddd;margin-bottom:1em}
"""


def _esc(v: Any) -> str:
    return html.escape("—" if v is None else str(v))


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "<td>—</td>"
    return '<td class="ok">pass</td>' if ok else '<td class="bad">FAIL</td>'


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _td(v: Any) -> str:
    return f"<td>{_esc(v)}</td>"


def plot(
    title: str,
    truth: list[tuple[float, float]],
    device: list[Value],
    shaded: list[tuple[float, float, str]],
    end_s: float,
    marks: list[tuple[float, str]] = (),  # type: ignore[assignment]
    levels: list[tuple[float, str]] = (),  # type: ignore[assignment]
) -> str:
    """One SVG: truth line, device points (flagged in red), shaded windows, marks and levels."""
    # the range fits the truth and the unflagged values; flagged outliers sit on the edge
    ys = [y for _, y in truth]
    ys += [float(v.value) for v in device if v.value is not None and v.flag not in DETECTED_FLAGS]
    ys += [y for y, _ in levels]
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(t: float) -> float:
        return PAD_L + pw * min(max(t / end_s, 0.0), 1.0)

    def y(v: float) -> float:
        return PAD_T + ph * (1.0 - (min(max(v, lo), hi) - lo) / (hi - lo))

    out = [f'<svg width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">']
    out.append(f"<title>{_esc(title)}</title>")
    for a, b, label in shaded:
        out.append(
            f'<rect x="{x(a):.1f}" y="{PAD_T}" width="{max(1.0, x(b) - x(a)):.1f}" '
            f'height="{ph}" fill="#f4b400" opacity="0.25"><title>{_esc(label)}</title></rect>'
        )
    for level, label in levels:
        out.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            f'stroke="#888" stroke-dasharray="4 3"/>'
            f'<text x="{W - PAD_R - 4}" y="{y(level) - 3:.1f}" '
            f'font-size="10" text-anchor="end" fill="#666">{_esc(label)}</text>'
        )
    if truth:
        pts = " ".join(f"{x(t):.1f},{y(tv):.1f}" for t, tv in truth)
        out.append(f'<polyline points="{pts}" fill="none" stroke="#1a73e8" stroke-width="1.6"/>')
    step = max(1, len(device) // MAX_POINTS)
    for v in device[::step]:
        if v.value is None:
            continue
        bad = v.flag in DETECTED_FLAGS
        out.append(
            f'<circle cx="{x(v.t_s):.1f}" cy="{y(float(v.value)):.1f}" r="{2.2 if bad else 1.4}" '
            f'fill="{"#d93025" if bad else "#188038"}"/>'
        )
    for t, label in marks:
        out.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{PAD_T}" y2="{PAD_T + ph}" '
            f'stroke="#a142f4" stroke-width="1.2"><title>{_esc(label)}</title></line>'
        )
    for i in range(0, int(end_s // 60) + 1, max(5, round(end_s / 60 / 8 / 5) * 5)):
        out.append(
            f'<text x="{x(i * 60):.1f}" y="{H - 10}" font-size="10" text-anchor="middle">{i}</text>'
        )
    out.append(
        f'<text x="{PAD_L}" y="{PAD_T + 10}" font-size="11" fill="#333">{_esc(title)}  '
        f"(min {lo:.1f} / max {hi:.1f}; x: scenario minutes; blue truth, green device, red "
        "flagged, shaded faults)</text>"
    )
    out.append(
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>'
    )
    out.append("</svg>")
    return "".join(out)


def _accumulated_values(values: list[Value]) -> list[Value]:
    usable = [v for v in values if v.value is not None and v.flag in GOOD_FLAGS]
    return [
        Value(t, v.sensor, v.channel, total, v.flag)
        for (t, total), v in zip(accumulated(usable), usable, strict=True)
    ]


def render_html(card: dict[str, Any], run: RunSpec, obs: Observed) -> str:
    """The scorecard page for ``card`` (from :func:`sim.hil.score.scorecard`)."""
    r = card["run"]
    end_s = r["duration_min"] * 60.0
    sc = run.scenario
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>HIL scorecard: {_esc(r['scenario'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>HIL scorecard: {_esc(r['station'])} through {_esc(r['scenario'])}</h1>",
        f"<p>Run file {_esc(r['run_file'])}; {r['duration_min']:g} scenario minutes at "
        f"x{r['speed']:g}; results from the DUT's {_esc(r['source'])}: {r['readings']} readings, "
        f"{r['warning_events']} warning events. Verdict: "
        + ('<span class="ok">PASS</span>' if card["passed"] else '<span class="bad">FAIL</span>')
        + "</p>",
        "<h2>Checkpoints</h2>",
        _table(
            ["checkpoint", "result", "seen"],
            [
                [_td(c["name"]), _verdict(c["passed"]), _td(c["detail"])]
                for c in card["checkpoints"]
            ],
        ),
        "<h2>Channels against the truth</h2>",
        _table(
            ["sensor", "channel", "samples", "bias", "RMSE", "lag s", "missing"],
            [
                [
                    _td(c["sensor"]),
                    _td(c["channel"]),
                    _td(c["samples"]),
                    _td(c["bias"]),
                    _td(c["rmse"]),
                    _td(c["lag_s"]),
                    _td(f"{100 * c['missing_share']:.1f} %"),
                ]
                for c in card["channels"]
            ],
        ),
        "<h2>QC flags against the injected faults</h2>",
        _table(
            ["fault kind", "injected", "detected", "missed", "falsely flagged (clean minutes)"],
            [
                [
                    _td(k),
                    _td(v["injected"]),
                    _td(v["detected"]),
                    _td(v["missed"]),
                    _td(v["falsely_flagged"]),
                ]
                for k, v in card["qc"].items()
            ],
        ),
        _table(
            ["device", "fault", "from min", "to min", "detected", "first flag min", "reasons"],
            [
                [
                    _td(f["device"]),
                    _td(f["kind"]),
                    _td(f["start_min"]),
                    _td(f["end_min"]),
                    _verdict(f["detected"]),
                    _td(f["first_flag_min"]),
                    _td(", ".join(f["reasons"])),
                ]
                for f in card["faults"]
            ],
        ),
        f"<p>Clean minutes: {card['false_flags']['clean_minutes']}; flagged among them: "
        f"{card['false_flags']['flagged_minutes']} "
        f"({_esc(json.dumps(card['false_flags']['by_reason']))}); minutes the simulator itself "
        f"answered late (not counted as clean): "
        f"{_esc(json.dumps(card['false_flags']['sim_late_minutes']))}.</p>",
        "<h2>Warnings against the truth's crossings</h2>",
        _table(
            ["signal", "level", "truth crossed min", "DUT raised min", "lead min", "target", ""],
            [
                [
                    _td(w["signal"]),
                    _td(w["level"]),
                    _td(w["truth_min"]),
                    _td(w["dut_min"]),
                    _td(w["lead_min"]),
                    _td(w["target_min"]),
                    _verdict(w["met"]),
                ]
                for w in card["warnings"]
            ],
        ),
    ]
    if card["unfounded_warnings"]:
        items = ", ".join(
            f"{u['signal']} {u['level']} at minute {u['dut_min']}"
            for u in card["unfounded_warnings"]
        )
        parts.append(f"<p class='bad'>Raised without the truth reaching it: {_esc(items)}</p>")
    parts.append("<h2>Plots</h2>")
    windows = fault_windows(sc, end_s, 0.0)
    grouped: dict[tuple[str, str], list[Value]] = defaultdict(list)
    for v in obs.readings:
        grouped[(v.sensor, v.channel)].append(v)
    tiers = signal_levels(run.scorecard.rainstorm_preset)["waterlogging"]
    marks = [
        (w.t_s, f"{w.kind} {w.signal} {w.level} ({w.certainty})")
        for w in obs.warnings
        if w.signal == "waterlogging"
    ]
    for c in card["channels"]:
        truth = truth_of(sc, c["channel"])
        assert truth is not None  # only channels with a truth are scored
        values = grouped[(c["sensor"], c["channel"])]
        line = [(t * 60.0, truth(t * 60.0)) for t in range(int(end_s // 60) + 1)]
        if c["channel"] == "rain_total":  # shown as scored: rain since the device's first value
            values = _accumulated_values(values)
            base = truth(values[0].t_s) if values else 0.0
            line = [(t, v - base) for t, v in line if not values or t >= values[0].t_s]
        shaded = [
            (w.start_s, w.end_s, f"{w.fault.kind} on {w.fault.device}")
            for w in windows
            if c["sensor"] in w.devices
        ]
        depth = c["channel"] == "water_depth"
        parts.append(
            plot(
                f"{c['sensor']}.{c['channel']}",
                line,
                values,
                shaded,
                end_s,
                marks if depth else [],
                [(v["water_depth"], f"{k} {v['water_depth'] / 10:g} cm") for k, v in tiers.items()]
                if depth
                else [],
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)
