// District view: grid cells coloured by response level, station markers, layers, station list.
import { api } from "./api.js";
import { ago, apply, t } from "./i18n.js";
import { esc, fmt, healthBadge, levelBadge } from "./ui.js";

export const COLOURS = { none: "#c9d1d9", blue: "#1e63d6", yellow: "#f2c200", orange: "#f07f00", red: "#d7191c" };
const HEALTH = { ok: "#1e8a3c", stale: "#7a8591", offline: "#222222", degraded: "#8a3ab9" };
const LEVELS = ["none", "blue", "yellow", "orange", "red"];
const LIST_ROWS = 200; // the list draws the worst 200 first; "show all" draws the rest

const NUMERALS = { IV: "Ⅳ", III: "Ⅲ", II: "Ⅱ", I: "Ⅰ" };

function cellName(props) {
  return props.name ?? props.code;
}

// "proposed Ⅱ · confirmed Ⅲ (chief)" for a cell the response chain has levels for
function responseText(state) {
  if (!state) return "";
  const parts = [];
  if (state.proposed) parts.push(`${t("cell.proposed")} ${NUMERALS[state.proposed]}`);
  if (state.confirmed) parts.push(`${t("cell.confirmed")} ${NUMERALS[state.confirmed]} (${state.confirmed_by})`);
  return parts.join(" · ");
}

// A station's position: its reported location, else a stable spot inside its cell.
function position(row, centres) {
  if (row.location && row.location.lat != null) return [row.location.lat, row.location.lon];
  const c = centres[row.grid_cell];
  if (!c) return null;
  let h = 0x811c9dc5;
  for (const ch of row.station) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  const dx = ((h & 0xffff) / 0xffff - 0.5) * c.w * 0.8;
  const dy = ((h >>> 16) / 0xffff - 0.5) * c.h * 0.8;
  return [c.lat + dy, c.lon + dx];
}

export async function render(el) {
  el.innerHTML = `
  <div class="district">
    <section class="card" aria-labelledby="map-h">
      <h2 id="map-h" data-i18n="district.map"></h2>
      <div id="map" role="region" data-i18n-label="district.map"></div>
      <div class="legend" id="legend"></div>
      <p class="muted" id="synthetic" hidden data-i18n="district.synthetic"></p>
    </section>
    <section class="card" aria-labelledby="list-h">
      <h2 id="list-h" data-i18n="district.stations"></h2>
      <div class="filters">
        <label><span data-i18n="district.filter.text"></span><input id="f-text" type="search" data-i18n-placeholder="district.filter.text"></label>
        <label><span data-i18n="district.filter.health"></span><select id="f-health"><option value="" data-i18n="district.filter.all"></option>
          ${["ok", "stale", "offline", "degraded"].map((h) => `<option value="${h}" data-i18n="health.${h}"></option>`).join("")}</select></label>
        <label><span data-i18n="district.filter.level"></span><select id="f-level"><option value="" data-i18n="district.filter.all"></option>
          ${LEVELS.map((l) => `<option value="${l}" data-i18n="level.${l}"></option>`).join("")}</select></label>
        <span id="count" class="muted" aria-live="polite"></span>
      </div>
      <div class="scroll"><table id="stations"><thead><tr>
        <th data-i18n="col.station"></th><th data-i18n="col.cell"></th><th data-i18n="col.level"></th>
        <th data-i18n="col.health"></th><th data-i18n="col.last_seen"></th><th data-i18n="col.backlog"></th>
        <th data-i18n="col.software"></th><th data-i18n="col.config"></th><th data-i18n="col.model"></th>
        <th data-i18n="col.clock"></th><th data-i18n="col.devices"></th></tr></thead><tbody></tbody></table>
        <button type="button" id="more" class="secondary" hidden></button></div>
    </section>
  </div>`;
  apply(el);
  document.getElementById("legend").innerHTML = LEVELS.map(levelBadge).join("") +
    Object.keys(HEALTH).map(healthBadge).join("");

  const map = L.map("map", { zoomControl: true, attributionControl: false, zoomSnap: 0.25 });
  const layers = {
    cells: L.layerGroup().addTo(map),
    stations: L.layerGroup().addTo(map),
    units: L.layerGroup().addTo(map),
    hazards: L.layerGroup().addTo(map),
    reports: L.layerGroup().addTo(map),
  };
  L.control.layers(null, Object.fromEntries(Object.entries(layers).map(([k, v]) => [t(`district.layers.${k}`), v])), { collapsed: false }).addTo(map);
  const cellLayers = {};
  // stations on one canvas (a thousand SVG paths draw slowly); cells stay SVG
  const canvas = L.canvas({ padding: 0.3 });
  const markers = {};
  window.__district = { markers }; // the browser tests read a marker's colours here
  let centres = {};
  let fitted = false;
  let data = null;

  function drawCells(cells, levels, response) {
    layers.cells.clearLayers();
    centres = {};
    const gj = L.geoJSON(cells, {
      style: (f) => {
        const level = levels[f.properties.code] ?? "none";
        return { color: "#33414f", weight: 1, fillColor: COLOURS[level], fillOpacity: level === "none" ? 0.25 : 0.55, className: `cell cell-${f.properties.code} level-${level}` };
      },
      onEachFeature: (f, layer) => {
        const level = levels[f.properties.code] ?? "none";
        cellLayers[f.properties.code] = layer;
        layer.bindTooltip(`${esc(f.properties.code)} ${esc(cellName(f.properties))} · ${esc(t("level." + level))} ${esc(responseText(response[f.properties.code]))}`);
        const b = layer.getBounds();
        centres[f.properties.code] = { lat: b.getCenter().lat, lon: b.getCenter().lng, w: b.getEast() - b.getWest(), h: b.getNorth() - b.getSouth() };
      },
    });
    gj.addTo(layers.cells);
    if (!fitted && gj.getBounds().isValid()) {
      map.fitBounds(gj.getBounds(), { padding: [10, 10] });
      fitted = true;
    }
    document.getElementById("synthetic").hidden = !cells.synthetic;
  }

  function drawStations(rows) {
    layers.stations.clearLayers();
    for (const key of Object.keys(markers)) delete markers[key];
    for (const row of rows) {
      const at = position(row, centres);
      if (!at) continue;
      markers[row.station] = L.circleMarker(at, {
        renderer: canvas, radius: 6, weight: 3, color: HEALTH[row.health], fillColor: row.level === "none" ? "#ffffff" : COLOURS[row.level], fillOpacity: 1,
        level: row.level, health: row.health,
      }).bindTooltip(`${esc(row.station)} · ${esc(t("level." + row.level))} · ${esc(t("health." + row.health))}`)
        .on("click", () => (location.hash = `#/station/${encodeURIComponent(row.station)}`))
        .addTo(layers.stations);
    }
  }

  function drawPoints(layer, items, style) {
    layer.clearLayers();
    for (const p of items ?? []) {
      if (p.lat == null) continue;
      L.circleMarker([p.lat, p.lon], style(p)).bindTooltip(esc(p.label)).addTo(layer);
    }
  }

  // worst first: highest warning, then offline / stale / degraded, then by id
  const HEALTH_RANK = { offline: 3, stale: 2, degraded: 1, ok: 0 };
  const worstFirst = (a, b) => LEVELS.indexOf(b.level) - LEVELS.indexOf(a.level) ||
    HEALTH_RANK[b.health] - HEALTH_RANK[a.health] || (a.station < b.station ? -1 : 1);
  let showAll = false;

  function list() {
    const text = document.getElementById("f-text").value.trim().toLowerCase();
    const health = document.getElementById("f-health").value;
    const level = document.getElementById("f-level").value;
    const matching = data.stations.filter((r) =>
      (!text || r.station.toLowerCase().includes(text) || (r.grid_cell ?? "").toLowerCase().includes(text)) &&
      (!health || r.health === health) && (!level || r.level === level)).sort(worstFirst);
    const rows = showAll ? matching : matching.slice(0, LIST_ROWS);
    const more = document.getElementById("more");
    more.hidden = rows.length === matching.length;
    more.textContent = t("district.more", { n: matching.length });
    document.querySelector("#stations tbody").innerHTML = rows.map((r) => `
      <tr data-station="${esc(r.station)}" data-level="${esc(r.level)}" data-health="${esc(r.health)}">
        <td><a href="#/station/${encodeURIComponent(r.station)}">${esc(r.station)}</a></td>
        <td data-cell="${esc(r.grid_cell)}">${esc(r.grid_cell ?? "—")} ${r.grid_cell ? levelBadge(data.levels[r.grid_cell] ?? "none") : ""}</td>
        <td>${levelBadge(r.level)}</td><td>${healthBadge(r.health)}</td>
        <td title="${esc(new Date(r.last_seen * 1000).toISOString())}">${esc(ago(r.age_s))}</td>
        <td>${esc(r.backlog ?? "—")}</td><td>${esc(r.software ?? "—")}</td><td>${esc(r.config_version ?? "—")}</td>
        <td>${esc(r.model_version ?? "—")}</td><td>${r.clock_offset_s == null ? "—" : fmt(r.clock_offset_s, 1) + " s"}</td>
        <td>${r.devices_bad.length ? `<span class="error">${esc(r.devices_bad.join(", "))}</span>` : esc(r.devices)}</td>
      </tr>`).join("");
    document.getElementById("count").textContent = t("district.count", { shown: matching.length, total: data.stations.length });
  }

  async function refresh() {
    data = await api("/console/api/district");
    performance.mark("district:data");
    drawCells(data.cells, data.levels, data.response ?? {});
    drawStations(data.stations);
    performance.mark("district:map");
    drawPoints(layers.units, data.units, () => ({ radius: 5, color: "#0b5cad", fillColor: "#fff", fillOpacity: 1, weight: 2, className: "unit" }));
    drawPoints(layers.hazards, data.hazards, () => ({ radius: 4, color: "#b3261e", fillColor: "#b3261e", fillOpacity: 0.8, className: "hazard" }));
    drawPoints(layers.reports, data.reports, () => ({ radius: 5, color: "#6a1b9a", fillColor: "#e1bee7", fillOpacity: 1, className: "field-report" }));
    list();
    performance.mark("district:list");
    document.body.dataset.district = String(data.stations.length);
  }

  for (const id of ["f-text", "f-health", "f-level"]) document.getElementById(id).addEventListener("input", list);
  document.getElementById("more").addEventListener("click", () => { showAll = true; list(); });
  await refresh();
  map.invalidateSize();
  let pending = null;
  return {
    onChange(topics) {
      if (!topics.some((x) => ["stations", "events", "response"].includes(x)) || pending) return;
      pending = refresh().finally(() => (pending = null));
    },
    destroy() {
      map.remove();
    },
  };
}
