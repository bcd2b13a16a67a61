// After-action report of one cell over a time window: printable (the print stylesheet hides chrome).
import { api } from "./api.js";
import { apply, t, when } from "./i18n.js";
import { esc, fmt } from "./ui.js";

const NUMERAL = { IV: "Ⅳ", III: "Ⅲ", II: "Ⅱ", I: "Ⅰ" };
const table = (head, rows) => `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("") || `<tr><td colspan="${head.length}" class="muted">${esc(t("common.none"))}</td></tr>`}</tbody></table>`;

export async function render(el, [cellParam, hoursParam]) {
  const cells = await api("/grid/cells");
  const cell = cellParam ?? cells.features[0]?.properties.code;
  const hours = Number(hoursParam ?? 24);
  el.innerHTML = `<section class="card noprint"><form id="r-form" class="row">
    <label><span data-i18n="col.cell"></span><select id="r-cell">${cells.features.map((f) => `<option value="${esc(f.properties.code)}" ${f.properties.code === cell ? "selected" : ""}>${esc(f.properties.code)} ${esc(f.properties.name)}</option>`).join("")}</select></label>
    <label><span data-i18n="report.hours"></span><input id="r-hours" type="number" min="1" max="720" value="${hours}" size="5"></label>
    <button type="submit" data-i18n="station.apply"></button> <button type="button" id="r-print" class="secondary" data-i18n="report.print"></button></form></section>
    <article class="card" id="r-body"></article>`;
  apply(el);
  const end = Date.now() / 1000, start = end - hours * 3600;
  const r = await api(`/reports/after-action/${encodeURIComponent(cell)}?start=${start}&end=${end}`);
  const name = cells.features.find((f) => f.properties.code === cell)?.properties.name ?? "";
  el.querySelector("#r-body").innerHTML = `
    <h2>${esc(t("nav.report"))}: ${esc(cell)} ${esc(name)}</h2>
    <p>${esc(when(r.start))} — ${esc(when(r.end))} · ${esc(t("report.stations"))}: ${esc(r.stations.join(", ") || "—")}</p>
    <div class="kv">
      <span data-i18n="report.peak_rain"></span><span>${r.peak_rain_1h ? `${fmt(r.peak_rain_1h.mm)} mm (${esc(r.peak_rain_1h.station)}, ${esc(when(r.peak_rain_1h.time))})` : "—"}</span>
      <span data-i18n="report.peak_depth"></span><span>${r.peak_depth ? `${fmt(r.peak_depth.mm, 0)} mm (${esc(r.peak_depth.station)}, ${esc(when(r.peak_depth.time))})` : "—"}</span>
      <span data-i18n="report.lead"></span><span>${r.forecast_lead_s == null ? "—" : `${Math.round(r.forecast_lead_s / 60)} min`}</span></div>
    <h3 data-i18n="station.events"></h3>${table([t("col.time"), t("col.station"), t("col.signal"), t("col.level"), t("col.kind")], r.station_events.map((e) => `<tr><td>${esc(when(e.time))}</td><td>${esc(e.station)}</td><td>${esc(e.signal)}</td><td>${esc(t("level." + (e.level ?? "none")))}</td><td>${esc(e.kind)}</td></tr>`))}
    <h3 data-i18n="warn.cells"></h3>${table([t("col.time"), t("warn.proposed"), t("warn.confirmed"), t("col.who")], [
      ...r.proposals.map((p) => `<tr><td>${esc(when(p.time))}</td><td>${esc(NUMERAL[p.level] ?? "—")}</td><td></td><td></td></tr>`),
      ...r.decisions.map((d) => `<tr><td>${esc(when(d.time))}</td><td>${esc(NUMERAL[d.proposed] ?? "—")}</td><td>${esc(NUMERAL[d.level] ?? "—")}</td><td>${esc(d.by)}</td></tr>`)])}
    <h3 data-i18n="warn.actions"></h3>${table([t("col.action"), t("col.state"), t("warn.times")], r.actions.map((a) => `<tr><td>${esc(a.label)}</td><td>${esc(t("action." + a.state))}</td><td>${[a.assigned, a.acknowledged, a.done].map((x) => (x ? esc(when(x)) : "—")).join(" / ")}</td></tr>`))}
    <h3 data-i18n="warn.messages"></h3>${table([t("warn.identifier"), t("col.kind"), t("col.state"), t("col.level"), t("warn.reached"), t("warn.acked")], r.warnings.map((w) => `<tr><td>${esc(w.identifier ?? w.id)}${w.status === "Exercise" ? ` <span class="tag-drill">${esc(t("drill.tag"))}</span>` : ""}</td><td>${esc(w.msg_type)}</td><td>${esc(t("state." + w.state))}</td><td>${esc(NUMERAL[w.level])}</td><td>${w.reached}/${w.units}</td><td>${w.acknowledged}/${w.units}</td></tr>`))}
    <h3 data-i18n="nav.field"></h3>${table([t("col.time"), t("col.who"), t("field.depth"), t("field.note")], r.field_reports.map((f) => `<tr><td>${esc(when(f.time))}</td><td>${esc(f.by)}</td><td>${esc(f.depth_class)}</td><td>${esc(f.note)}</td></tr>`))}`;
  apply(el.querySelector("#r-body"));
  el.querySelector("#r-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#/report/${encodeURIComponent(el.querySelector("#r-cell").value)}/${el.querySelector("#r-hours").value}`;
  });
  el.querySelector("#r-print").addEventListener("click", () => window.print());
  return {};
}
