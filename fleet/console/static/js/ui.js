// Small DOM helpers shared by the views.
import { t } from "./i18n.js";

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function toast(message, error = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = error ? "toast show error" : "toast show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.className = "toast"), 5000);
}

export function levelBadge(level) {
  return `<span class="badge level-${esc(level)}">${esc(t("level." + level))}</span>`;
}

export function healthBadge(health) {
  return `<span class="badge health-${esc(health)}">${esc(t("health." + health))}</span>`;
}

export function fmt(value, digits = 1) {
  return value === null || value === undefined || Number.isNaN(value) ? "—" : Number(value).toFixed(digits);
}

// Run an API call from a button: disable it meanwhile, show the error as a toast.
export async function act(button, fn, done) {
  button.disabled = true;
  try {
    const out = await fn();
    if (done) toast(done(out));
    return out;
  } catch (e) {
    toast(t("err.generic", { detail: e.detail ?? e.message }), true);
    return undefined;
  } finally {
    button.disabled = false;
  }
}
