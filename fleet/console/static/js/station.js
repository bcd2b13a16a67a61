// Station page: rain, wind and depth charts (uPlot) with QC flags and the nowcast, health, events.
import { api } from "./api.js";
import { apply, ago, t, when } from "./i18n.js";
import { esc, fmt, healthBadge, levelBadge } from "./ui.js";

const RANGES = { "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400 };
const FLAG_NAMES = { 1: "suspect", 2: "wrong", 3: "corrected", 4: "modified", 8: "missing" };
const TIERS_MM = [150, 300];

function local(epoch) {
  const d = new Date(epoch * 1000 - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function flaggedSeries(ch) {
  return ch.flag.map((f, i) => (FLAG_NAMES[f] ? ch.mean[i] : null));
}

// Join series that have their own time stamps onto one x axis (uPlot wants one).
function joined(parts) {
  const tables = parts.map(([xs, ...ys]) => [xs, ...ys]);
  return tables.length ? uPlot.join(tables) : [[]];
}

function chart(target, title, series, data, width) {
  const opts = {
    title, width, height: 190,
    scales: { x: { time: true } },
    series: [{}, ...series],
    axes: [{}, { scale: series[0].scale ?? "y", label: series[0].unitLabel ?? "" },
      ...(series.some((s) => s.scale === "y2") ? [{ scale: "y2", side: 1, grid: { show: false }, label: series.find((s) => s.scale === "y2").unitLabel }] : [])],
    cursor: { focus: { prox: 16 } },
  };
  return new uPlot(opts, data, target);
}

const pointsOnly = (colour, size = 7) => ({ stroke: colour, fill: colour, paths: () => null, points: { show: true, size, fill: colour, stroke: colour } });

export async function render(el, [id, initial]) {
  const info = await api(`/stations/${encodeURIComponent(id)}`);
  el.innerHTML = `
  <section class="card">
    <div class="station-head">
      <h2 id="st-title"></h2><span id="st-badges"></span><span class="muted" id="st-meta"></span>
    </div>
    <div class="range" role="group" data-i18n-label="station.range">
      ${Object.keys(RANGES).map((k) => `<button type="button" class="secondary" data-range="${k}" data-i18n="station.range.${k}"></button>`).join("")}
      <label><span data-i18n="station.from"></span><input id="r-from" type="datetime-local"></label>
      <label><span data-i18n="station.to"></span><input id="r-to" type="datetime-local"></label>
      <button type="button" id="r-apply" data-i18n="station.apply"></button>
      <span class="muted" id="r-points" aria-live="polite"></span>
    </div>
  </section>
  <section class="card charts">
    <div class="chart" id="c-rain"></div><div class="chart" id="c-wind"></div><div class="chart" id="c-depth"></div>
    <p class="muted" id="c-empty" hidden data-i18n="station.nodata"></p>
  </section>
  <div class="grid2">
    <section class="card"><h3 data-i18n="station.devices"></h3><table id="devices"><tbody></tbody></table></section>
    <section class="card"><h3 data-i18n="station.skill"></h3><div id="skill" class="kv"></div></section>
  </div>
  <section class="card"><h3 data-i18n="station.events"></h3><div class="scroll"><table id="events"><thead><tr>
    <th data-i18n="col.time"></th><th data-i18n="col.signal"></th><th data-i18n="col.level"></th><th data-i18n="col.kind"></th><th data-i18n="col.rule"></th></tr></thead><tbody></tbody></table></div></section>`;
  apply(el);
  document.getElementById("st-title").textContent = t("station.title", { id });

  let range = { span: RANGES[initial] ?? RANGES["6h"], start: null, end: null, live: true };
  let plots = [];

  function head(info, level) {
    const health = info.online === false ? "offline" : (Date.now() / 1000 - Date.parse(info.last_seen) / 1000 > 300 ? "stale" : "ok");
    document.getElementById("st-badges").innerHTML = `${levelBadge(level)} ${healthBadge(health)}`;
    document.getElementById("st-meta").textContent = [
      `${t("col.cell")}: ${info.grid_cell ?? "—"}`, `${t("col.last_seen")}: ${ago(Date.now() / 1000 - Date.parse(info.last_seen) / 1000)}`,
      `${t("col.software")}: ${info.software ?? "—"}`, `${t("col.config")}: ${info.config_version ?? "—"}`,
      `${t("col.model")}: ${info.model_version ?? "—"}`, `${t("col.backlog")}: ${info.backlog ?? "—"}`,
      `${t("col.clock")}: ${info.clock_offset_s == null ? "—" : fmt(info.clock_offset_s) + " s"}`].join(" · ");
    const devices = Object.entries(info.devices ?? {});
    document.querySelector("#devices tbody").innerHTML = devices.length ? devices.map(([name, d]) =>
      `<tr><th>${esc(name)}</th><td>${esc(typeof d === "object" ? Object.entries(d).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ") : d)}</td></tr>`).join("")
      : `<tr><td class="muted">${esc(t("common.none"))}</td></tr>`;
    const health_ = info.health ?? {};
    const skill = health_.nowcast_skill ?? null;  // the status message's nowcast_skill (fleet/ingest.py)
    document.getElementById("skill").innerHTML = skill && typeof skill === "object"
      ? Object.entries(skill).map(([k, v]) => `<span>${esc(k)}</span><span>${esc(typeof v === "number" ? fmt(v, 3) : JSON.stringify(v))}</span>`).join("")
      : `<span class="muted">${esc(t("common.none"))}</span>`;
  }

  function draw(s) {
    for (const p of plots) p.destroy();
    plots = [];
    const width = Math.max(320, el.querySelector(".charts").clientWidth - 30);
    const c = s.channels;
    const shown = Object.values(c).reduce((n, ch) => n + ch.t.length, 0);
    const raw = Object.values(c).reduce((n, ch) => n + ch.raw, 0);
    document.getElementById("r-points").textContent = t("station.points", { raw, shown });
    document.getElementById("c-empty").hidden = shown > 0;
    const parts = (names) => names.filter((n) => c[n]);
    // rain: intensity (mm/h) and accumulations (mm, right axis); QC flags on intensity
    const rain = parts(["rain_intensity", "rain_1h", "rain_3h", "rain_6h", "rain_24h"]);
    if (rain.length) {
      const cols = rain.map((n) => n === "rain_intensity" ? [c[n].t, c[n].mean, flaggedSeries(c[n])] : [c[n].t, c[n].mean]);
      const series = rain.flatMap((n, i) => n === "rain_intensity"
        ? [{ label: "rain_intensity mm/h", stroke: "#0b5cad", width: 2, scale: "y", unitLabel: "mm/h" }, { label: t("station.flagged"), scale: "y", ...pointsOnly("#b3261e") }]
        : [{ label: `${n} mm`, stroke: ["#2e7d32", "#f07f00", "#8a3ab9", "#56606d"][i % 4], scale: "y2", unitLabel: "mm" }]);
      if (series[0].scale !== "y") series[0].scale = "y2";
      plots.push(chart(document.getElementById("c-rain"), t("station.rain"), series, joined(cols), width));
    }
    const wind = parts(["wind_speed_10min", "wind_gust_3s"]);
    if (wind.length) {
      const cols = wind.map((n) => [c[n].t, c[n].mean, flaggedSeries(c[n])]);
      const series = wind.flatMap((n) => [{ label: `${n} m/s`, stroke: n.includes("gust") ? "#d7191c" : "#0b5cad", unitLabel: "m/s" }, { label: `${t("station.flagged")} ${n}`, ...pointsOnly("#b3261e") }]);
      plots.push(chart(document.getElementById("c-wind"), t("station.wind"), series, joined(cols), width));
    }
    if (c.water_depth || s.forecast.length) {
      const cols = [];
      const series = [];
      if (c.water_depth) {
        cols.push([c.water_depth.t, c.water_depth.mean, flaggedSeries(c.water_depth)]);
        series.push({ label: "water_depth mm", stroke: "#0b5cad", width: 2, unitLabel: "mm" }, { label: t("station.flagged"), ...pointsOnly("#b3261e") });
      }
      for (const [m, key, colour] of [[15, "depth_15_mm", "#2e7d32"], [30, "depth_30_mm", "#f07f00"], [60, "depth_60_mm", "#8a3ab9"]]) {
        const fc = s.forecast.filter((f) => f[key] != null);
        if (!fc.length) continue;
        cols.push([fc.map((f) => f.t + m * 60), fc.map((f) => f[key])]);
        series.push({ label: t("station.forecast", { m }), ...pointsOnly(colour, 5) });
      }
      const xs = cols.flatMap((col) => col[0]);
      if (xs.length) {
        const lo = Math.min(...xs), hi = Math.max(...xs);
        for (const [i, mm] of TIERS_MM.entries()) {
          cols.push([[lo, hi], [mm, mm]]);
          series.push({ label: t("station.tier", { cm: mm / 10 }), stroke: i ? "#d7191c" : "#f2c200", dash: [6, 4], spanGaps: true });
        }
        plots.push(chart(document.getElementById("c-depth"), t("station.depth"), series, joined(cols), width));
      }
    }
    document.querySelector("#events tbody").innerHTML = s.events.slice().reverse().map((e) => `
      <tr data-level="${esc(e.level)}"><td>${esc(when(e.t))}</td><td>${esc(e.signal)}</td><td>${levelBadge(e.level ?? "none")}</td>
      <td>${esc(e.kind ?? e.reason)}</td><td>${esc(typeof e.rule === "object" ? JSON.stringify(e.rule) : e.rule ?? "")}</td></tr>`).join("")
      || `<tr><td colspan="5" class="muted">${esc(t("common.none"))}</td></tr>`;
    const latest = {};
    for (const e of s.events) latest[e.signal] = e.level;
    return ["none", "blue", "yellow", "orange", "red"].reduce((a, l) => (Object.values(latest).includes(l) ? l : a), "none");
  }

  async function load() {
    const end = range.live ? Date.now() / 1000 : range.end;
    const start = range.live ? end - range.span : range.start;
    const width = Math.max(320, el.querySelector(".charts").clientWidth - 30);
    const q = new URLSearchParams({ start: new Date(start * 1000).toISOString(), end: new Date(end * 1000).toISOString(), points: String(Math.min(2000, Math.round(width))) });
    const [s, now] = await Promise.all([api(`/console/api/stations/${encodeURIComponent(id)}/series?${q}`), api(`/stations/${encodeURIComponent(id)}`)]);
    document.getElementById("r-from").value = local(start);
    document.getElementById("r-to").value = local(end);
    head(now, draw(s));
  }

  for (const b of el.querySelectorAll("[data-range]"))
    b.addEventListener("click", () => { range = { span: RANGES[b.dataset.range], live: true }; load(); });
  document.getElementById("r-apply").addEventListener("click", () => {
    const start = Date.parse(document.getElementById("r-from").value) / 1000;
    const end = Date.parse(document.getElementById("r-to").value) / 1000;
    if (start < end) { range = { start, end, live: false }; load(); }
  });
  head(info, "none");
  await load();
  let pending = null;
  return {
    onChange(topics) {
      if (!range.live || pending || !topics.some((x) => ["stations", "events"].includes(x))) return;
      pending = load().finally(() => (pending = null));
    },
    destroy() { for (const p of plots) p.destroy(); },
  };
}
