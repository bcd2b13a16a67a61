// Warnings & response board: per cell proposed and confirmed levels, checklist, evidence; compose,
// approve (never one's own), publish in one click with a CAP preview, update, cancel; delivery and
// acknowledgement per key unit, unreached units, escalations; channel health and link tests.
import { api, can, principal } from "./api.js";
import { apply, t, when } from "./i18n.js";
import { act, esc, levelBadge, toast } from "./ui.js";

const COLOUR = { IV: "blue", III: "yellow", II: "orange", I: "red" };
const NUMERAL = { IV: "Ⅳ", III: "Ⅲ", II: "Ⅱ", I: "Ⅰ" };
const lv = (level) => (level ? `${levelBadge(COLOUR[level])} ${NUMERAL[level]}` : levelBadge("none"));
const drillTag = (m) => (m.status === "Exercise" || m.drill ? ` <span class="tag-drill">${esc(t("drill.tag"))}</span>` : "");

export async function render(el) {
  el.innerHTML = `
  <div class="grid2">
    <section class="card"><h2 data-i18n="warn.cells"></h2>
      <div class="scroll" style="max-height:340px"><table id="cells"><thead><tr><th data-i18n="col.cell"></th><th data-i18n="warn.proposed"></th>
      <th data-i18n="warn.confirmed"></th><th data-i18n="warn.evidence"></th><th></th></tr></thead><tbody></tbody></table></div>
      <h3 data-i18n="warn.actions"></h3><div class="scroll" style="max-height:220px"><table id="actions"><thead><tr><th data-i18n="col.cell"></th>
      <th data-i18n="col.action"></th><th data-i18n="col.state"></th><th data-i18n="warn.times"></th><th></th></tr></thead><tbody></tbody></table></div>
    </section>
    <section class="card"><h2 data-i18n="warn.compose"></h2>
      <form id="compose" class="row">
        <label><span data-i18n="col.cell"></span><select id="w-cells" multiple size="4" required></select></label>
        <label><span data-i18n="col.signal"></span><select id="w-signal">${["rainstorm", "waterlogging", "gale", "thunderstorm"].map((s) => `<option value="${s}" data-i18n="signal.${s}"></option>`).join("")}</select></label>
        <label><span data-i18n="col.level"></span><select id="w-level">${Object.keys(COLOUR).map((l) => `<option value="${l}">${NUMERAL[l]} · ${esc(t("level." + COLOUR[l]))}</option>`).join("")}</select></label>
        <label><span data-i18n="warn.certainty"></span><select id="w-certainty"><option>Observed</option><option>Likely</option><option>Possible</option></select></label>
        <label style="flex:1"><span data-i18n="warn.description_zh"></span><input id="w-zh"></label>
        <label style="flex:1"><span data-i18n="warn.description_en"></span><input id="w-en"></label>
        <button type="submit" id="w-draft" data-i18n="warn.draft"></button>
      </form>
      <h3 data-i18n="warn.channels"></h3>
      <div class="row"><button type="button" id="linktest" class="secondary" data-i18n="warn.linktest"></button></div>
      <table id="channels"><thead><tr><th data-i18n="warn.channel"></th><th data-i18n="col.kind"></th><th data-i18n="warn.mode"></th><th data-i18n="warn.lasttest"></th></tr></thead><tbody></tbody></table>
      <h3 data-i18n="warn.dead"></h3>
      <table id="dead"><thead><tr><th data-i18n="warn.channel"></th><th data-i18n="warn.unit"></th><th data-i18n="warn.attempts"></th><th data-i18n="warn.failed"></th><th></th></tr></thead><tbody></tbody></table>
    </section>
  </div>
  <section class="card"><h2 data-i18n="warn.messages"></h2><div class="scroll" style="max-height:300px"><table id="messages"><thead><tr>
    <th>id</th><th data-i18n="warn.identifier"></th><th data-i18n="col.kind"></th><th data-i18n="col.state"></th><th data-i18n="col.cell"></th>
    <th data-i18n="col.level"></th><th data-i18n="warn.author"></th><th data-i18n="warn.approver"></th><th></th></tr></thead><tbody></tbody></table></div></section>
  <div class="grid2">
    <section class="card"><h3 data-i18n="warn.preview"></h3><p id="p-check" role="status"></p><pre id="preview" class="cap" tabindex="0"></pre></section>
    <section class="card"><h3 data-i18n="warn.deliveries"></h3><div id="d-channels" class="muted"></div>
      <div class="scroll" style="max-height:240px"><table id="units"><thead><tr><th data-i18n="warn.unit"></th><th data-i18n="warn.reached"></th>
      <th data-i18n="warn.acked"></th><th data-i18n="warn.escalated"></th><th data-i18n="warn.failed"></th></tr></thead><tbody></tbody></table></div>
      <h3 data-i18n="warn.unreached"></h3><ul id="unreached"></ul></section>
  </div>`;
  apply(el);
  const $ = (id) => el.querySelector("#" + id);
  const me = principal();
  let selected = null;

  async function cells() {
    const [proposals, actions, cellsGeo] = await Promise.all([api("/grid/proposals"), api("/grid/actions"), api("/grid/cells")]);
    const names = Object.fromEntries(cellsGeo.features.map((f) => [f.properties.code, f.properties.name]));
    const confirmed = {};
    await Promise.all(proposals.filter((p) => p.level).map(async (p) => {
      const c = await api(`/grid/cells/${encodeURIComponent(p.cell)}`);
      confirmed[p.cell] = c.decisions.at(-1) ?? null;
    }));
    if (!$("w-cells").options.length)
      $("w-cells").innerHTML = cellsGeo.features.map((f) => `<option value="${esc(f.properties.code)}">${esc(f.properties.code)} ${esc(f.properties.name)}</option>`).join("");
    $("cells").querySelector("tbody").innerHTML = proposals.map((p) => {
      const d = confirmed[p.cell];
      const evidence = [...(p.reasons ?? []), ...(p.signals ?? []).map((s) => `${s.signal} ${s.colour} (${s.source}, ${s.certainty})`)];
      return `<tr data-cell="${esc(p.cell)}" data-proposed="${esc(p.level ?? "")}" data-confirmed="${esc(d?.level ?? "")}">
        <td>${esc(p.cell)} ${esc(names[p.cell] ?? "")}</td><td>${lv(p.level)}${p.forecast_only ? ` <small>${esc(t("warn.forecast_only"))}</small>` : ""}</td>
        <td>${d ? `${lv(d.level)} <small>${esc(d.by)} ${esc(when(d.time))}</small>` : "—"}</td>
        <td><small>${esc(evidence.join("; "))}</small></td>
        <td>${p.level ? `<button type="button" class="secondary" data-from="${esc(p.cell)}" ${can("operator") ? "" : "disabled"}>${esc(t("warn.draft_from"))}</button>
          <button type="button" class="secondary" data-confirm="${esc(p.cell)}" data-level="${esc(p.level)}" ${can("approver") ? "" : "disabled"}>${esc(t("warn.confirm"))} ${NUMERAL[p.level]}</button>` : ""}</td></tr>`;
    }).join("");
    $("actions").querySelector("tbody").innerHTML = actions.filter((a) => a.state !== "done" || Date.now() / 1000 - (a.done ?? 0) < 86400).map((a) => `
      <tr data-action="${esc(a.id)}" data-state="${esc(a.state)}"><td>${esc(a.cell)}</td><td>${esc(a.label)}</td><td>${esc(t("action." + a.state))}</td>
      <td><small>${[a.assigned, a.acknowledged, a.done].map((x) => (x ? when(x) : "—")).join(" / ")} ${esc(a.assignee ?? "")}</small></td>
      <td>${a.state === "assigned" ? `<button type="button" class="secondary" data-advance="${esc(a.id)}" data-to="acknowledged">${esc(t("action.acknowledged"))}</button>` : ""}
      ${a.state !== "done" ? `<button type="button" class="secondary" data-advance="${esc(a.id)}" data-to="done">${esc(t("action.done"))}</button>` : ""}</td></tr>`).join("");
  }

  async function channels() {
    const [list, dead] = await Promise.all([api("/channels"), api("/channels/dead-letters")]);
    $("dead").querySelector("tbody").innerHTML = dead.map((r) => `<tr data-dead="${esc(r.id)}"><td>${esc(r.channel)}</td><td>${esc(r.unit ?? r.target)}</td>
      <td>${esc(r.attempts)}</td><td class="error">${esc(r.last_error)}</td>
      <td><button type="button" class="secondary" data-retry="${esc(r.id)}" ${can("operator") ? "" : "disabled"}>${esc(t("warn.retry"))}</button></td></tr>`).join("")
      || `<tr><td colspan="5" class="muted">${esc(t("common.none"))}</td></tr>`;
    $("channels").querySelector("tbody").innerHTML = list.map((c) => `<tr data-channel="${esc(c.name)}" data-ok="${c.last_test ? c.last_test.ok : ""}">
      <td>${esc(c.name)}</td><td>${esc(c.kind)}</td><td>${esc(c.mode)}</td>
      <td class="${c.last_test && !c.last_test.ok ? "error" : ""}">${c.last_test ? `${c.last_test.ok ? "✔" : "✘"} ${esc(when(c.last_test.time))} ${esc(c.last_test.detail)}` : "—"}</td></tr>`).join("")
      || `<tr><td colspan="4" class="muted">${esc(t("common.none"))}</td></tr>`;
  }

  async function messages() {
    const list = await api("/warnings");
    $("messages").querySelector("tbody").innerHTML = list.slice().reverse().map((m) => {
      const own = m.author === me.name;
      const buttons = [];
      if (m.state === "draft" || m.state === "pending")
        buttons.push(`<button type="button" data-approve="${esc(m.id)}" ${can("approver") && !own ? "" : "disabled"} title="${own ? esc(t("warn.not_own")) : ""}">${esc(t("warn.approve"))}</button>`,
          `<button type="button" class="secondary" data-reject="${esc(m.id)}" ${can("approver") ? "" : "disabled"}>${esc(t("warn.reject"))}</button>`);
      if (m.state === "approved") buttons.push(`<button type="button" data-publish="${esc(m.id)}" ${can("operator") ? "" : "disabled"}>${esc(t("warn.publish"))}</button>`);
      if (m.state === "published" && m.msg_type !== "Cancel")
        buttons.push(`<button type="button" class="secondary" data-update="${esc(m.id)}" ${can("operator") ? "" : "disabled"}>${esc(t("warn.update"))}</button>`,
          `<button type="button" class="danger" data-cancel="${esc(m.id)}" ${can("operator") ? "" : "disabled"}>${esc(t("warn.cancel"))}</button>`);
      return `<tr data-message="${esc(m.id)}" data-state="${esc(m.state)}" data-status="${esc(m.status)}" class="${m.id === selected ? "selected" : ""}">
        <td><a href="#" data-select="${esc(m.id)}">${esc(m.id)}</a>${drillTag(m)}</td><td><small>${esc(m.identifier ?? "—")}</small></td>
        <td>${esc(m.msg_type)} · ${esc(m.status)}</td><td>${esc(t("state." + m.state))}</td><td>${esc(m.cells.join(", "))}</td>
        <td>${lv(m.content.level)} ${esc(m.content.signal)}</td><td>${esc(m.author)}</td><td>${esc(m.approver ?? "—")}</td><td>${buttons.join(" ")}</td></tr>`;
    }).join("");
    if (selected) await details(selected);
  }

  async function details(key) {
    selected = key;
    const [preview, deliveries, unreached] = await Promise.all([
      api(`/console/api/warnings/${encodeURIComponent(key)}/preview`),
      api(`/warnings/${encodeURIComponent(key)}/deliveries`),
      api(`/units/unreached?message=${encodeURIComponent(key)}`),
    ]);
    $("preview").textContent = preview.xml;
    $("p-check").className = preview.valid ? "" : "error";
    $("p-check").textContent = (preview.status === "Exercise" ? `${t("drill.tag")} · ` : "") + (preview.valid ? t("warn.cap_valid") : preview.detail);
    $("d-channels").textContent = Object.entries(deliveries.channels).map(([c, s]) => `${c}: ${Object.entries(s).map(([k, n]) => `${k} ${n}`).join(", ")}`).join(" · ");
    $("units").querySelector("tbody").innerHTML = Object.values(deliveries.units).map((u) => `
      <tr data-unit="${esc(u.unit)}" data-acked="${u.acknowledged ? "yes" : "no"}"><td>${esc(u.unit)}</td><td>${esc(u.reached_by.join(", ") || "—")}</td>
      <td>${u.acknowledged ? `✔ ${esc(when(u.acknowledged))} (${esc(u.ack_via)})` : "—"}</td><td>${u.escalated ? "⚠" : ""}</td>
      <td class="error">${esc(u.failed.join("; "))}</td></tr>`).join("");
    $("unreached").innerHTML = unreached.map((u) => `<li data-unreached="${esc(u.unit)}">${esc(u.unit)}</li>`).join("") || `<li class="muted">${esc(t("common.none"))}</li>`;
  }

  async function refresh() {
    await Promise.all([cells(), messages(), channels()]);
  }

  el.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button, a[data-select]");
    if (!b) return;
    const d = b.dataset;
    if (d.select) { ev.preventDefault(); return details(d.select); }
    const call = (path, body) => act(b, () => api(path, { method: "POST", body }));
    let out;
    if (d.from) out = await call(`/warnings/from-cell/${encodeURIComponent(d.from)}`);
    else if (d.confirm) out = await call(`/grid/cells/${encodeURIComponent(d.confirm)}/decision`, { level: d.level, note: "" });
    else if (d.advance) out = await call(`/grid/actions/${encodeURIComponent(d.advance)}`, { state: d.to });
    else if (d.approve) out = await call(`/warnings/${encodeURIComponent(d.approve)}/approve`);
    else if (d.reject) out = await call(`/warnings/${encodeURIComponent(d.reject)}/reject`);
    else if (d.publish) {
      out = await call(`/warnings/${encodeURIComponent(d.publish)}/publish`);
      if (out) { selected = out.message.id; toast(t("warn.published", { id: out.message.identifier })); }
    } else if (d.update) out = await call(`/warnings/${encodeURIComponent(d.update)}/update`, {});
    else if (d.cancel) out = await call(`/warnings/${encodeURIComponent(d.cancel)}/cancel`);
    else if (d.retry) out = await call(`/channels/dead-letters/${encodeURIComponent(d.retry)}/retry`);
    else if (b.id === "linktest") {
      out = await call("/channels/test?mode=" + (document.body.classList.contains("drill") ? "drill" : "live"));
      if (out) toast(out.map((r) => `${r.channel ?? r.name}: ${r.ok ? "ok" : r.detail}`).join(" · ") || t("common.none"), out.some((r) => !r.ok));
    } else return;
    if (out && out.id && !d.publish) selected = out.id;
    if (out !== undefined) await refresh();
  });
  $("compose").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const cellsPicked = [...$("w-cells").selectedOptions].map((o) => o.value);
    const out = await act($("w-draft"), () => api("/warnings", { method: "POST", body: {
      cells: cellsPicked, signal: $("w-signal").value, level: $("w-level").value, certainty: $("w-certainty").value,
      description_zh: $("w-zh").value, description_en: $("w-en").value } }));
    if (out) { selected = out.id; await refresh(); }
  });
  $("w-draft").disabled = !can("operator");
  $("linktest").disabled = !can("operator");
  await refresh();
  let pending = null;
  return {
    onChange(topics) {
      if (pending || !topics.some((x) => ["response", "events"].includes(x))) return;
      pending = refresh().finally(() => (pending = null));
    },
  };
}
