// The console's shell: language, sign-in, hash routes, the live feed and the drill banner.
import { api, principal, signin, signout, whoami } from "./api.js";
import * as i18n from "./i18n.js";
import { t } from "./i18n.js";
import { esc, toast } from "./ui.js";

const ROUTES = {
  district: () => import("./district.js"),
  station: () => import("./station.js"),
  warnings: () => import("./warnings.js"),
  onsite: () => import("./onsite.js"),
  drills: () => import("./drills.js"),
  report: () => import("./report.js"),
  config: () => import("./config.js"),
  audit: () => import("./audit.js"),
};

let view = null; // {onChange(topics), destroy()}
let feed = null;

function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "district").split("/");
  return { name: ROUTES[name] ? name : "district", params: rest.map(decodeURIComponent) };
}

async function show() {
  const el = document.getElementById("view");
  view?.destroy?.();
  view = null;
  document.body.dataset.ready = "";
  if (!principal()) return showSignin(el);
  const { name, params } = route();
  for (const a of document.querySelectorAll("#nav a"))
    a.setAttribute("aria-current", a.getAttribute("href") === `#/${name}` ? "page" : "false");
  el.innerHTML = `<p class="muted">${esc(t("common.loading"))}</p>`;
  try {
    const mod = await ROUTES[name]();
    view = await mod.render(el, params);
  } catch (e) {
    el.innerHTML = `<p class="error" role="alert">${esc(t("err.generic", { detail: e.detail ?? e.message }))}</p>`;
  }
  document.body.dataset.ready = name;
  window.__readyAt = performance.now(); // first render of this view (the console benchmark)
}

function showSignin(el) {
  el.innerHTML = `
  <form id="signin" class="card signin" autocomplete="on">
    <h2 data-i18n="auth.signin"></h2>
    <label><span data-i18n="auth.user"></span><input name="name" autocomplete="username" required></label>
    <label><span data-i18n="auth.password"></span><input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" data-i18n="auth.signin"></button>
    <p id="signin-error" class="error" role="alert"></p>
  </form>`;
  i18n.apply(el);
  const form = el.querySelector("#signin");
  form.name.focus();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await signin(form.name.value, form.password.value);
      await started();
    } catch (e) {
      el.querySelector("#signin-error").textContent = t("auth.failed", { detail: e.detail ?? e.message });
    }
  });
  document.body.dataset.ready = "signin";
}

function chrome() {
  const me = principal();
  document.getElementById("nav").hidden = !me;
  document.getElementById("signout").hidden = !me;
  document.getElementById("who").textContent = me ? t("auth.as", { name: me.name, roles: me.roles.join(", ") }) : "";
  i18n.apply(document);
  document.title = t("app.title");
}

// The drill banner: on every page while a drill runs; the body carries class "drill" for styling.
export async function checkDrill() {
  let drill = null;
  try {
    const state = await api("/console/api/drill");
    drill = state.active;
  } catch {
    drill = null;
  }
  const banner = document.getElementById("drill-banner");
  banner.hidden = !drill;
  document.body.classList.toggle("drill", !!drill);
  banner.textContent = drill ? `${t("drill.banner")} · ${drill.id ?? ""} ${drill.name ?? ""}` : "";
}

function connect() {
  feed?.close();
  const live = document.getElementById("live");
  feed = new EventSource("/console/events");
  feed.addEventListener("open", () => {
    live.textContent = t("live.connected");
    live.className = "live on";
  });
  feed.addEventListener("error", () => {
    live.textContent = t("live.reconnecting");
    live.className = "live off";
    // EventSource retries on its own (retry: from the server); a closed stream means 401 or a
    // restart it gave up on: check the session, then open a new one.
    if (feed.readyState === EventSource.CLOSED)
      setTimeout(async () => ((await whoami()) ? connect() : started()), 2000);
  });
  feed.addEventListener("change", (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.topics.includes("drill")) checkDrill();
    if (!msg.first) view?.onChange?.(msg.topics);
    else view?.onChange?.(["stations", "events", "config", "response", "drill"]);
  });
}

async function started() {
  await whoami();
  chrome();
  if (principal()) {
    connect();
    checkDrill();
  } else feed?.close();
  await show();
}

async function main() {
  await i18n.load();
  document.getElementById("lang").addEventListener("click", async () => {
    await i18n.load(i18n.current() === "zh-CN" ? "en" : "zh-CN");
    chrome();
    await show();
  });
  document.getElementById("signout").addEventListener("click", async () => {
    try {
      await signout();
    } catch (e) {
      toast(e.detail ?? e.message, true);
    }
    await started();
  });
  window.addEventListener("hashchange", show);
  // a page kept in the back-forward cache must not hold its stream open (browsers allow six
  // connections per host: held streams would stall every later request)
  window.addEventListener("pagehide", () => feed?.close());
  window.addEventListener("pageshow", (ev) => ev.persisted && principal() && connect());
  await started();
}

main();
