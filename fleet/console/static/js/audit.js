// Audit log: every push, rollout, warning, approval and publication, who and when (admin only).
import { api } from "./api.js";
import { apply, t, when } from "./i18n.js";
import { esc } from "./ui.js";

export async function render(el) {
  el.innerHTML = `<section class="card"><h2 data-i18n="audit.title"></h2>
    <div class="filters"><label><span data-i18n="district.filter.text"></span><input id="a-filter" type="search"></label></div>
    <p id="a-error" class="error" role="alert"></p>
    <div class="scroll"><table id="audit"><thead><tr><th data-i18n="col.time"></th><th data-i18n="col.who"></th><th>via</th>
    <th data-i18n="col.action"></th><th data-i18n="col.target"></th><th data-i18n="col.detail"></th></tr></thead><tbody></tbody></table></div></section>`;
  apply(el);
  let rows = [];
  const draw = () => {
    const f = el.querySelector("#a-filter").value.toLowerCase();
    el.querySelector("#audit tbody").innerHTML = rows.filter((r) => !f || JSON.stringify(r).toLowerCase().includes(f)).reverse().map((r) => `
      <tr data-action="${esc(r.action)}"><td>${esc(when(r.time))}</td><td>${esc(r.principal)}</td><td>${esc(r.via)}</td><td>${esc(r.action)}</td>
      <td>${esc(r.target)}</td><td><code>${esc(JSON.stringify(r.detail))}</code></td></tr>`).join("");
  };
  async function refresh() {
    try {
      rows = await api("/audit?limit=1000");
      el.querySelector("#a-error").textContent = "";
    } catch (e) {
      el.querySelector("#a-error").textContent = t("auth.forbidden", { detail: e.detail });
    }
    draw();
  }
  el.querySelector("#a-filter").addEventListener("input", draw);
  await refresh();
  return { onChange: (topics) => topics.includes("config") || topics.includes("response") ? refresh() : null };
}
