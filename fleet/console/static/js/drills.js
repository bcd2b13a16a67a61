// Drills: start and end a drill, raise Exercise warnings under it, and its report.
import { api, can } from "./api.js";
import { checkDrill } from "./app.js";
import { apply, t, when } from "./i18n.js";
import { act, esc } from "./ui.js";

export async function render(el) {
  el.innerHTML = `
  <section class="card"><h2 data-i18n="nav.drills"></h2>
    <form id="d-start" class="row"><label><span data-i18n="drill.name"></span><input id="d-name" required></label>
      <button type="submit" id="d-go" data-i18n="drill.start"></button></form>
    <div class="scroll" style="max-height:220px"><table id="drills"><thead><tr><th>id</th><th data-i18n="drill.name"></th><th data-i18n="drill.started"></th>
      <th data-i18n="drill.ended"></th><th></th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="card" id="d-warn-card" hidden><h3 data-i18n="drill.warning"></h3>
    <form id="d-warn" class="row"><label><span data-i18n="col.cell"></span><select id="d-cell"></select></label>
      <label><span data-i18n="col.level"></span><select id="d-level"><option value="IV">Ⅳ</option><option value="III" selected>Ⅲ</option><option value="II">Ⅱ</option><option value="I">Ⅰ</option></select></label>
      <button type="submit" id="d-warn-go" data-i18n="drill.raise"></button> <a href="#/warnings" data-i18n="nav.warnings"></a></form>
  </section>
  <section class="card" id="d-report" hidden></section>`;
  apply(el);
  const $ = (id) => el.querySelector("#" + id);
  $("d-go").disabled = $("d-warn-go").disabled = !can("operator");
  let active = null;

  async function report(id) {
    const r = await api(`/drills/${encodeURIComponent(id)}/report`);
    const box = $("d-report");
    box.hidden = false;
    box.innerHTML = `<h3>${esc(t("drill.report"))} · <span class="tag-drill">${esc(t("drill.tag"))}</span> ${esc(r.drill.id)} ${esc(r.drill.name)}</h3>
      <table id="d-messages"><thead><tr><th>id</th><th data-i18n="warn.identifier"></th><th data-i18n="col.state"></th><th data-i18n="drill.units"></th>
      <th data-i18n="warn.reached"></th><th data-i18n="warn.acked"></th><th data-i18n="drill.ack_delay"></th><th data-i18n="warn.unreached"></th></tr></thead>
      <tbody>${r.messages.map((m) => `<tr data-message="${esc(m.id)}"><td>${esc(m.id)}</td><td>${esc(m.identifier ?? "—")} (${esc(m.status)})</td>
      <td>${esc(t("state." + m.state))}</td><td>${m.units}</td><td>${m.reached}</td><td>${m.acknowledged}</td>
      <td>${m.ack_delay_s.length ? `${Math.round(m.ack_delay_s[Math.floor(m.ack_delay_s.length / 2)])} s` : "—"}</td><td>${esc(m.unreached.join(", "))}</td></tr>`).join("")}</tbody></table>`;
    apply(box);
  }

  async function refresh() {
    const [drills, cells] = await Promise.all([api("/drills"), api("/grid/cells")]);
    if (!$("d-cell").options.length) $("d-cell").innerHTML = cells.features.map((f) => `<option value="${esc(f.properties.code)}">${esc(f.properties.code)} ${esc(f.properties.name)}</option>`).join("");
    active = drills.filter((d) => !d.ended).sort((a, b) => b.started - a.started)[0] ?? null;
    $("d-warn-card").hidden = !active;
    $("drills").querySelector("tbody").innerHTML = drills.slice().sort((a, b) => b.started - a.started).map((d) => `<tr data-drill="${esc(d.id)}" data-active="${!d.ended}">
      <td>${esc(d.id)}</td><td>${esc(d.name)}</td><td>${esc(when(d.started))} ${esc(d.by)}</td><td>${d.ended ? esc(when(d.ended)) : "—"}</td>
      <td>${!d.ended ? `<button type="button" class="danger" data-end="${esc(d.id)}" ${can("operator") ? "" : "disabled"}>${esc(t("drill.end"))}</button>` : ""}
      <button type="button" class="secondary" data-report="${esc(d.id)}">${esc(t("drill.report"))}</button></td></tr>`).join("");
  }

  $("d-start").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (await act($("d-go"), () => api("/drills", { method: "POST", body: { name: $("d-name").value } }))) { await refresh(); checkDrill(); }
  });
  $("d-warn").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = await act($("d-warn-go"), () => api(`/drills/${encodeURIComponent(active.id)}/warnings`, { method: "POST", body: { cell: $("d-cell").value, level: $("d-level").value } }));
    if (out) await report(active.id);
  });
  el.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button[data-end], button[data-report]");
    if (!b) return;
    if (b.dataset.end) {
      if (await act(b, () => api(`/drills/${encodeURIComponent(b.dataset.end)}/end`, { method: "POST" }))) { await refresh(); checkDrill(); await report(b.dataset.end); }
    } else await report(b.dataset.report);
  });
  await refresh();
  if (active) await report(active.id);
  return { onChange: (topics) => (topics.includes("drill") || topics.includes("response") ? refresh() : null) };
}
