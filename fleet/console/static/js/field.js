// Field report (phone-sized): location from the phone, depth class, photo, note -> POST /reports.
import { api, principal, signin, whoami } from "./api.js";
import * as i18n from "./i18n.js";
import { t } from "./i18n.js";
import { esc, toast } from "./ui.js";

const DEPTHS = ["none", "<15cm", "15-30cm", ">30cm"];

function form(el) {
  el.innerHTML = `<form id="report" class="card field-form">
    <fieldset><legend data-i18n="field.depth"></legend>
      ${DEPTHS.map((d, i) => `<label class="choice"><input type="radio" name="depth" value="${esc(d)}" ${i === 2 ? "checked" : ""}> <span data-i18n="field.depth.${i}"></span></label>`).join("")}
    </fieldset>
    <div class="row"><button type="button" id="locate" class="secondary" data-i18n="field.locate"></button><span id="where" class="muted"></span></div>
    <div class="row"><label><span>lon</span><input id="lon" type="number" step="0.00001" required></label><label><span>lat</span><input id="lat" type="number" step="0.00001" required></label></div>
    <label><span data-i18n="field.photo"></span><input id="photo" type="file" accept="image/jpeg,image/png" capture="environment"></label>
    <label><span data-i18n="field.note"></span><textarea id="note" rows="3" maxlength="2000"></textarea></label>
    <button type="submit" id="send" data-i18n="field.send"></button>
    <p id="result" role="status" aria-live="polite"></p></form>`;
  i18n.apply(el);
  const $ = (id) => el.querySelector("#" + id);
  $("locate").addEventListener("click", () => {
    if (!navigator.geolocation) return ($("where").textContent = t("field.nogeo"));
    navigator.geolocation.getCurrentPosition(
      (p) => { $("lon").value = p.coords.longitude.toFixed(5); $("lat").value = p.coords.latitude.toFixed(5); $("where").textContent = `±${Math.round(p.coords.accuracy)} m`; },
      (e) => ($("where").textContent = t("field.nogeo") + ` (${e.message})`), { enableHighAccuracy: true, timeout: 15000 });
  });
  $("locate").click();
  $("report").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("send").disabled = true;
    try {
      const file = $("photo").files[0];
      const photo = file ? await new Promise((ok, fail) => { const r = new FileReader(); r.onload = () => ok(String(r.result).split(",")[1]); r.onerror = fail; r.readAsDataURL(file); }) : null;
      const out = await api("/reports", { method: "POST", body: { lon: Number($("lon").value), lat: Number($("lat").value), depth_class: el.querySelector("input[name=depth]:checked").value, note: $("note").value, photo_base64: photo } });
      $("result").className = "";
      $("result").textContent = t("field.sent", { id: out.id, cell: out.cell });
      document.body.dataset.sent = out.id;
    } catch (e) {
      $("result").className = "error";
      $("result").textContent = t("err.generic", { detail: e.detail ?? e.message });
    } finally {
      $("send").disabled = false;
    }
  });
}

function signinForm(el) {
  el.innerHTML = `<form id="signin" class="card signin"><label><span data-i18n="auth.user"></span><input name="name" autocomplete="username" required></label>
    <label><span data-i18n="auth.password"></span><input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" data-i18n="auth.signin"></button><p id="signin-error" class="error" role="alert"></p></form>`;
  i18n.apply(el);
  const f = el.querySelector("#signin");
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await signin(f.name.value, f.password.value); start(); }
    catch (e) { el.querySelector("#signin-error").textContent = t("auth.failed", { detail: e.detail ?? e.message }); }
  });
}

async function start() {
  const el = document.getElementById("view");
  await whoami();
  const me = principal();
  document.getElementById("who").textContent = me ? me.name : "";
  i18n.apply(document);
  if (!me) signinForm(el);
  else {
    form(el);
    try {
      const d = (await api("/console/api/drill")).active;
      const banner = document.getElementById("drill-banner");
      banner.hidden = !d;
      banner.textContent = d ? `${t("drill.banner")} · ${d.id}` : "";
      document.body.classList.toggle("drill", !!d);
    } catch (e) { toast(e.detail ?? e.message, true); }
  }
  document.body.dataset.ready = me ? "field" : "signin";
}

await i18n.load();
document.getElementById("lang").addEventListener("click", async () => { await i18n.load(i18n.current() === "zh-CN" ? "en" : "zh-CN"); start(); });
start();
