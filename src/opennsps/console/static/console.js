// The OpenNSPS console: one page over the management API (/api/v1), with the session
// cookie and the session's CSRF token. The server enforces every role; the page only
// hides what the user's role cannot do.
"use strict";

const RANK = { viewer: 0, operator: 1, admin: 2 };
const state = { session: null, timers: [], paused: false, noticeAt: 0 };

// -- small helpers --------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function present(children) {
  return children.flat().filter((c) => c !== null && c !== undefined && c !== false);
}

function fill(el, ...children) {
  el.replaceChildren(...present(children));
}

function add(el, ...children) {
  el.append(...present(children));
}

// A list that a newer request may overtake: only the newest answer is shown.
function newestOnly() {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}

function can(role) {
  return state.session && RANK[state.session.role] >= RANK[role];
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "none";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function deadCount(n) {
  return `${n} dead ${n === 1 ? "delivery" : "deliveries"}`;
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

const OUTCOME_CLASS = {
  delivered: "ok", waiting: "idle", retry: "warn", pending: "warn", in_flight: "idle", skipped: "idle",
  rejected: "bad", dead: "bad", unrouted: "idle", enabled: "ok", disabled: "idle",
  archived: "idle", paused: "warn",
};

function badge(text, kind) {
  return h("span", { class: `badge ${kind || OUTCOME_CLASS[text] || "idle"}` }, text);
}

function notice(message, isError) {
  state.noticeAt = message ? Date.now() : 0;
  const box = document.getElementById("notice");
  box.textContent = message;
  box.className = isError ? "error" : "";
  box.hidden = !message;
  if (message && !isError) setTimeout(() => { if (box.textContent === message) box.hidden = true; }, 5000);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf;
  const answer = await fetch(path.startsWith("/") ? path : `/api/v1/${path}`, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let parsed = null;
  const text = await answer.text();
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = { message: text }; }
  }
  if (answer.status === 401 && state.session && !path.startsWith("/console/login")) {
    state.session = null;
    showLogin((parsed && parsed.message) || "Your session ended: log in again.");
    throw new ApiError(401, parsed);
  }
  if (!answer.ok) throw new ApiError(answer.status, parsed);
  return parsed;
}

async function act(label, call) {
  try {
    const result = await call();
    notice(label(result));
    return result;
  } catch (err) {
    if (err.status !== 401) notice(err.message, true);
    return null;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) q.set(key, value);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

function localToIso(value) {
  return value ? new Date(value + "Z").toISOString() : "";
}

// Runs fn now and every ms while `owner` (the page that asked) is still shown.
function every(ms, fn, owner) {
  if (owner && !owner.isConnected) return;
  fn();
  const timer = setInterval(() => {
    if (owner && !owner.isConnected) clearInterval(timer);
    else fn();
  }, ms);
  state.timers.push(timer);
}

function stopTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
}

function field(labelText, ...children) {
  return h("label", {}, labelText, ...children);
}

function formValues(form) {
  const values = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    values[el.name] = el.type === "checkbox" ? el.checked : el.value.trim();
  }
  return values;
}

// Filters live in the page's URL (#/logs?i_account=100001): a view can be shared, reloaded
// and returned to with Back.
function prefill(form, params) {
  for (const el of form.elements) {
    if (el.name && params.has(el.name)) el.value = params.get(el.name);
  }
}

function keepInUrl(form) {
  const chosen = Object.entries(formValues(form)).filter(([, value]) => value !== "" && value !== false);
  const base = location.hash.split("?")[0] || "#/";
  const search = new URLSearchParams(chosen).toString();
  history.replaceState(null, "", search ? `${base}?${search}` : base);
}

function accountLog(i_account) {
  if (i_account === null || i_account === undefined || i_account === "") return "";
  return h("a", {
    href: `#/logs?i_account=${encodeURIComponent(i_account)}`,
    title: `Execution log of account ${i_account}`,
    onclick: (e) => e.stopPropagation(),
  }, String(i_account));
}

function pagerButtons(before, nextBefore, load) {
  const buttons = [];
  if (before) buttons.push(h("button", { type: "button", onclick: () => load(null) }, "Newest"));
  if (nextBefore) buttons.push(h("button", { type: "button", onclick: () => load(nextBefore) }, "Older"));
  return buttons;
}

// -- session --------------------------------------------------------------------------

function showLogin(message) {
  stopTimers();
  document.getElementById("top").hidden = true;
  document.getElementById("paused-banner").hidden = true;
  const error = h("p", { class: "error-text", role: "alert" }, message || "");
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const values = formValues(form);
      try {
        state.session = await api("POST", "/console/login", {
          username: values.username, password: values.password,
        });
        if (!location.hash || location.hash === "#/login") location.hash = "#/dashboard";
        start();
      } catch (err) {
        error.textContent = err.message;
      }
    },
  },
    field("User name", h("input", { name: "username", autocomplete: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit", class: "primary" }, "Log in"),
    error,
  );
  const view = document.getElementById("view");
  fill(view, h("section", { class: "login panel" }, h("h1", {}, "OpenNSPS console"), form));
  form.elements.username.focus();
}

async function refreshPause() {
  try {
    const [pause, handlers] = await Promise.all([api("GET", "pause"), api("GET", "handlers")]);
    state.paused = pause.paused;
    const pausedHandlers = handlers.filter((x) => x.paused).map((x) => x.id);
    const banner = document.getElementById("paused-banner");
    const parts = [];
    if (pause.paused) parts.push("Processing is paused (maintenance mode): ESPF events are accepted and stored, nothing is delivered until it is resumed.");
    if (pausedHandlers.length) parts.push(`Paused handlers: ${pausedHandlers.join(", ")}.`);
    banner.textContent = parts.join(" ");
    banner.hidden = parts.length === 0;
    const button = document.getElementById("pause-all");
    button.textContent = pause.paused ? "Resume all processing" : "Pause all processing";
  } catch {
    // the next refresh tries again
  }
}

function start() {
  document.getElementById("top").hidden = false;
  document.getElementById("who").textContent = `${state.session.user} (${state.session.role})`;
  for (const el of document.querySelectorAll(".operator-only")) el.hidden = !can("operator");
  route();
}

// -- router ---------------------------------------------------------------------------

const ROUTES = {
  dashboard: dashboardPage,
  handlers: handlersPage,
  logs: logsPage,
  events: eventsPage,
  dead: deadPage,
  rejected: rejectedPage,
};

function route() {
  if (!state.session) return;
  stopTimers();
  if (Date.now() - state.noticeAt > 1000) notice("");
  every(3000, refreshPause);  // the banner, on every page
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/");
  const params = new URLSearchParams(search || "");
  const page = ROUTES[name] || dashboardPage;
  for (const link of document.querySelectorAll("[data-nav]")) {
    const current = link.dataset.nav === (ROUTES[name] ? name : "dashboard");
    link.classList.toggle("current", current);
    if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  // Each navigation gets its own container: a slower page that finishes after the next
  // navigation fills a container no longer shown.
  const view = h("div", { class: "page" });
  fill(document.getElementById("view"), view);
  page(view, rest.map(decodeURIComponent), params).catch((err) => {
    if (err.status !== 401) fill(view, h("p", { class: "error-text" }, err.message));
  });
}

// -- dashboard ------------------------------------------------------------------------

function card(label, value, sub, kind) {
  return h("div", { class: "card" },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, kind ? badge(String(value), kind) : String(value)),
    sub ? h("div", { class: "sub" }, sub) : null);
}

function barChart(title, points) {
  const width = 600, height = 150, pad = 18;
  const max = Math.max(1, ...points.map((p) => Math.max(p.received, p.delivered + p.errors)));
  const step = (width - pad) / Math.max(1, points.length);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 14}`);
  svg.setAttribute("role", "img");
  const totals = points.reduce((t, p) => ({
    received: t.received + p.received, delivered: t.delivered + p.delivered, errors: t.errors + p.errors,
  }), { received: 0, delivered: 0, errors: 0 });
  svg.setAttribute("aria-label", `${title}: ${totals.received} received, ${totals.delivered} delivered, ${totals.errors} failed attempts`);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text) el.textContent = text;
    svg.append(el);
    return el;
  };
  add("line", { x1: pad, y1: height, x2: width, y2: height, class: "axis" });
  add("text", { x: 0, y: 10, "font-size": 10, fill: "#5b6473" }, String(max));
  points.forEach((p, i) => {
    const x = pad + i * step;
    const w = Math.max(1, step / 2 - 1);
    const scale = (v) => (v / max) * (height - 14);
    const r = add("rect", { x, y: height - scale(p.received), width: w, height: scale(p.received), class: "bar-received" });
    r.append(Object.assign(document.createElementNS("http://www.w3.org/2000/svg", "title"), { textContent: `${fmtTime(p.at)}: ${p.received} received` }));
    const dh = scale(p.delivered), eh = scale(p.errors);
    const d = add("rect", { x: x + w, y: height - dh - eh, width: w, height: dh, class: "bar-delivered" });
    d.append(Object.assign(document.createElementNS("http://www.w3.org/2000/svg", "title"), { textContent: `${fmtTime(p.at)}: ${p.delivered} delivered` }));
    const e = add("rect", { x: x + w, y: height - eh, width: w, height: eh, class: "bar-errors" });
    e.append(Object.assign(document.createElementNS("http://www.w3.org/2000/svg", "title"), { textContent: `${fmtTime(p.at)}: ${p.errors} failed attempts` }));
  });
  const rate = totals.delivered + totals.errors ? (100 * totals.errors / (totals.delivered + totals.errors)).toFixed(1) : "0.0";
  return h("div", { class: "chart panel" },
    h("h3", {}, title),
    svg,
    h("div", { class: "legend" },
      h("span", {}, h("span", { class: "swatch received" }), `received ${totals.received}`),
      h("span", {}, h("span", { class: "swatch delivered" }), `delivered ${totals.delivered}`),
      h("span", {}, h("span", { class: "swatch failed" }), `failed attempts ${totals.errors} (error rate ${rate} %)`)));
}

async function dashboardPage(view) {
  const cards = h("div", { class: "cards", id: "dashboard-cards" });
  const perHandler = h("div", { class: "wrap" });
  const hourChart = h("div");
  const dayChart = h("div");
  add(view, 
    h("h1", {}, "Dashboard"),
    cards,
    h("h2", {}, "Throughput and errors"),
    h("div", { class: "charts" }, hourChart, dayChart),
    h("h2", {}, "Handlers"),
    perHandler,
  );
  every(2000, async () => {
    const s = await api("GET", "stats");
    const pending = Object.values(s.queue_depth).reduce((n, st) => n + (st.pending || 0) + (st.in_flight || 0), 0);
    const byState = s.deliveries_by_state || {};
    const pb = Object.entries(s.portabilling || {});
    fill(cards, 
      card("Events received", s.last_hour.events_received, "last hour"),
      card("Delivered", s.last_hour.delivered, "attempts, last hour"),
      card("Failed attempts", s.last_hour.errors, "last hour"),
      card("Retrying", s.retrying, "deliveries waiting for a retry"),
      card("Dead", byState.dead || 0, "deliveries that gave up", (byState.dead || 0) ? "bad" : null),
      card("Queue depth", pending, "pending and in flight"),
      card("Oldest pending", fmtAge(s.oldest_pending_age_seconds), "age of the oldest queued delivery"),
      card("Status outbox", s.status_outbox_backlog, "statuses not yet sent to PortaBilling"),
      card("Processing", s.paused ? "paused" : "running", s.paused ? "maintenance mode" : "", s.paused ? "warn" : "ok"),
      ...(pb.length ? pb : [["PortaBilling", null]]).map(([source, health]) => card(
        `PortaBilling API (${source})`,
        !health || health.healthy === null ? "no calls yet" : health.healthy ? "healthy" : "failing",
        health && health.last_failure ? `last failure: ${health.last_failure} at ${fmtTime(health.last_failure_at)}` : health && health.last_latency_ms !== null ? `last call ${health.last_latency_ms} ms` : "",
        !health || health.healthy === null ? "idle" : health.healthy ? "ok" : "bad")),
    );
    const handlers = await api("GET", "handlers");
    fill(perHandler, h("table", { id: "dashboard-handlers" },
      h("thead", {}, h("tr", {}, ["Handler", "Status", "Pending", "Retrying", "In flight", "Waiting", "Dead", "Delivered (1 h)", "Failed (1 h)", "Success rate (1 h)"].map((t, i) => h("th", { class: i > 1 ? "num" : null }, t)))),
      h("tbody", {}, handlers.map((x) => {
        const depth = s.queue_depth[x.id] || {};
        const out = s.last_hour.by_handler[x.id] || {};
        const ok = (out.delivered || 0) + (out.waiting || 0);
        const bad = (out.retry || 0) + (out.rejected || 0) + (out.dead || 0);
        return h("tr", {},
          h("td", {}, h("a", { href: `#/logs/${encodeURIComponent(x.id)}` }, x.id)),
          h("td", {}, badge(x.paused ? "paused" : x.status)),
          h("td", { class: "num" }, depth.pending || 0),
          h("td", { class: "num" }, (s.retrying_by_handler || {})[x.id] || 0),
          h("td", { class: "num" }, depth.in_flight || 0),
          h("td", { class: "num" }, depth.waiting || 0),
          h("td", { class: "num" }, depth.dead || 0),
          h("td", { class: "num" }, ok),
          h("td", { class: "num" }, bad),
          h("td", { class: "num" }, ok + bad ? `${(100 * ok / (ok + bad)).toFixed(1)} %` : "–"));
      }))));
  }, view);
  every(5000, async () => {
    const series = await api("GET", "stats/series?window=hour");
    fill(hourChart, barChart("Last hour (per minute)", series.points));
  }, view);
  every(60000, async () => {
    const series = await api("GET", "stats/series?window=day");
    fill(dayChart, barChart("Last day (per hour)", series.points));
  }, view);
}

// -- handlers -------------------------------------------------------------------------

// The handler form: real fields for each type (and for the built-in plug-ins' options);
// "Edit as JSON" shows the same settings as raw JSON for anything the fields do not cover.
const TIMEOUT = (seconds) => ({ key: "timeout", label: "Timeout (seconds)", kind: "number", value: seconds });
const TYPE_FIELDS = {
  http: [
    { key: "url", label: "Connector URL", kind: "text", required: true, placeholder: "https://connector.example.net/events" },
    { key: "token", label: "Bearer token", kind: "secret" },
    TIMEOUT(30),
    { key: "verify_tls", label: "Verify the connector's TLS certificate", kind: "check", value: true },
  ],
  script: [
    { key: "command", label: "Command (one argument per line)", kind: "lines", required: true, placeholder: "/usr/local/bin/provision" },
    TIMEOUT(60),
    { key: "working_directory", label: "Working directory", kind: "text" },
  ],
  python: [
    { key: "entry_point", label: "Connector (entry point)", kind: "entry", required: true },
    TIMEOUT(30),
  ],
  template: [
    { key: "base_url", label: "Base URL", kind: "text", placeholder: "https://crm.example.net/api" },
    TIMEOUT(30),
    { key: "verify_tls", label: "Verify the system's TLS certificate", kind: "check", value: true },
    { key: "secrets", label: "Secrets (JSON: name → value)", kind: "json", value: {} },
    { key: "calls", label: "Calls (JSON: event type or pattern → method, url, headers, body, success, when)", kind: "json", required: true,
      value: { "Subscriber/*": { method: "PUT", url: "/subscribers/{{ i_account }}" } } },
  ],
};
const PLUGINS = {
  "opennsps.connectors.hss:HssConnector": {
    label: "HSS (PyHSS)",
    options: [
      { key: "url", label: "PyHSS API URL", kind: "text", required: true, placeholder: "http://hss.example.net:8080" },
      { key: "provisioning_key", label: "Provisioning key", kind: "secret" },
      { key: "links", label: "Links database (SQLAlchemy URL)", kind: "text", placeholder: "sqlite:///var/hss-links.db" },
      { key: "profile_attribute", label: "Access policy attribute", kind: "text", placeholder: "eps_profile" },
      { key: "default_profile", label: "Default profile", kind: "text" },
      { key: "profiles", label: "Profiles (JSON: profile → apn_ids, default_apn, ambr_dl, ambr_ul)", kind: "json", required: true,
        value: { "eps-std": { apn_ids: [1], ambr_dl: 100000, ambr_ul: 50000 } } },
      { key: "timeout", label: "HSS call timeout (seconds)", kind: "number" },
    ],
  },
  "opennsps.connectors.radius:RadiusConnector": {
    label: "RADIUS (FreeRADIUS SQL)",
    options: [
      { key: "database", label: "FreeRADIUS database (SQLAlchemy URL)", kind: "text", required: true, placeholder: "postgresql+psycopg://radius@db/radius" },
      { key: "username", label: "User name (pb_data path)", kind: "text", placeholder: "account_info.id" },
      { key: "group_from", label: "Group from (pb_data path)", kind: "text", placeholder: "product_info.name" },
      { key: "groups", label: "Groups (JSON: value → RADIUS group)", kind: "json", value: {} },
      { key: "default_group", label: "Default group", kind: "text" },
      { key: "reply", label: "Reply attributes (JSON: attribute → pb_data path)", kind: "json", value: {} },
      { key: "reject_message", label: "Reject message", kind: "text" },
      { key: "create_tables", label: "Create FreeRADIUS's tables when missing", kind: "check", value: false },
    ],
  },
};
const OTHER_PLUGIN = "";

// The settings a new form starts with: each field's default value.
function defaults(fields) {
  return Object.fromEntries(fields.filter((f) => f.value !== undefined).map((f) => [f.key, f.value]));
}

function typeDefaults(type) {
  const section = defaults(TYPE_FIELDS[type]);
  if (type === "http") section.url = "";
  if (type === "script") section.command = [];
  if (type === "python") { section.entry_point = "opennsps.connectors.hss:HssConnector"; section.options = pluginDefaults(section.entry_point); }
  return section;
}

function pluginDefaults(entryPoint) {
  return defaults((PLUGINS[entryPoint] || { options: [] }).options);
}

// One input for one setting; `name` is where it goes (s.url, o.profiles), so the server's
// error for http.url or python.options.profiles lands next to it.
function settingInput(f, name, current) {
  const value = current === undefined ? f.value : current;
  if (f.kind === "check") return h("label", { class: "check" }, h("input", { type: "checkbox", name, checked: value === undefined ? false : !!value }), f.label);
  let input;
  if (f.kind === "json") input = h("textarea", { name, rows: 5 }, value === undefined || value === null ? "" : json(value));
  else if (f.kind === "lines") input = h("textarea", { name, rows: 3, placeholder: f.placeholder || null }, (value || []).join("\n"));
  else input = h("input", {
    name, type: f.kind === "number" ? "number" : "text", step: f.kind === "number" ? "any" : null,
    placeholder: f.placeholder || null, required: !!f.required,
    value: value === undefined || value === null ? "" : String(value),
  });
  return h("label", { class: f.kind === "json" || f.kind === "lines" ? "wide" : null }, f.label, input, h("span", { class: "field-error", hidden: true }));
}

function settingValue(f, el) {
  if (f.kind === "check") return el.checked;
  const text = el.value.trim();
  if (f.kind === "number") return text === "" ? undefined : Number(text);
  if (f.kind === "lines") return text.split("\n").map((line) => line.trim()).filter(Boolean);
  if (f.kind === "json") {
    if (!text) return undefined;
    try { return JSON.parse(text); } catch (err) { throw new FieldProblem(el.name, `is not valid JSON: ${err.message}`); }
  }
  return text === "" ? undefined : text;
}

class FieldProblem extends Error {
  constructor(name, message) { super(message); this.name_ = name; }
}

async function handlersPage(view, args) {
  if (args[0] === "new") return handlerForm(view, null);
  if (args[0] === "edit") return handlerForm(view, await api("GET", `handlers/${encodeURIComponent(args[1])}`));
  const [handlers, stats] = await Promise.all([api("GET", "handlers"), api("GET", "stats")]);
  const rows = handlers.map((x) => {
    const depth = stats.queue_depth[x.id] || {};
    const out = stats.last_hour.by_handler[x.id] || {};
    const ok = (out.delivered || 0) + (out.waiting || 0);
    const bad = (out.retry || 0) + (out.rejected || 0) + (out.dead || 0);
    const again = () => route();
    const post = (suffix, label) => act(() => label, () => api("POST", `handlers/${encodeURIComponent(x.id)}/${suffix}`)).then(again);
    const buttons = [];
    const archived = x.status === "archived";
    const fromConfig = x.managed_by === "config";
    if (can("operator") && !archived) {
      buttons.push(x.status === "enabled"
        ? h("button", { type: "button", onclick: () => post("disable", `Handler ${x.id} disabled`) }, "Disable")
        : h("button", { type: "button", onclick: () => post("enable", `Handler ${x.id} enabled`) }, "Enable"));
      buttons.push(x.paused
        ? h("button", { type: "button", onclick: () => post("resume", `Handler ${x.id} resumed`) }, "Resume")
        : h("button", { type: "button", onclick: () => post("pause", `Handler ${x.id} paused`) }, "Pause"));
      buttons.push(h("button", { type: "button", onclick: () => testSend(x) }, "Test"));
      buttons.push(h("button", { type: "button", title: "Close the circuit and send every pending delivery now", onclick: () => post("retry-now", `Handler ${x.id}: circuit closed, backlog sent now`) }, "Retry now"));
    }
    if (can("admin") && !fromConfig) {
      // A handler from the config file is changed there: the API refuses these.
      if (!archived) buttons.push(h("button", { type: "button", onclick: () => { location.hash = `#/handlers/edit/${encodeURIComponent(x.id)}`; } }, "Edit"));
      if (!archived) buttons.push(h("button", {
        type: "button",
        onclick: () => {
          if (!confirm(`Archive handler ${x.id}? It stops receiving events for good; its history stays.`)) return;
          post("archive", `Handler ${x.id} archived`);
        },
      }, "Archive"));
      buttons.push(h("button", {
        type: "button", class: "danger",
        onclick: async () => {
          if (!confirm(`Delete handler ${x.id}? Its deliveries and execution log go with it.`)) return;
          await act(() => `Handler ${x.id} deleted`, () => api("DELETE", `handlers/${encodeURIComponent(x.id)}`));
          route();
        },
      }, "Delete"));
    }
    return h("tr", { "data-handler": x.id },
      h("td", { class: "mono" }, h("a", { href: `#/logs/${encodeURIComponent(x.id)}`, title: `Execution logs of ${x.id}` }, x.id)),
      h("td", { class: "num" }, x.priority),
      h("td", { class: "col-name" }, x.name || ""),
      h("td", { class: "mono" }, x.events.join(", ")),
      h("td", {}, x.type),
      h("td", {}, badge(x.status), x.paused ? [" ", badge("paused")] : null, x.managed_by === "config" ? h("div", { class: "muted" }, "from the config file") : null, circuitCell(x)),
      h("td", { class: "num" }, ok + bad ? `${(100 * ok / (ok + bad)).toFixed(1)} %` : "–"),
      h("td", { class: "num" }, (depth.pending || 0) + (depth.in_flight || 0)),
      h("td", {}, h("div", { class: "actions" }, buttons)));
  });
  add(view, 
    h("h1", {}, "Handlers"),
    can("admin") ? h("p", {}, h("button", { type: "button", class: "primary", onclick: () => { location.hash = "#/handlers/new"; } }, "New handler")) : null,
    h("div", { class: "wrap" }, h("table", { id: "handlers-table" },
      h("thead", {}, h("tr", {}, ["ID", "Priority", "Name", "Events", "Type", "Status", "Success rate (1 h)", "Queue depth", "Actions"].map((t) => h("th", { class: t === "Name" ? "col-name" : null }, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No handlers yet."))))),
  );
}

// A handler's circuit, in its Status cell: nothing while it is closed and healthy; the
// failures in a row while closed; when open or probing, since when, the next probe and
// the last error.
function circuitCell(x) {
  const c = x.circuit_state;
  if (c.state === "closed") {
    return c.consecutive_failures ? h("div", { class: "circuit muted" }, `circuit closed, ${c.consecutive_failures} failures in a row`) : null;
  }
  return h("div", { class: "circuit" },
    badge(c.state === "open" ? "circuit open" : "circuit half-open (probing)", c.state === "open" ? "bad" : "warn"),
    h("div", { class: "muted" }, `since ${fmtTime(c.since)}`),
    c.next_probe_at && c.state === "open" ? h("div", { class: "muted" }, `next probe ${fmtTime(c.next_probe_at)}`) : null,
    c.last_error ? h("div", { class: "muted", title: c.last_error }, c.last_error.slice(0, 60)) : null);
}

function handlerForm(view, existing) {
  const errors = h("ul", { class: "errors", role: "alert", hidden: true });
  let section = existing ? existing[existing.type] : typeDefaults("http");
  const fieldsBox = h("div", { class: "form-grid" });
  const rawBox = h("textarea", { name: "settings", rows: 12 });
  const asJson = h("input", { type: "checkbox", name: "as_json" });
  const type = h("select", { name: "type" },
    ["http", "script", "python", "template"].map((t) => h("option", { value: t, selected: existing ? existing.type === t : t === "http" }, t)));

  function entryChoice(current) {
    const known = Object.keys(PLUGINS);
    const choice = h("select", { name: "plugin" },
      known.map((ep) => h("option", { value: ep, selected: ep === current }, PLUGINS[ep].label)),
      h("option", { value: OTHER_PLUGIN, selected: !known.includes(current) }, "another plug-in…"));
    const other = h("input", { name: "s.entry_point", placeholder: "package.module:Factory", value: known.includes(current) ? "" : current || "", hidden: known.includes(current) });
    choice.addEventListener("change", () => {
      const now = readSettings(false);
      now.entry_point = choice.value || other.value;
      now.options = choice.value ? pluginDefaults(choice.value) : {};
      section = now;
      drawFields();
    });
    return h("label", {}, "Connector", choice, other, h("span", { class: "field-error", hidden: true }));
  }

  function drawFields() {
    const t = type.value;
    const parts = TYPE_FIELDS[t].map((f) => f.kind === "entry" ? entryChoice(section.entry_point) : settingInput(f, `s.${f.key}`, section[f.key]));
    if (t === "python") {
      const plugin = PLUGINS[section.entry_point];
      if (plugin) parts.push(...plugin.options.map((f) => settingInput(f, `o.${f.key}`, (section.options || {})[f.key])));
      else parts.push(settingInput({ key: "options", label: "Options (JSON)", kind: "json" }, "s.options", section.options || {}));
    }
    fill(fieldsBox, parts);
    rawBox.value = json(section);
    fieldsBox.hidden = asJson.checked;
    rawBox.closest("label").hidden = !asJson.checked;
  }

  // The settings as the server takes them, from the fields or from the JSON view.
  function readSettings(strict = true, fromJson = asJson.checked) {
    if (fromJson) {
      try { return JSON.parse(rawBox.value); } catch (err) { if (strict) throw new FieldProblem("settings", `is not valid JSON: ${err.message}`); return section; }
    }
    // Strict (saving): a field that is not valid stops it. Not strict (switching views):
    // such a field keeps `fallback`.
    const read = (f, el, fallback) => {
      if (strict) return settingValue(f, el);
      try { return settingValue(f, el); } catch { return fallback; }
    };
    const t = type.value;
    const out = {};
    for (const f of TYPE_FIELDS[t]) {
      if (f.kind === "entry") {
        const choice = form.elements.plugin;
        out.entry_point = choice && choice.value ? choice.value : form.elements["s.entry_point"].value.trim();
        continue;
      }
      const el = form.elements[`s.${f.key}`];
      if (!el) continue;
      const value = read(f, el, section[f.key]);
      if (value !== undefined) out[f.key] = value;
    }
    if (t === "python") {
      const plugin = PLUGINS[out.entry_point];
      if (plugin) {
        // Options the fields do not show (set in JSON) are kept as they are.
        out.options = { ...(section.options || {}) };
        for (const f of plugin.options) {
          const el = form.elements[`o.${f.key}`];
          const value = el ? read(f, el, undefined) : undefined;
          if (value === undefined) delete out.options[f.key];
          else out.options[f.key] = value;
        }
      } else {
        const el = form.elements["s.options"];
        out.options = el ? (strict ? settingValue({ kind: "json" }, el) : section.options) || {} : {};
      }
    }
    return out;
  }

  type.addEventListener("change", () => { section = typeDefaults(type.value); drawFields(); });
  asJson.addEventListener("change", () => {
    if (asJson.checked) { section = readSettings(false, false); }
    else { try { section = JSON.parse(rawBox.value); } catch { /* keep the fields as they were */ } }
    drawFields();
  });

  function showProblems(problems, v) {
    for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
    for (const el of form.querySelectorAll(".field-error")) { el.hidden = true; el.textContent = ""; }
    fill(errors, ...problems.map(([loc, msg, element]) => {
      let name = element || loc[0];
      if (!element && loc[0] === v.type) {
        const inner = loc.slice(1);
        name = asJson.checked ? "settings"
          : inner[0] === "options" && inner.length > 1 && form.elements[`o.${inner[1]}`] ? `o.${inner[1]}`
          : form.elements[`s.${inner[0]}`] ? `s.${inner[0]}`
          : inner[0] === "entry_point" ? "plugin" : "settings";
      }
      const input = name && form.elements[name];
      if (input && input.classList) {
        input.classList.add("invalid");
        const note = input.closest("label") && input.closest("label").querySelector(".field-error");
        if (note) { note.textContent = msg; note.hidden = false; }
      }
      return h("li", {}, loc.length ? `${loc.join(".")}: ${msg}` : msg);
    }));
    errors.hidden = false;
    errors.focus();
  }

  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const v = formValues(form);
      const problems = [];
      let typeSettings = null;
      try { typeSettings = readSettings(); } catch (err) {
        if (!(err instanceof FieldProblem)) throw err;
        const key = err.name_.replace(/^[so]\./, "");
        const loc = err.name_.startsWith("o.") ? [v.type, "options", key] : [v.type, key];
        problems.push([loc, err.message, err.name_]);
      }
      let retry = null;
      if (v.retry) { try { retry = JSON.parse(v.retry); } catch (err) { problems.push([["retry"], `is not valid JSON: ${err.message}`]); } }
      const definition = {
        id: v.id, name: v.name, priority: Number(v.priority), type: v.type,
        events: v.events.split(/[\s,]+/).filter(Boolean),
        enrichment: v.enrichment, service_password: v.service_password,
        status_group: v.status_group || null, max_concurrency: Number(v.max_concurrency),
        holds_back: v.holds_back, filter: v.filter || null, filter_status: v.filter_status,
        [v.type]: typeSettings,
      };
      if (retry) definition.retry = retry;
      const rate = v.rate_per_second.trim();
      definition.rate_limit = rate ? { per_second: Number(rate), burst: existing && existing.rate_limit ? existing.rate_limit.burst : null } : null;
      const opensAfter = Number(v.circuit_failures);
      const circuit = existing ? { ...existing.circuit } : {};
      definition.circuit = opensAfter > 0 ? { ...circuit, enabled: true, open_after_failures: opensAfter } : { ...circuit, enabled: false };
      if (existing) definition.status = existing.status;
      if (!problems.length) {
        try {
          if (existing) await api("PUT", `handlers/${encodeURIComponent(existing.id)}`, definition);
          else await api("POST", "handlers", definition);
          notice(`Handler ${definition.id} saved`);
          location.hash = "#/handlers";
          return;
        } catch (err) {
          if (err.status === 401) return;
          const details = err.body && Array.isArray(err.body.details) ? err.body.details : null;
          if (details) details.forEach((d) => problems.push([d.loc, d.msg]));
          else problems.push([[], err.message]);
        }
      }
      showProblems(problems, v);
    },
  },
    errors,
    h("div", { class: "form-grid" },
      field("ID (letters, digits, - and _)", h("input", { name: "id", value: existing ? existing.id : "", required: true, readonly: !!existing })),
      field("Name", h("input", { name: "name", value: existing ? existing.name : "" })),
      field("Priority (1 runs first)", h("input", { name: "priority", type: "number", min: 1, max: 1000, value: existing ? existing.priority : 10 })),
      field("Type", type),
      field("Events (patterns, e.g. Subscriber/*)", h("input", { name: "events", value: existing ? existing.events.join(", ") : "Subscriber/*", required: true })),
      field("Status group (PortaBilling)", h("input", { name: "status_group", value: existing && existing.status_group ? existing.status_group : "" })),
      field("Max concurrency", h("input", { name: "max_concurrency", type: "number", min: 1, max: 1000, value: existing ? existing.max_concurrency : 16 })),
      h("div", { class: "wide" }, field("Filter (optional: only events for which it is true go, e.g. pb_data.account_info.i_product in [3776, 3777])",
        h("input", { name: "filter", value: existing && existing.filter ? existing.filter : "" }), h("span", { class: "field-error", hidden: true }))),
      field("A skipped event reports to PortaBilling", h("select", { name: "filter_status" },
        [["none", "nothing"], ["OK", "OK"]].map(([value, text]) => h("option", { value, selected: (existing ? existing.filter_status : "none") === value }, text)))),
      field("Holds back larger priority numbers", h("select", { name: "holds_back" },
        [["until_first_attempt", "until its first attempt"], ["until_done", "until done (delivered, rejected or dead)"], ["never", "never"]].map(([value, text]) =>
          h("option", { value, selected: (existing ? existing.holds_back : "until_first_attempt") === value }, text)))),
      field("Rate limit (requests per second; empty: none)", h("input", { name: "rate_per_second", type: "number", min: 0, step: "any", value: existing && existing.rate_limit ? existing.rate_limit.per_second : "" })),
      field("Circuit opens after this many failures in a row (0: never)", h("input", { name: "circuit_failures", type: "number", min: 0, max: 10000, value: existing ? (existing.circuit.enabled ? existing.circuit.open_after_failures : 0) : 5 })),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "enrichment", checked: existing ? existing.enrichment : true }), "Enrich with PortaBilling data (pb_data)"),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "service_password", checked: existing ? existing.service_password : false }), "Include the service password"),
    ),
    h("fieldset", {},
      h("legend", {}, "Type settings"),
      h("label", { class: "check" }, asJson, "Edit as JSON (advanced)"),
      fieldsBox,
      h("label", { class: "wide", hidden: true }, "Type settings (JSON)", rawBox),
      h("p", { class: "muted" }, "Secrets shown as [redacted] keep their stored value; type a new one to replace it.")),
    h("div", { class: "form-grid" },
      h("div", { class: "wide" }, field("Retry schedule (JSON, optional)", h("textarea", { name: "retry", rows: 3 }, existing && existing.retry ? json(existing.retry) : "")))),
    h("p", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, existing ? "Save handler" : "Create handler"),
      h("button", { type: "button", onclick: () => { location.hash = "#/handlers"; } }, "Cancel")),
  );
  errors.setAttribute("tabindex", "-1");
  drawFields();
  add(view, h("h1", {}, existing ? `Edit handler ${existing.id}` : "New handler"), h("div", { class: "panel" }, form));
}

function testSend(handler) {
  const result = h("div", { id: "test-result" });
  const form = h("form", {
    method: "dialog",
    onsubmit: async (e) => {
      e.preventDefault();
      const v = formValues(form);
      let variables;
      try { variables = JSON.parse(v.variables || "{}"); } catch (err) { fill(result, h("p", { class: "error-text" }, `variables are not valid JSON: ${err.message}`)); return; }
      fill(result, h("p", { class: "muted" }, "Sending…"));
      try {
        const r = await api("POST", `handlers/${encodeURIComponent(handler.id)}/test`, { event_type: v.event_type, variables });
        fill(result, 
          h("p", {}, "Outcome: ", badge(r.outcome), ` · status ${r.status_code ?? "none"} · ${r.duration_ms} ms`),
          r.error ? h("p", { class: "error-text" }, r.error) : null,
          h("h3", {}, "Response"), h("pre", {}, r.response_excerpt || "(empty)"),
          h("h3", {}, "Payload sent"), h("pre", {}, json(r.payload)));
      } catch (err) {
        fill(result, h("p", { class: "error-text" }, err.message));
      }
    },
  },
    h("p", { class: "muted" }, "The event goes to the external system for real; nothing is stored and no status is sent to PortaBilling."),
    h("div", { class: "form-grid" },
      field("Event type", h("input", { name: "event_type", value: "Subscriber/Updated" })),
      field("Variables (JSON)", h("textarea", { name: "variables", rows: 2 }, '{"i_account": 100001}'))),
    h("p", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Send test event"),
      h("button", { type: "button", onclick: () => dialog.close() }, "Close")),
    result);
  const dialog = h("dialog", { "aria-label": `Test handler ${handler.id}` }, h("h2", {}, `Test handler ${handler.id}`), form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

// -- execution logs -------------------------------------------------------------------

async function logsPage(view, args, params) {
  const handlers = await api("GET", "handlers");
  const handlerId = args[0] || "";  // #/logs/<handler>: that handler's execution log
  const table = h("div", { class: "wrap" });
  const detail = h("div", { class: "detail", id: "attempt-detail" });
  const pager = h("div", { class: "pager" });
  const form = h("form", {
    class: "filters", role: "search",
    onsubmit: (e) => { e.preventDefault(); load(null); },
  },
    field("Event type", h("input", { name: "event_type", placeholder: "Subscriber/*" })),
    field("Handler", h("select", { name: "handler_id" }, h("option", { value: "" }, "any"), handlers.map((x) => h("option", { value: x.id, selected: handlerId === x.id }, x.id)))),
    field("Handler type", h("select", { name: "handler_type" }, ["", "http", "script", "python", "template"].map((t) => h("option", { value: t }, t || "any")))),
    field("Outcome", h("select", { name: "outcome" }, ["", "delivered", "waiting", "retry", "rejected", "dead", "skipped"].map((t) => h("option", { value: t }, t || "any")))),
    field("Account (i_account)", h("input", { name: "i_account", inputmode: "numeric" })),
    field("MSISDN", h("input", { name: "msisdn" })),
    field("IMSI", h("input", { name: "imsi" })),
    field("From (UTC)", h("input", { name: "since", type: "datetime-local" })),
    field("To (UTC)", h("input", { name: "until", type: "datetime-local" })),
    h("button", { type: "submit", class: "primary" }, "Search"));
  prefill(form, params);
  add(view, h("h1", {}, "Execution logs"), form, table, pager, detail);

  const ticket = newestOnly();
  async function load(before) {
    const v = formValues(form);
    keepInUrl(form);
    const current = ticket();
    const found = await api("GET", "attempts" + query({ ...v, since: localToIso(v.since), until: localToIso(v.until), before, limit: 50 }));
    if (!current()) return;
    fill(table, h("table", { id: "attempts-table" },
      h("thead", {}, h("tr", {}, ["Time", "Event", "Handler", "Account", "MSISDN", "IMSI", "Duration", "Status", "Outcome", "Error"].map((t) => h("th", {}, t)))),
      h("tbody", {}, found.items.length ? found.items.map((a) => h("tr", {
        class: "clickable", tabindex: 0, "data-attempt": a.id,
        onclick: () => showAttempt(a.id, detail),
        onkeydown: (e) => { if (e.key === "Enter") showAttempt(a.id, detail); },
      },
        h("td", {}, fmtTime(a.started_at)),
        h("td", {}, a.event_type),
        h("td", { class: "mono" }, a.handler_id),
        h("td", {}, accountLog(a.i_account)),
        h("td", { class: "mono" }, a.msisdn ?? ""),
        h("td", { class: "mono" }, a.imsi ?? ""),
        h("td", { class: "num" }, `${Math.round(a.duration_ms)} ms`),
        h("td", { class: "num" }, a.status_code ?? ""),
        h("td", {}, badge(a.outcome)),
        h("td", {}, (a.error || "").slice(0, 140)))) : h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No attempts match.")))));
    fill(pager, ...pagerButtons(before, found.next_before, load));
  }
  await load(null);
}

async function showAttempt(id, box) {
  const a = await api("GET", `attempts/${id}`);
  fill(box, h("div", { class: "panel" },
    h("h2", {}, `${a.event_type} → ${a.handler_id}`),
    h("p", {}, badge(a.outcome), ` attempt ${a.number} · ${fmtTime(a.started_at)} · ${Math.round(a.duration_ms)} ms · status ${a.status_code ?? "none"}`,
      a.configuration_problem ? [" ", badge("configuration problem", "warn")] : null),
    a.error ? h("p", { class: "error-text" }, a.error) : null,
    h("p", { class: "actions" },
      h("a", { href: `#/events/${encodeURIComponent(a.event_id)}` }, "Open the event"),
      a.i_account !== null && a.i_account !== undefined ? h("a", { href: `#/logs?i_account=${a.i_account}` }, `Execution log of account ${a.i_account}`) : null,
      can("operator") ? h("button", {
        type: "button",
        onclick: () => act(() => "Delivery replayed: it goes out again with fresh data", () => api("POST", `deliveries/${a.delivery_id}/replay`)),
      }, "Replay this delivery") : null),
    h("h3", {}, "Response excerpt"), h("pre", {}, a.response_excerpt || "(empty)"),
    h("h3", {}, "Payload sent"), h("pre", { id: "attempt-payload" }, a.payload ? json(a.payload) : "(nothing was sent)")));
  box.scrollIntoView({ block: "nearest" });
}

// -- events ---------------------------------------------------------------------------

async function eventsPage(view, args, params) {
  if (args[0]) return eventDetail(view, args[0]);
  const table = h("div", { class: "wrap" });
  const pager = h("div", { class: "pager" });
  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); load(null); } },
    field("Event type", h("input", { name: "event_type", placeholder: "Subscriber/*" })),
    field("Account (i_account)", h("input", { name: "i_account", inputmode: "numeric" })),
    field("i_event", h("input", { name: "i_event", inputmode: "numeric" })),
    field("State", h("select", { name: "state" }, ["", "unrouted", "pending", "waiting", "delivered", "rejected", "dead"].map((t) => h("option", { value: t }, t || "any")))),
    field("From (UTC)", h("input", { name: "since", type: "datetime-local" })),
    field("To (UTC)", h("input", { name: "until", type: "datetime-local" })),
    h("button", { type: "submit", class: "primary" }, "Search"));
  prefill(form, params);
  add(view, h("h1", {}, "Events"), form, table, pager);
  const ticket = newestOnly();
  async function load(before) {
    const v = formValues(form);
    keepInUrl(form);
    const current = ticket();
    const found = await api("GET", "events" + query({ ...v, since: localToIso(v.since), until: localToIso(v.until), before, limit: 50 }));
    if (!current()) return;
    fill(table, h("table", { id: "events-table" },
      h("thead", {}, h("tr", {}, ["Received", "i_event", "Type", "Variables", "Source", "State", "Deliveries"].map((t) => h("th", {}, t)))),
      h("tbody", {}, found.items.length ? found.items.map((e) => h("tr", {
        class: "clickable", tabindex: 0,
        onclick: () => { location.hash = `#/events/${e.event_id}`; },
        onkeydown: (k) => { if (k.key === "Enter") location.hash = `#/events/${e.event_id}`; },
      },
        h("td", {}, fmtTime(e.received_at)),
        h("td", { class: "num" }, e.i_event),
        h("td", {}, e.event_type),
        h("td", { class: "mono" }, JSON.stringify(e.variables).slice(0, 90)),
        h("td", {}, e.source),
        h("td", {}, badge(e.state)),
        h("td", {}, Object.entries(e.deliveries).map(([k, n]) => `${k} ${n}`).join(", ")))) : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No events match.")))));
    fill(pager, ...pagerButtons(before, found.next_before, load));
  }
  await load(null);
}

async function eventDetail(view, eventId) {
  const e = await api("GET", `events/${encodeURIComponent(eventId)}`);
  const replay = () => act((r) => `Event replayed: ${r.replayed} deliveries go out again`, () => api("POST", `events/${encodeURIComponent(eventId)}/replay`)).then(() => route());
  add(view, 
    h("h1", {}, `${e.event_type} · i_event ${e.i_event}`),
    h("p", {}, badge(e.state), ` received ${fmtTime(e.received_at)} from source ${e.source}`,
      can("operator") ? [" ", h("button", { type: "button", onclick: replay }, "Replay event")] : null),
    e.variables && e.variables.i_account !== undefined ? h("p", { class: "actions" },
      h("a", { href: `#/logs?i_account=${encodeURIComponent(e.variables.i_account)}` }, `Execution log of account ${e.variables.i_account}`),
      h("a", { href: `#/events?i_account=${encodeURIComponent(e.variables.i_account)}` }, `Events of account ${e.variables.i_account}`)) : null,
    h("div", { class: "panel" },
      h("h2", {}, "ESPF event"),
      h("p", { class: "mono" }, `event_id ${e.event_id} · request_id (x-b3-traceid) ${e.request_id || ""} · unique_id (x-request-id) ${e.unique_id || ""}`),
      h("pre", {}, json({ event_type: e.event_type, variables: e.variables })),
      e.raw_body ? h("details", {}, h("summary", {}, "Raw body as received"), h("pre", {}, e.raw_body)) : null),
    h("h2", {}, "Deliveries"),
    e.deliveries.length ? h("ol", { class: "timeline" }, e.deliveries.map((d) => h("li", { class: "panel" },
      h("h3", {}, `${d.handler_id} (priority ${d.priority}) `, badge(d.state)),
      d.last_error ? h("p", { class: "error-text" }, d.last_error) : null,
      can("operator") ? h("button", {
        type: "button",
        onclick: () => act(() => "Delivery replayed", () => api("POST", `deliveries/${d.id}/replay`)).then(() => route()),
      }, "Replay delivery") : null,
      h("table", {},
        h("thead", {}, h("tr", {}, ["#", "Time", "Duration", "Status", "Outcome", "Error", "pb_data sent"].map((t) => h("th", {}, t)))),
        h("tbody", {}, d.attempt_log.map((a) => h("tr", {},
          h("td", {}, a.number),
          h("td", {}, fmtTime(a.started_at)),
          h("td", { class: "num" }, `${Math.round(a.duration_ms)} ms`),
          h("td", { class: "num" }, a.status_code ?? ""),
          h("td", {}, badge(a.outcome)),
          h("td", {}, a.error || ""),
          h("td", {}, a.pb_data ? h("details", {}, h("summary", {}, "show"), h("pre", {}, json(a.pb_data))) : "")))))))) : h("p", { class: "muted" }, "No handler received this event (unrouted)."),
  );
}

// -- dead letters ---------------------------------------------------------------------

async function deadPage(view, args, params) {
  const handlers = await api("GET", "handlers");
  const table = h("div", { class: "wrap" });
  const summary = h("p", { id: "dead-summary" });
  const form = h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); load(); } },
    field("Handler", h("select", { name: "handler_id" }, h("option", { value: "" }, "any"), handlers.map((x) => h("option", { value: x.id }, x.id)))),
    field("Event type", h("input", { name: "event_type", placeholder: "Subscriber/*" })),
    field("Died from (UTC)", h("input", { name: "since", type: "datetime-local" })),
    field("Died before (UTC)", h("input", { name: "until", type: "datetime-local" })),
    h("button", { type: "submit", class: "primary" }, "Show"),
    can("operator") ? h("button", { type: "button", id: "replay-dead", onclick: bulkReplay }, "Replay all matching…") : null);
  prefill(form, params);
  add(view, h("h1", {}, "Dead letters"), h("p", { class: "muted" }, "Deliveries that gave up after their whole retry schedule. (Those a connector refused for good are in the execution logs, outcome rejected.)"), form, summary, table);

  function filter() {
    const v = formValues(form);
    return { handler_id: v.handler_id || null, event_type: v.event_type || null, since: localToIso(v.since) || null, until: localToIso(v.until) || null };
  }
  const ticket = newestOnly();
  async function load() {
    const f = filter();
    keepInUrl(form);
    const current = ticket();
    const found = await api("GET", "dead" + query({ ...f, limit: 100 }));
    if (!current()) return;
    summary.textContent = `${deadCount(found.total)} ${found.total === 1 ? "matches" : "match"}.`;
    fill(table, h("table", { id: "dead-table" },
      h("thead", {}, h("tr", {}, ["Died", "Handler", "Event", "Account", "Attempts", "Reason", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, found.items.length ? found.items.map((d) => h("tr", {},
        h("td", { class: "nowrap" }, fmtTime(d.finished_at)),
        h("td", { class: "mono" }, d.handler_id),
        h("td", {}, h("a", { href: `#/events/${d.event_id}`, title: JSON.stringify(d.variables) }, `${d.event_type} #${d.i_event}`)),
        h("td", {}, accountLog((d.variables || {}).i_account)),
        h("td", { class: "num" }, d.attempts),
        h("td", { class: "reason" }, d.last_error || ""),
        h("td", {}, can("operator") ? h("button", { type: "button", onclick: () => act(() => "Delivery replayed", () => api("POST", `deliveries/${d.id}/replay`)).then(load) }, "Replay") : null))) : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No dead deliveries match.")))));
  }
  async function bulkReplay() {
    const f = filter();
    const counted = await api("POST", "dead/replay", { ...f, dry_run: true });
    const dialog = h("dialog", { "aria-label": "Confirm replay" },
      h("h2", {}, "Replay dead deliveries"),
      h("p", { id: "replay-count" }, `${deadCount(counted.matching)} will be replayed: each goes out again with fresh PortaBilling data and a new retry schedule.`),
      counted.sample && counted.sample.length ? h("ul", { id: "replay-sample" }, counted.sample.map((x) =>
        h("li", {}, `${x.handler_id}: ${x.event_type} #${x.i_event}`, x.i_account !== null ? ` (account ${x.i_account})` : ""))) : null,
      h("p", { class: "actions" },
        h("button", {
          type: "button", class: "primary", disabled: counted.matching === 0,
          onclick: async () => {
            dialog.close();
            await act((r) => `${deadCount(r.replayed)} replayed`, () => api("POST", "dead/replay", f));
            load();
          },
        }, `Replay ${counted.matching}`),
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }
  await load();
}

// -- rejected requests ----------------------------------------------------------------

async function rejectedPage(view) {
  const found = await api("GET", "rejected?limit=200");
  add(view, 
    h("h1", {}, "Rejected requests"),
    h("p", { class: "muted" }, "Requests the ESPF ingress refused. ESPF does not send a refused event again: fix the cause, then have PortaBilling send it anew."),
    h("div", { class: "wrap" }, h("table", { id: "rejected-table" },
      h("thead", {}, h("tr", {}, ["Received", "Source", "HTTP", "Reason", "Request"].map((t) => h("th", {}, t)))),
      h("tbody", {}, found.length ? found.map((r) => h("tr", {},
        h("td", {}, fmtTime(r.received_at)),
        h("td", {}, r.source || ""),
        h("td", { class: "num" }, badge(String(r.http_status), "bad")),
        h("td", {}, r.reason),
        h("td", {}, h("details", {}, h("summary", {}, `${r.method} ${r.path}`), h("pre", {}, json({ headers: r.headers, body: r.body })))))) : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No refused requests.")))),
  ));
}

// -- start ----------------------------------------------------------------------------

window.addEventListener("hashchange", route);
document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/console/logout", { method: "POST", credentials: "same-origin" });
  state.session = null;
  showLogin("You are logged out.");
});
document.getElementById("pause-all").addEventListener("click", async () => {
  const resume = state.paused;
  if (!resume && !confirm("Pause all processing? Nothing is delivered until you resume; ESPF events are still accepted and stored.")) return;
  await act(() => (resume ? "Processing resumed" : "Processing paused"), () => api("POST", resume ? "resume" : "pause"));
  refreshPause();
});

(async () => {
  try {
    state.session = await api("GET", "/console/session");
    start();
  } catch {
    showLogin("");
  }
})();
