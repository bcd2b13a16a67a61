// Configuration: edit a scope's document with the push's own validation, diff, push or stage a
// rollout (canary group first), and watch each station's ack or nack.
import { api, can } from "./api.js";
import { apply, t, when } from "./i18n.js";
import { act, esc, toast } from "./ui.js";

const EXAMPLE = { warnings: { rainstorm: { levels: { blue: { rain_1h: 35 }, yellow: { rain_1h: 50 }, orange: { rain_1h: 80 }, red: { rain_1h: 100 } } } } };

// {"a.b.c": value} of a nested object
function flat(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj ?? {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flat(v, key, out);
    else out[key] = JSON.stringify(v);
  }
  return out;
}

export function diff(before, after) {
  const a = flat(before), b = flat(after);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.filter((k) => a[k] !== b[k]).map((k) => ({ key: k, before: a[k], after: b[k] }));
}

export async function render(el) {
  const operator = can("operator");
  el.innerHTML = `
  <div class="grid2">
    <section class="card"><h2 data-i18n="config.title"></h2>
      <form id="doc-form" class="col">
        <label><span data-i18n="config.scope"></span><input id="scope" value="fleet" required></label>
        <label style="display:flex"><span data-i18n="config.body"></span><textarea id="body" rows="12" spellcheck="false"></textarea></label>
        <div class="row">
          <button type="button" id="validate" class="secondary" data-i18n="config.validate"></button>
          <button type="button" id="push" data-i18n="config.push"></button>
          <label><span data-i18n="config.group"></span><input id="group" value="canary" size="10"></label>
          <button type="button" id="rollout" data-i18n="config.rollout"></button>
        </div>
        <p id="check" role="status" aria-live="polite"></p>
      </form>
      <h3 data-i18n="config.diff"></h3><div id="diff" class="scroll" style="max-height:200px"></div>
    </section>
    <section class="card"><h3 data-i18n="config.group"></h3>
      <div class="row"><label style="flex:1"><span data-i18n="config.group.members"></span><input id="members" style="width:100%"></label>
      <button type="button" id="save-group" data-i18n="config.group.save"></button></div>
      <h3 data-i18n="config.rollouts"></h3><div class="scroll" style="max-height:220px"><table id="rollouts"><thead><tr>
        <th>id</th><th data-i18n="col.scope"></th><th data-i18n="col.version"></th><th data-i18n="col.state"></th><th data-i18n="config.group"></th><th data-i18n="col.reason"></th></tr></thead><tbody></tbody></table></div>
      <h3 data-i18n="config.documents"></h3><div class="scroll" style="max-height:160px"><table id="docs"><thead><tr>
        <th data-i18n="col.scope"></th><th data-i18n="col.version"></th><th data-i18n="col.time"></th><th>hash</th></tr></thead><tbody></tbody></table></div>
    </section>
  </div>
  <section class="card"><h3 data-i18n="config.status"></h3><div class="scroll"><table id="status"><thead><tr>
    <th data-i18n="col.station"></th><th data-i18n="col.scope"></th><th data-i18n="col.version"></th><th>→</th><th data-i18n="col.state"></th><th data-i18n="col.reason"></th><th data-i18n="config.station_diff"></th></tr></thead><tbody></tbody></table></div></section>`;
  apply(el);
  for (const id of ["push", "rollout", "save-group", "validate"]) el.querySelector("#" + id).disabled = !operator;

  const $ = (id) => el.querySelector("#" + id);
  let current = null;
  let bodies = {}; // version -> body of the scope being edited

  function parsed() {
    try {
      return JSON.parse($("body").value);
    } catch (e) {
      $("check").className = "error";
      $("check").textContent = t("config.badjson", { detail: e.message });
      return null;
    }
  }

  async function showDiff() {
    const body = (() => { try { return JSON.parse($("body").value); } catch { return null; } })();
    const docs = await api(`/config/documents?scope=${encodeURIComponent($("scope").value)}`).catch(() => []);
    current = docs[0] ?? null;
    bodies = Object.fromEntries(docs.map((d) => [d.version, d.body]));
    const rows = body ? diff(current?.body ?? {}, body) : [];
    $("diff").innerHTML = `<p class="muted">${esc($("scope").value)} v${esc(current?.version ?? 0)} → v${esc((current?.version ?? 0) + 1)}</p>` +
      (rows.length ? `<table><tbody>${rows.map((r) => `<tr><th>${esc(r.key)}</th><td class="diff-del">${esc(r.before ?? "—")}</td><td class="diff-add">${esc(r.after ?? "—")}</td></tr>`).join("")}</tbody></table>` : `<p class="muted">${esc(t("common.none"))}</p>`);
  }

  async function validate() {
    const body = parsed();
    if (!body) return false;
    const r = await api("/console/api/validate", { method: "POST", body: { scope: $("scope").value, body } });
    $("check").className = r.ok ? "" : "error";
    $("check").textContent = r.ok ? t("config.ok") : r.detail;
    return r.ok;
  }

  async function refresh() {
    const [groups, rollouts, status, docs] = await Promise.all([api("/groups"), api("/rollouts"), api("/config/status"), api("/config/documents")]);
    if (document.activeElement !== $("members")) $("members").value = (groups[$("group").value] ?? []).join(", ");
    el.querySelector("#rollouts tbody").innerHTML = rollouts.map((r) => `<tr data-rollout="${esc(r.id)}" data-state="${esc(r.state)}">
      <td>${esc(r.id.slice(0, 8))}</td><td>${esc(r.scope)}</td><td>${esc(r.version)}</td><td>${esc(r.state)}</td><td>${esc(r.canaries.join(", "))}</td><td>${esc(r.reason)}</td></tr>`).join("");
    el.querySelector("#docs tbody").innerHTML = docs.slice(0, 50).map((d) => `<tr><td>${esc(d.scope)}</td><td>${esc(d.version)}</td><td>${esc(when(d.created))}</td><td>${esc(d.hash.slice(0, 12))}</td></tr>`).join("");
    lastStatus = status;
    drawStatus();
  }

  let lastStatus = [];
  function drawStatus() {
    const status = lastStatus;
    const scope = $("scope").value;
    const rows = status.flatMap((s) => s.scopes.filter((x) => x.scope === scope || scope === "").map((x) => ({ station: s.station, ...x })));
    let draft = null;
    try { draft = JSON.parse($("body").value); } catch { draft = null; }
    // what the draft would change on each station, against the version that station runs
    const against = (r) => {
      if (!draft) return "—";
      const changes = diff(bodies[r.reported_version] ?? {}, draft);
      return `<span title="${esc(changes.map((c) => `${c.key}: ${c.before ?? "—"} → ${c.after ?? "—"}`).join("\n"))}">${changes.length}</span>`;
    };
    el.querySelector("#status tbody").innerHTML = rows.map((r) => `<tr data-station="${esc(r.station)}" data-state="${esc(r.state)}" data-result="${esc(r.result ?? "")}">
      <td><a href="#/station/${encodeURIComponent(r.station)}">${esc(r.station)}</a></td><td>${esc(r.scope)}</td>
      <td>${esc(r.reported_version ?? "—")}</td><td>${esc(r.desired_version ?? "—")}</td>
      <td class="${r.state === "nacked" ? "error" : ""}">${esc(t("config.state." + r.state))}${r.result ? ` (${esc(r.result)})` : ""}</td><td>${esc(r.reason)}</td>
      <td data-changes>${against(r)}</td></tr>`).join("");
  }

  $("body").value = JSON.stringify(EXAMPLE, null, 2);
  const docs = await api("/config/documents?scope=fleet");
  if (docs[0]) $("body").value = JSON.stringify(docs[0].body, null, 2);
  $("body").addEventListener("input", async () => { await showDiff(); drawStatus(); });
  $("scope").addEventListener("change", () => { showDiff(); refresh(); });
  $("validate").addEventListener("click", () => act($("validate"), validate));
  $("push").addEventListener("click", () => act($("push"), async () => {
    if (!(await validate())) return;
    const d = await api("/config/documents", { method: "POST", body: { scope: $("scope").value, body: parsed() } });
    toast(t("config.pushed", { scope: d.scope, version: d.version }));
    await Promise.all([showDiff(), refresh()]);
  }));
  $("rollout").addEventListener("click", () => act($("rollout"), async () => {
    if (!(await validate())) return;
    const r = await api("/rollouts", { method: "POST", body: { scope: $("scope").value, body: parsed(), group: $("group").value } });
    toast(t("config.pushed", { scope: r.scope, version: r.version }));
    await Promise.all([showDiff(), refresh()]);
  }));
  $("save-group").addEventListener("click", () => act($("save-group"), async () => {
    const stations = $("members").value.split(",").map((s) => s.trim()).filter(Boolean);
    await api(`/groups/${encodeURIComponent($("group").value)}`, { method: "PUT", body: { stations } });
    await refresh();
  }));
  await Promise.all([showDiff(), refresh()]);
  let pending = null;
  return {
    onChange(topics) {
      if (pending || !topics.includes("config")) return;
      pending = refresh().finally(() => (pending = null));
    },
  };
}
