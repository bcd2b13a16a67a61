// The fleet API from the console: session cookie, X-CSRF-Token on unsafe methods, JSON errors.
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
let me = null;

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

export function principal() {
  return me;
}

export function can(role) {
  const order = ["viewer", "operator", "approver", "admin"];
  const top = Math.max(-1, ...(me?.roles ?? []).map((r) => order.indexOf(r)));
  return order.indexOf(role) <= top;
}

export async function whoami() {
  try {
    me = await api("/console/api/me");
  } catch (e) {
    if (e.status === 401) me = null;
    else throw e;
  }
  return me;
}

export async function signin(name, password) {
  await api("/auth/login", { method: "POST", body: { name, password }, csrf: false });
  return whoami();
}

export async function signout() {
  try {
    await api("/auth/logout", { method: "POST" });
  } finally {
    me = null;
  }
}

function errorOf(status, body) {
  // {"code", "detail"}; FastAPI's own {"detail": [...]} for a malformed request
  let detail = body?.detail ?? `HTTP ${status}`;
  let code = body?.code ?? "http_" + status;
  if (detail && typeof detail === "object" && !Array.isArray(detail)) {
    code = detail.code ?? code;
    detail = detail.detail ?? JSON.stringify(detail);
  }
  if (Array.isArray(detail)) detail = detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return new ApiError(status, code, String(detail));
}

export async function api(path, { method = "GET", body, csrf = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method) && csrf && me?.csrf) headers["X-CSRF-Token"] = me.csrf;
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", String(e));
  }
  const text = await r.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (!r.ok) throw errorOf(r.status, data);
  return data;
}

// The same call, or null when the controller has no such route (an API another part provides).
export async function optional(path, opts) {
  try {
    return await api(path, opts);
  } catch (e) {
    if (e.status === 404 || e.status === 405) return null;
    throw e;
  }
}
