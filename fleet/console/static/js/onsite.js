// On-site support: incidents on the map with their live downwind sector and what lies inside it.
import { api, can } from "./api.js";
import { apply, t, when } from "./i18n.js";
import { act, esc, fmt } from "./ui.js";

export async function render(el) {
  el.innerHTML = `
  <div class="district">
    <section class="card"><h2 data-i18n="nav.onsite"></h2><div id="map"></div><p class="muted" data-i18n="onsite.hint"></p></section>
    <section class="card">
      <form id="i-form" class="row">
        <label><span data-i18n="onsite.name"></span><input id="i-name" required></label>
        <label><span>lon</span><input id="i-lon" type="number" step="0.0001" required size="9"></label>
        <label><span>lat</span><input id="i-lat" type="number" step="0.0001" required size="8"></label>
        <button type="submit" id="i-go" data-i18n="onsite.open"></button>
      </form>
      <div class="scroll" style="max-height:160px"><table id="incidents"><thead><tr><th>id</th><th data-i18n="onsite.name"></th><th data-i18n="col.time"></th></tr></thead><tbody></tbody></table></div>
      <div id="i-detail"></div>
    </section>
  </div>`;
  apply(el);
  const $ = (id) => el.querySelector("#" + id);
  $("i-go").disabled = !can("operator");
  const map = L.map("map", { attributionControl: false, zoomSnap: 0.25 });
  const cellsLayer = L.layerGroup().addTo(map), sectorLayer = L.layerGroup().addTo(map);
  const cells = await api("/grid/cells");
  const gj = L.geoJSON(cells, { style: { color: "#33414f", weight: 1, fillOpacity: 0.1 } }).addTo(cellsLayer);
  map.fitBounds(gj.getBounds());
  map.on("click", (e) => { $("i-lon").value = e.latlng.lng.toFixed(5); $("i-lat").value = e.latlng.lat.toFixed(5); });
  let selected = null;

  async function show(id) {
    selected = id;
    const inc = await api(`/incidents/${encodeURIComponent(id)}`);
    sectorLayer.clearLayers();
    const feats = inc.sector?.features ?? [];
    const kind = (k) => feats.filter((f) => f.properties.kind === k);
    L.geoJSON({ type: "FeatureCollection", features: kind("cell") }, { style: { color: "#b3261e", weight: 1, fillColor: "#f07f00", fillOpacity: 0.2, className: "sector-cell" } }).addTo(sectorLayer);
    L.geoJSON({ type: "FeatureCollection", features: kind("downwind_sector") }, { style: { color: "#b3261e", weight: 2, fillColor: "#d7191c", fillOpacity: 0.35, className: "sector" } }).addTo(sectorLayer);
    for (const u of kind("key_unit")) L.circleMarker([u.geometry.coordinates[1], u.geometry.coordinates[0]], { radius: 6, color: "#0b5cad", fillColor: "#fff", fillOpacity: 1, weight: 3, className: "sector-unit" }).bindTooltip(esc(u.properties.name)).addTo(sectorLayer);
    L.circleMarker([inc.lat, inc.lon], { radius: 8, color: "#b3261e", fillColor: "#ffeb3b", fillOpacity: 1, weight: 3, className: "incident" }).bindTooltip(esc(inc.name)).addTo(sectorLayer);
    const w = inc.wind ?? {};
    const p = kind("downwind_sector")[0]?.properties ?? {};
    $("i-detail").innerHTML = `<h3>${esc(inc.name)} <small>${esc(when(inc.opened))} · ${esc(inc.by)}</small></h3>
      ${inc.detail ? `<p class="error">${esc(inc.detail)}</p>` : ""}
      <div class="kv"><span data-i18n="onsite.wind"></span><span id="i-wind">${esc(fmt(w.from_deg, 0))}° · ${esc(fmt(w.speed_ms))} m/s · σθ ${esc(fmt(w.sigma_deg, 0))}° · ${esc(w.source ?? "—")}</span>
      <span data-i18n="onsite.sector"></span><span>±${esc(fmt(p.half_angle_deg, 0))}° · ${esc(fmt((p.range_m ?? 0) / 1000, 1))} km</span>
      <span data-i18n="onsite.cells"></span><span id="i-cells">${esc(kind("cell").map((c) => `${c.properties.code} ${c.properties.name}`).join(", ") || "—")}</span>
      <span data-i18n="onsite.units"></span><span id="i-units">${esc(kind("key_unit").map((u) => u.properties.name).join(", ") || "—")}</span></div>
      <form id="w-form" class="row"><label><span data-i18n="onsite.from"></span><input id="w-from" type="number" min="0" max="360" value="${esc(w.from_deg ?? 90)}" size="5"></label>
      <label><span>m/s</span><input id="w-speed" type="number" min="0" max="75" step="0.1" value="${esc(w.speed_ms ?? 3)}" size="5"></label>
      <label><span>σθ °</span><input id="w-sigma" type="number" min="0" max="180" value="${esc(w.sigma_deg ?? 15)}" size="5"></label>
      <button type="submit" id="w-go" data-i18n="onsite.setwind" ${can("operator") ? "" : "disabled"}></button></form>`;
    apply($("i-detail"));
    $("w-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { from_deg: Number($("w-from").value), speed_ms: Number($("w-speed").value), sigma_deg: Number($("w-sigma").value) };
      if (await act($("w-go"), () => api(`/incidents/${encodeURIComponent(id)}/wind`, { method: "PUT", body }))) await show(id);
    });
  }

  async function refresh() {
    const list = await api("/incidents");
    $("incidents").querySelector("tbody").innerHTML = list.map((i) => `<tr data-incident="${esc(i.id)}"><td><a href="#" data-show="${esc(i.id)}">${esc(i.id)}</a></td>
      <td>${esc(i.name)}</td><td>${esc(when(i.opened))}</td></tr>`).join("");
    if (selected) await show(selected);
  }
  el.addEventListener("click", (ev) => {
    const a = ev.target.closest("a[data-show]");
    if (a) { ev.preventDefault(); show(a.dataset.show); }
  });
  $("i-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = await act($("i-go"), () => api("/incidents", { method: "POST", body: { name: $("i-name").value, lon: Number($("i-lon").value), lat: Number($("i-lat").value) } }));
    if (out) { selected = out.id; await refresh(); }
  });
  await refresh();
  return {
    onChange: (topics) => (topics.includes("stations") && selected ? show(selected) : null),
    destroy: () => map.remove(),
  };
}
