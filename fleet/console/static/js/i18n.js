// Catalogues zh-CN (default for this district) and en; ?lang= or the saved choice overrides.
export const LANGS = ["zh-CN", "en"];
const KEY = "roadside.lang";
let lang = "zh-CN";
let catalogue = {};

export function current() {
  return lang;
}

export async function load(wanted) {
  const url = new URL(location.href).searchParams.get("lang");
  const pick = [wanted, url, localStorage.getItem(KEY), "zh-CN"].find((l) => LANGS.includes(l));
  const r = await fetch(`/console/static/i18n/${pick}.json`);
  catalogue = await r.json();
  lang = pick;
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
  return lang;
}

export function t(key, vars = {}) {
  const text = catalogue[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

// Fill [data-i18n] text, [data-i18n-placeholder] and [data-i18n-label] (aria-label) under root.
export function apply(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]"))
    el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-label]"))
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}

export function ago(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return t("ago.s", { n: s });
  if (s < 7200) return t("ago.m", { n: Math.round(s / 60) });
  if (s < 172800) return t("ago.h", { n: Math.round(s / 3600) });
  return t("ago.d", { n: Math.round(s / 86400) });
}

export function when(epochOrIso) {
  const d = typeof epochOrIso === "number" ? new Date(epochOrIso * 1000) : new Date(epochOrIso);
  return d.toLocaleString(lang, { hour12: false });
}
