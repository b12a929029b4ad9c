// Archipelago dashboard: plain JS, no build step, no external resource. It talks to the
// node's JSON API with the session cookie and, on every state change, the X-CSRF-Token
// header. Everything the API returns is put on the page as text (never as HTML): listings
// come from third parties.
"use strict";

const S = {
  csrf: null,
  view: null,
  status: null,
  catalog: [],
  apps: [],
  features: { operations: null, logs: null },
  attached: new Set(), // operation ids whose events are being followed
};

const STAGES = ["checking", "fetching", "loading", "creating", "starting", "waiting_for_health", "finished"];
const STAGE_WORDS = {
  checking: "Checking the signed manifest and this host",
  fetching: "Downloading and verifying",
  loading: "Loading the image into Podman",
  creating: "Creating containers",
  starting: "Starting",
  waiting_for_health: "Waiting until it is healthy",
  finished: "Finished",
};

const ALARM_WORDS = {
  "equivocation":
    "The origin served two different catalogs under the same version number. Someone may be showing different nodes different software. This node refused the second one and kept the catalog it had.",
  "chain-broken":
    "A new catalog did not link to the one before it (its hash chain is broken): somebody tried to fork the catalog's history. It was refused.",
  "unverified-gap":
    "Some catalog versions were skipped without being checked, because the origin no longer has them. The current catalog is signed, but the history in between could not be verified.",
  "pinned-root-replaced":
    "The pinned root (the keys this node trusts to sign catalogs) was replaced in the node's config. Everything learned under the old root was dropped.",
  "root-rotation":
    "The release keys were rotated: a new root was accepted because the previous keys signed it.",
};

// ---- small helpers ---------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

/** Builds an element; strings and numbers become text nodes, never HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function kv(pairs) {
  const dl = h("dl", { class: "kv" });
  for (const [k, v] of pairs) {
    if (v === null || v === undefined) continue;
    dl.append(h("dt", {}, k), h("dd", {}, v));
  }
  return dl;
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function countdown(iso) {
  const ms = Date.parse(iso) - Date.now();
  if (isNaN(ms)) return "";
  const abs = Math.abs(ms);
  const d = Math.floor(abs / 86400000), hrs = Math.floor((abs % 86400000) / 3600000);
  const mins = Math.floor((abs % 3600000) / 60000);
  const span = d > 0 ? `${plural(d, "day")} ${plural(hrs, "hour")}` : `${plural(hrs, "hour")} ${plural(mins, "minute")}`;
  return ms >= 0 ? `expires in ${span}` : `expired ${span} ago`;
}

/** Compares dotted versions numerically (semver without pre-release subtleties). */
function newer(a, b) {
  const pa = String(a).split(/[.+-]/).map((x) => parseInt(x, 10) || 0);
  const pb = String(b).split(/[.+-]/).map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) > (pb[i] || 0);
  }
  return false;
}

let toastTimer = null;
function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

class ApiError extends Error {
  constructor(message, kind, status) { super(message); this.kind = kind; this.status = status; }
}

/** Calls the API: the cookie goes by itself, the CSRF token on every state change. */
async function api(method, path, { stream = false, probe = false, body = {} } = {}) {
  const headers = { Accept: stream ? "application/x-ndjson" : "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = S.csrf || "";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    sessionEnded();
    throw new ApiError("Your session has ended: log in again.", "unauthorized", 401);
  }
  if (r.ok && stream) return r;
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) {
    // A route the node does not have answers 404 without a JSON error body.
    if (probe && r.status === 404 && !(data && data.kind)) throw new ApiError("absent", "absent", 404);
    throw new ApiError((data && data.error) || `${r.status} ${r.statusText}`, data && data.kind, r.status);
  }
  return data;
}

/** Reads an NDJSON body line by line as it arrives. */
async function readNdjson(response, onEvent, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) onEvent(JSON.parse(line));
      }
      if (signal && signal.aborted) break;
    }
    if (buf.trim()) onEvent(JSON.parse(buf));
  } finally {
    try { reader.releaseLock(); } catch (_) { /* already released */ }
  }
}

// ---- views and routing -----------------------------------------------------------------

const VIEWS = ["login", "setup", "nosetup", "overview", "store", "apps", "settings"];
const PAGES = ["overview", "store", "apps", "settings"];

function show(view) {
  S.view = view;
  $("loading").hidden = true;
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  const inside = PAGES.includes(view);
  $("top").hidden = !inside;
  for (const v of PAGES) $(`nav-${v}`).classList.toggle("active", v === view);
  document.title = inside ? `${$(`nav-${view}`).textContent} · Archipelago` : "Archipelago";
}

function route() {
  if (!S.csrf) return;
  $("toast").hidden = true;
  const view = (location.hash.replace(/^#\//, "") || "overview").split("?")[0];
  const target = PAGES.includes(view) ? view : "overview";
  show(target);
  refresh();
}

async function refresh() {
  const view = S.view;
  try {
    if (view === "overview") await renderOverview();
    else if (view === "store") await renderStore();
    else if (view === "apps") await renderApps();
    else if (view === "settings") await renderSettings();
  } catch (e) {
    if (e.status !== 401) toast(e.message);
  }
}

function sessionEnded() {
  S.csrf = null;
  $("logout-csrf").value = "";
  show("login");
}

function loggedIn(csrf) {
  S.csrf = csrf;
  $("logout-csrf").value = csrf;
  if (!location.hash || location.hash === "#" || location.hash === "#/") location.hash = "#/overview";
  route();
  probeOperations();
}

async function boot() {
  let s;
  try {
    s = await (await fetch("/ui/session", { credentials: "same-origin", cache: "no-store" })).json();
  } catch (e) {
    $("loading").textContent = `The node does not answer: ${e.message}`;
    return;
  }
  if (s.authenticated) return loggedIn(s.csrf);
  if (!s.password_set) return show(s.setup_allowed ? "setup" : "nosetup");
  show("login");
}

async function submitPassword(path, password, errorEl) {
  errorEl.hidden = true;
  const r = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ password }),
  });
  let data = {};
  try { data = await r.json(); } catch (_) { /* empty */ }
  if (r.ok) return data.csrf;
  let msg = data.error || `${r.status} ${r.statusText}`;
  if (r.status === 429) {
    const wait = r.headers.get("Retry-After");
    msg = `Too many failed attempts. Try again in ${wait || "a few"} seconds.`;
  } else if (r.status === 401) {
    msg = "Wrong password.";
  }
  errorEl.textContent = msg;
  errorEl.hidden = false;
  return null;
}

// ---- overview --------------------------------------------------------------------------

async function loadCore() {
  const [status, catalog, apps] = await Promise.all([
    api("GET", "/v1/status"),
    api("GET", "/v1/catalog/apps"),
    api("GET", "/v1/apps"),
  ]);
  S.status = status;
  S.catalog = catalog || [];
  S.apps = apps || [];
}

function updatesAvailable() {
  const byId = new Map(S.catalog.map((c) => [c.id, c]));
  return S.apps
    .filter((a) => byId.has(a.id) && newer(byId.get(a.id).version, a.version))
    .map((a) => ({ app: a, to: byId.get(a.id).version }));
}

async function renderOverview() {
  await loadCore();
  const s = S.status;
  const cards = [];

  // Health.
  const pull = s.last_pull || {};
  cards.push(h("div", { class: "card", id: "card-health" },
    h("h2", {}, "Node", h("span", { class: `badge ${pull.ok ? "ok" : "warn"}` }, pull.ok ? "healthy" : "attention")),
    h("p", {}, "The node is up and answering."),
    kv([
      ["Last catalog pull", pull.at ? `${new Date(pull.at).toLocaleString()}: ${pull.ok ? "ok" : "failed"}` : "not yet"],
      ["Pull result", pull.message || null],
      ["Podman", s.podman_url],
      ["Node id", s.endpoint_id ? `${s.endpoint_id.slice(0, 16)}…` : null],
    ])));

  // Trust.
  const c = s.catalog;
  const trust = h("div", { class: "card", id: "card-trust" }, h("h2", {}, "Trust"));
  trust.append(h("p", {}, `This node trusts release keys from root version ${s.root_version}, pinned in its config.`));
  if (c) {
    trust.append(
      h("p", { id: "catalog-version" }, `Catalog version ${c.version}`, h("span", { class: `badge ${c.expired ? "bad" : "ok"}` }, c.expired ? "expired" : "verified")),
      kv([
        ["From", c.origin],
        ["Expires", `${new Date(c.expires).toLocaleString()} (${countdown(c.expires)})`],
      ]),
    );
    if (c.expired) trust.append(h("p", { class: "warnbox" }, "The catalog has expired: running apps keep running, but nothing is installed or updated from it until the origin publishes a fresh one."));
    else if (c.warning) trust.append(h("p", { class: "warnbox" }, c.warning));
    if (c.missed_versions > 0) trust.append(h("p", { class: "warnbox" }, `${plural(c.missed_versions, "catalog version")} could not be verified (the origin no longer had them).`));
  } else {
    trust.append(h("p", { class: "warnbox" }, "No verified catalog yet: the node has not accepted one from its origin."));
  }
  cards.push(trust);

  // Alarms.
  const alarms = s.alarms || [];
  const alarmCard = h("div", { class: `card${alarms.length ? " alarm" : ""}`, id: "card-alarms" },
    h("h2", {}, "Alarms", h("span", { class: `badge ${alarms.length ? "bad" : "ok"}` }, alarms.length ? String(alarms.length) : "none")));
  if (!alarms.length) alarmCard.append(h("p", {}, "Nothing suspicious: every catalog so far chained to the one before it."));
  for (const a of alarms.slice(0, 10)) {
    alarmCard.append(h("div", { class: "alarm-item", "data-kind": a.kind },
      h("h3", {}, a.kind.replace(/-/g, " ")),
      h("p", {}, ALARM_WORDS[a.kind] || "The node raised an alarm it has no explanation for yet."),
      h("p", { class: "muted small" }, `${new Date(a.raised_at).toLocaleString()}: ${a.message}`)));
  }
  cards.push(alarmCard);

  // Swarm.
  const m = s.swarm || {};
  const fromOrigin = (m.bytes_from_origin_iroh || 0) + (m.bytes_from_http || 0);
  const fromPeers = m.bytes_from_peers || 0;
  const total = fromOrigin + fromPeers;
  cards.push(h("div", { class: "card", id: "card-swarm" },
    h("h2", {}, "Swarm"),
    h("p", {}, total ? `${Math.round((fromPeers / total) * 100)}% of downloads came from peers.` : "Nothing downloaded since the node started."),
    kv([
      ["From the origin", bytes(fromOrigin)],
      ["From peers", bytes(fromPeers)],
      ["Served to others", bytes((m.bytes_served_iroh || 0) + (m.bytes_served_http || 0))],
      ["Fallbacks to HTTP", String(m.http_fallbacks || 0)],
      ["Bad data refused", String(m.verification_failures || 0)],
      ["Peers struck", String(m.strikes || 0)],
    ])));

  // Resource limits.
  const l = s.resource_limits || {};
  const off = ["memory", "cpu", "pids"].filter((k) => l[k] === false);
  cards.push(h("div", { class: "card", id: "card-limits" },
    h("h2", {}, "Resource limits", h("span", { class: `badge ${off.length ? "warn" : "ok"}` }, off.length ? "not all enforced" : "enforced")),
    off.length
      ? h("p", {}, `This host does not enforce the ${off.join(", ")} limits apps declare. ${l.reason || ""}`)
      : h("p", {}, "Memory, CPU and process limits that apps declare are enforced.")));

  // Updates.
  const ups = updatesAvailable();
  const upCard = h("div", { class: "card", id: "card-updates" }, h("h2", {}, "Updates", h("span", { class: `badge ${ups.length ? "warn" : "ok"}` }, ups.length ? `${ups.length} available` : "up to date")));
  if (!ups.length) upCard.append(h("p", {}, S.apps.length ? "Every installed app runs the catalog's version." : "No apps installed yet."));
  for (const u of ups) {
    upCard.append(h("p", {}, `${u.app.id}: ${u.app.version} → ${u.to} `,
      h("button", { onclick: () => act(u.app.id, "update", `Updating ${u.app.id} to ${u.to}`) }, "Update")));
  }
  cards.push(upCard);

  replaceIfChanged("overview-cards", JSON.stringify([s, S.catalog, S.apps]), cards);
}

// ---- store -----------------------------------------------------------------------------

// The store is one request (`GET /v1/store`), however large the catalog and marketplace;
// only a page of cards per column is drawn at a time, so a phone stays quick.
const STORE_PAGE = 30;
const STORE = { data: null, query: "", shown: { catalog: STORE_PAGE, market: STORE_PAGE } };

async function renderStore() {
  const store = await api("GET", "/v1/store");
  STORE.data = store;
  $("store-threshold").replaceChildren(
    `Publishers scoring below ${store.threshold} out of 100 need your explicit approval before their app installs (`,
    h("a", { href: "#/settings" }, "Settings"), ").");
  drawStore();
}

/** Whether an entry matches the search box (name, id or summary). */
function matches(...texts) {
  const q = STORE.query;
  return !q || texts.some((t) => t && t.toLowerCase().includes(q));
}

/** Draws both columns from the last answer, filtered and a page at a time. */
function drawStore() {
  const store = STORE.data;
  if (!store) return;
  const apps = store.catalog.filter((a) => matches(a.name, a.id, a.summary));
  const listings = store.publishers
    .flatMap((p) => p.listings.map((l) => ({ p, l })))
    .filter(({ l }) => matches(l.name, l.app_id, l.summary))
    .sort((a, b) => a.l.name.localeCompare(b.l.name) || a.p.author.localeCompare(b.p.author));
  const none = (text) => [h("p", { class: "muted" }, text)];
  const column = (id, all, shown, card, empty) => {
    const cards = all.slice(0, shown).map(card);
    $(id).replaceChildren(...(cards.length ? cards : none(empty)));
    const more = $(`${id}-more`);
    more.hidden = all.length <= shown;
    more.textContent = `Show more (${all.length - Math.min(shown, all.length)} not shown)`;
  };
  column("store-catalog", apps, STORE.shown.catalog, catalogCard,
    STORE.query ? "No catalog app matches." : store.catalog_version === null
      ? "The node has not accepted a verified catalog yet." : "The verified catalog has no apps.");
  column("store-market", listings, STORE.shown.market, ({ p, l }) => listingCard(p, l, store.threshold),
    STORE.query ? "No third-party listing matches." : "No third-party listings discovered yet.");
  $("store-count").textContent = `${plural(apps.length, "catalog app")} and ${plural(listings.length, "listing")}${STORE.query ? " match" : ""}.`;
}

/** What an app may do on this host: the node's words for its signed manifest. */
function permissions(may) {
  return h("div", { class: "perm" }, h("strong", {}, "It may: "),
    may.length ? h("ul", {}, may.map((l) => h("li", { class: /PRIVILEGED|every process|host's network/.test(l) ? "danger-line" : null }, l))) : "nothing beyond its own sandbox.");
}

function installedLine(inst) {
  const state = inst.state && inst.state !== "unknown" ? `, ${inst.state}` : "";
  return h("span", { class: "muted" }, `Installed (${inst.version}${state})`,
    inst.update_to ? h("span", { class: "badge warn" }, `update to ${inst.update_to}`) : null);
}

function catalogCard(app) {
  return h("div", { class: "card", id: `store-${app.id}`, "data-app": app.id },
    h("h2", {}, app.name, h("span", { class: "version" }, app.version), h("span", { class: "badge verified" }, "Verified catalog")),
    h("p", {}, app.summary),
    permissions(app.may),
    h("div", { class: "actions" },
      app.installed
        ? installedLine(app.installed)
        : h("button", { class: "primary install", onclick: () => installCatalogApp(app) }, "Install")));
}

/** Installs a catalog app; when it needs apps that are not installed, the node's plan is
 * shown first and nothing starts without the operator's yes. */
async function installCatalogApp(app) {
  let withDeps = false;
  if (app.needs.length) {
    let plan;
    try {
      plan = await api("GET", `/v1/catalog/apps/${encodeURIComponent(app.id)}/plan`);
    } catch (e) {
      if (e.status !== 401) toast(`${app.name} cannot be installed: ${e.message}`);
      return;
    }
    if (plan.install_first.length) {
      if (!(await confirmPlan(plan))) return;
      withDeps = true;
    }
  }
  install(app.id, `/v1/apps/${encodeURIComponent(app.id)}/install?stream=true&with_dependencies=${withDeps}`, app.name);
}

/** Asks whether to install an app with the apps its plan installs first. */
function confirmPlan(plan) {
  const dialog = $("plan-dialog");
  const others = plan.install_first.map((a) => `${a.name} ${a.version}`);
  $("plan-name").textContent = `${plan.app.name} ${plan.app.version}`;
  $("plan-text").textContent = `Installing ${plan.app.name} will also install ${others.join(", ")}.`;
  $("plan-list").replaceChildren(...plan.install_first.map((a) => h("li", { "data-app": a.id }, `${a.name} ${a.version} (${a.id})`)));
  $("plan-confirm").textContent = `Install all ${plan.install_first.length + 1}`;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
  });
}

function listingCard(p, l, threshold) {
  const below = p.score === null || p.score < threshold;
  const passes = l.sandbox === "passes";
  const installable = passes && l.local_id && !l.installed;
  const approve = h("input", { type: "checkbox", class: "approve" });
  const button = h("button", { class: "primary install", disabled: !installable || below ? true : null }, "Install");
  approve.addEventListener("change", () => { button.disabled = !approve.checked || !installable; });
  button.addEventListener("click", () => {
    const q = new URLSearchParams({ publisher: p.author, stream: "true" });
    if (below) q.set("approve", "true");
    install(l.local_id, `/v1/market/${encodeURIComponent(l.app_id)}/install?${q}`, l.name);
  });
  const terms = p.terms.length
    ? h("ul", { class: "terms" }, p.terms.map((t) =>
      h("li", {}, h("span", { class: `pts ${t.points >= 0 ? "plus" : "minus"}` }, `${t.points >= 0 ? "+" : ""}${t.points}`), h("span", {}, t.reason))))
    : null;
  return h("div", { class: "card", id: `listing-${l.app_id}-${p.author.slice(0, 16)}`, "data-app": l.local_id || "" },
    h("h2", {}, l.name, h("span", { class: "version" }, l.version), h("span", { class: "badge third" }, "Third party")),
    h("p", {}, l.summary),
    kv([
      ["Publisher", `${p.did.slice(0, 24)}…`],
      ["Nostr key", `${p.author.slice(0, 16)}…`],
      ["Installs as", l.local_id || "(does not verify)"],
      ["Files from", l.origin],
      ["Published", new Date(l.published_at * 1000).toLocaleString()],
    ]),
    h("p", {}, h("strong", {}, "Sandbox: "), passes
      ? h("span", { class: "badge ok" }, "passes the sandbox policy")
      : h("span", { class: "badge bad" }, l.sandbox)),
    h("p", { class: "score" }, h("strong", {}, "Trust score: "), p.score !== null
      ? `${p.score} / 100 (this node asks for ${threshold})`
      : `not scored yet (this node asks for ${threshold})`),
    terms,
    passes ? permissions(l.may) : null,
    below && installable
      ? h("label", { class: "check warnbox" }, approve, ` This publisher scores ${p.score !== null ? p.score : "nothing"}, below this node's threshold of ${threshold}. I have checked them and want to install anyway.`)
      : null,
    h("div", { class: "actions" }, l.installed ? installedLine(l.installed) : button));
}

// ---- operations with live progress -----------------------------------------------------

function opCard(key, title) {
  let card = document.getElementById(`op-${key}`);
  if (card) card.remove();
  card = h("div", { class: "op", id: `op-${key}`, "data-stages": "" },
    h("div", { class: "op-head" }, h("span", {}, title), h("button", { class: "link", onclick: () => card.remove(), "aria-label": "Dismiss" }, "×")),
    h("div", { class: "op-stage" }, "Starting…"),
    h("div", { class: "bar" }, h("span", {})),
    h("div", { class: "op-result" }));
  $("operations").append(card);
  return card;
}

function drawEvent(card, ev) {
  if (ev.progress) {
    const p = ev.progress;
    const idx = Math.max(0, STAGES.indexOf(p.stage));
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const overall = ((idx + frac) / (STAGES.length - 1)) * 100;
    const seen = card.dataset.stages ? card.dataset.stages.split(",") : [];
    if (!seen.includes(p.stage)) seen.push(p.stage);
    card.dataset.stages = seen.join(",");
    card.dataset.stage = p.stage;
    const amount = p.stage === "fetching" && p.total ? ` ${bytes(p.done)} of ${bytes(p.total)}` : p.total > 1 ? ` ${p.done} of ${p.total}` : "";
    card.querySelector(".op-stage").textContent = `${STAGE_WORDS[p.stage] || p.stage}${p.detail ? ` (${p.detail})` : ""}${amount}`;
    card.querySelector(".bar > span").style.width = `${Math.min(100, overall).toFixed(1)}%`;
  } else if (ev.result) {
    card.querySelector(".bar > span").style.width = "100%";
    card.querySelector(".op-stage").textContent = STAGE_WORDS.finished;
    if (ev.result.uninstalled !== undefined) {
      // An uninstall's or a purge's result: `{uninstalled, purged}`.
      card.dataset.state = "uninstalled";
      card.querySelector(".op-result").replaceChildren(`${ev.result.uninstalled} is `, h("strong", { class: "op-state" }, "uninstalled"),
        ev.result.purged ? " and its data deleted" : ", its data kept");
      return;
    }
    card.dataset.state = ev.result.state;
    card.querySelector(".op-result").replaceChildren(`${ev.result.id} ${ev.result.version} is `, h("strong", { class: "op-state" }, ev.result.state),
      ev.result.url ? h("span", {}, " · ", h("a", { href: ev.result.url, target: "_blank", rel: "noopener noreferrer" }, "open")) : null);
    (ev.result.warnings || []).forEach((w) => card.querySelector(".op-result").append(h("p", { class: "warnbox" }, w)));
  } else if (ev.error) {
    card.classList.add("failed");
    card.dataset.state = "failed";
    card.querySelector(".op-result").replaceChildren(h("span", { class: "error op-error" }, ev.error));
  }
}

const OP_WORDS = { install: "Installing", update: "Updating", uninstall: "Uninstalling", purge: "Purging", start: "Starting", stop: "Stopping", restart: "Restarting" };

/** The card of an operation on an app: an install started here and the same install
 * re-attached after a reload share one (`op-<app>`). */
function opKey(kind, app) {
  const key = app.replace(/[^a-zA-Z0-9_-]/g, "_");
  return kind === "install" ? key : `${kind}-${key}`;
}

async function install(id, path, name) {
  const card = opCard(opKey("install", id), `Installing ${name}`);
  document.querySelectorAll(`[data-app="${CSS.escape(id)}"] button.install`).forEach((b) => { b.disabled = true; });
  try {
    const r = await api("POST", path, { stream: true });
    await readNdjson(r, (ev) => drawEvent(card, ev));
  } catch (e) {
    drawEvent(card, { error: e.message });
  }
  refresh();
}

/** Operations the node runs (`GET /v1/operations`, when the node has it): re-attached after a reload. */
async function probeOperations() {
  if (S.features.operations === false) return;
  let ops;
  try {
    ops = await api("GET", "/v1/operations", { probe: true });
    S.features.operations = true;
  } catch (e) {
    if (e.kind === "absent") S.features.operations = false;
    return;
  }
  // `[OperationView {id, app, kind, state, stage, …}]`: only those still running are followed.
  for (const op of Array.isArray(ops) ? ops : []) {
    if (op.state !== "running" || S.attached.has(op.id)) continue;
    S.attached.add(op.id);
    const title = `${OP_WORDS[op.kind] || op.kind} ${op.app}`;
    const card = opCard(opKey(op.kind, op.app), title);
    card.dataset.operation = String(op.id);
    api("GET", `/v1/operations/${encodeURIComponent(op.id)}/events`, { stream: true })
      .then((r) => readNdjson(r, (ev) => drawEvent(card, ev)))
      .then(() => {
        // Found running, ended well: the app's own card says the rest; failures stay.
        if (card.dataset.state && card.dataset.state !== "failed") setTimeout(() => card.remove(), 8000);
      })
      .catch((e) => drawEvent(card, { error: e.message }))
      .finally(() => { S.attached.delete(op.id); refresh(); });
  }
}

// ---- installed apps --------------------------------------------------------------------

const HEALTH_WORDS = {
  running: "Healthy: every container runs.",
  stopped: "Stopped.",
  degraded: "Degraded: some containers are not running. The node repairs what it can.",
  missing: "Its containers are missing; the node recreates them if it should run.",
  unverifiable: "Its recorded manifest no longer verifies: the node will not start it.",
};

async function act(id, action, what, query = "") {
  const method = action === "uninstall" ? "DELETE" : "POST";
  const base = `/v1/apps/${encodeURIComponent(id)}`;
  toast(`${what}…`);
  try {
    await api(method, `${action === "uninstall" ? base : `${base}/${action}`}${query}`);
    toast(`${what}: done.`);
  } catch (e) {
    toast(`${what} failed: ${e.message}`);
  }
  refresh();
}

async function renderApps() {
  const [apps, catalog] = await Promise.all([api("GET", "/v1/apps"), api("GET", "/v1/catalog/apps")]);
  S.apps = apps || [];
  S.catalog = catalog || [];
  const latest = new Map(S.catalog.map((c) => [c.id, c.version]));
  if (S.features.logs === null && S.apps.length && S.apps[0].containers.length) {
    const a = S.apps[0];
    try {
      const short = a.containers[0].name.replace(`archy-${a.id}-`, "");
      await api("GET", `/v1/apps/${encodeURIComponent(a.id)}/logs?container=${encodeURIComponent(short)}&tail=1`, { probe: true });
      S.features.logs = true;
    } catch (e) {
      S.features.logs = e.kind === "absent" ? false : null;
    }
  }
  const cards = S.apps.map((a) => {
    // A third-party app's newer version is what its publisher lists; a catalog app's, the catalog's.
    const to = a.market ? a.market.newer_version : latest.get(a.id);
    const update = to && newer(to, a.version);
    const running = a.desired === "running";
    return h("div", { class: "card", id: `app-${a.id}`, "data-app": a.id, "data-state": a.state },
      h("h2", {}, a.id, h("span", { class: "version" }, a.version), h("span", { class: `badge state state-${a.state}` }, a.state)),
      h("p", { class: "health" }, HEALTH_WORDS[a.state] || a.state, a.desired !== (a.state === "stopped" ? "stopped" : "running") ? ` (wanted: ${a.desired})` : ""),
      a.url ? h("p", {}, h("a", { class: "launch", id: `launch-${a.id}`, href: a.url, target: "_blank", rel: "noopener noreferrer" }, `Open ${a.id} ↗`)) : null,
      h("ul", { class: "small" }, a.containers.map((c) => h("li", {}, `${c.name}: ${c.state} `,
        S.features.logs ? h("button", { class: "link logs", onclick: () => openLogs(a.id, c.name.replace(`archy-${a.id}-`, "")) }, "logs") : null))),
      a.market ? h("p", { class: "small publisher" }, `Third-party app "${a.market.app_id}" by ${a.market.did.slice(0, 24)}…`) : null,
      a.market && a.market.withdrawn ? h("p", { class: "warnbox withdrawn" },
        `Its publisher withdrew this publication on ${new Date(a.market.withdrawn.at * 1000).toLocaleString()}: it keeps running here, but nothing new is installed from it.`) : null,
      (a.warnings || []).map((w) => h("p", { class: "warnbox" }, w)),
      h("div", { class: "actions" },
        h("button", { class: "start", disabled: running && a.state === "running" ? true : null, onclick: () => act(a.id, "start", `Starting ${a.id}`) }, "Start"),
        h("button", { class: "stop", disabled: !running && a.state === "stopped" ? true : null, onclick: () => act(a.id, "stop", `Stopping ${a.id}`) }, "Stop"),
        h("button", { class: "restart", onclick: () => act(a.id, "restart", `Restarting ${a.id}`) }, "Restart"),
        update ? h("button", { class: "update primary", onclick: () => act(a.id, "update", `Updating ${a.id} ${a.version} → ${to}`) }, `Update ${a.version} → ${to}`) : null,
        h("button", { class: "uninstall danger", onclick: () => askUninstall(a.id) }, "Uninstall")));
  });
  replaceIfChanged("apps-list", JSON.stringify([S.apps, S.catalog, S.features.logs]), (cards.length ? cards : [h("p", { class: "muted" }, "No apps installed. ", h("a", { href: "#/store" }, "Visit the app store."))]));
}

/** Replaces a container's children only when what they show changed, so a periodic
 * refresh does not pull buttons from under the operator's finger. */
const lastRendered = {};
function replaceIfChanged(id, key, children) {
  if (lastRendered[id] === key && $(id).childElementCount) return;
  lastRendered[id] = key;
  $(id).replaceChildren(...children);
}

function askUninstall(id) {
  const dialog = $("uninstall-dialog");
  $("uninstall-name").textContent = id;
  $("uninstall-purge").checked = false;
  $("uninstall-confirm").textContent = "Uninstall";
  dialog.dataset.app = id;
  dialog.returnValue = "";
  dialog.showModal();
}

let logsAbort = null;
async function openLogs(id, container) {
  const dialog = $("logs-dialog");
  const out = $("logs-output");
  $("logs-name").textContent = `${id} / ${container}`;
  out.textContent = "";
  dialog.showModal();
  logsAbort = new AbortController();
  try {
    const path = `/v1/apps/${encodeURIComponent(id)}/logs?container=${encodeURIComponent(container)}&tail=200&follow=true`;
    const r = await fetch(path, { credentials: "same-origin", signal: logsAbort.signal, headers: { Accept: "application/x-ndjson" } });
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    await readNdjson(r, (ev) => {
      if (ev.line !== undefined) out.append(`${ev.line}\n`);
      else if (ev.error) out.append(`[${ev.error}]\n`);
      out.scrollTop = out.scrollHeight;
    }, logsAbort.signal);
  } catch (e) {
    if (e.name !== "AbortError") out.append(`[logs unavailable: ${e.message}]\n`);
  }
}

// ---- settings --------------------------------------------------------------------------

const SETTING_FIELDS = ["relays", "market_min_score", "pull_interval_seconds", "trusted_keys"];

function fieldError(field, message) {
  const el = $(`settings-error-${field}`);
  el.textContent = message || "";
  el.hidden = !message;
}

/** The API names the refused field first (`relays: …`); the message goes next to it. */
function showSettingsError(e, fallback) {
  const m = /^([a-z_]+): /.exec(e.message || "");
  if (m && SETTING_FIELDS.includes(m[1])) fieldError(m[1], e.message.slice(m[0].length));
  else fieldError(fallback, e.message);
}

async function renderSettings() {
  // Drawn when the page opens and after each change (no periodic refresh: it would
  // overwrite what the operator is typing).
  const s = await api("GET", "/v1/settings");
  $("settings-relays").value = s.relays.join("\n");
  $("settings-relay_ca_certs").textContent = (s.relay_ca_certs || []).join(", ") || "none";
  $("settings-market_min_score").value = String(s.market_min_score);
  $("settings-pull_interval_seconds").value = String(s.pull_interval_seconds);
  for (const f of ["relays", "market_min_score", "pull_interval_seconds"]) {
    $(`settings-source-${f}`).textContent = s.overridden.includes(f) ? "set here (overrides the config file)" : "from the config file";
  }
  const keys = s.trusted_keys.map((k) => h("li", { class: "trusted-key", "data-key": k.key },
    h("code", {}, `${k.key.slice(0, 16)}…${k.key.slice(-8)}`), " ",
    k.source === "config"
      ? h("span", { class: "muted small" }, "from the config file (remove it there)")
      : k.source === "operator"
        ? h("span", { class: "muted small" }, "this node's own key: `archy market follow` vouches with it")
        : h("button", { class: "link untrust", onclick: () => untrust(k.key) }, "remove")));
  $("settings-keys").replaceChildren(...(keys.length ? keys : [h("li", { class: "muted" }, "No trusted key yet: nobody vouches for any publisher, so every third-party app needs your approval. `archy market follow npub1…` follows a publisher with this node's own key.")]));
}

async function saveSettings(ev) {
  ev.preventDefault();
  for (const f of SETTING_FIELDS) fieldError(f, "");
  const body = {
    relays: $("settings-relays").value.split(/\s+/).filter((r) => r),
  };
  for (const f of ["market_min_score", "pull_interval_seconds"]) {
    const text = $(`settings-${f}`).value.trim();
    if (!/^-?\d+$/.test(text)) { fieldError(f, "a whole number, please"); return; }
    body[f] = parseInt(text, 10);
  }
  $("settings-save").disabled = true;
  try {
    await api("PUT", "/v1/settings", { body });
    toast("Settings saved: in effect now.");
    await renderSettings();
  } catch (e) {
    if (e.status !== 401) showSettingsError(e, "relays");
  } finally {
    $("settings-save").disabled = false;
  }
}

async function trust(ev) {
  ev.preventDefault();
  fieldError("trusted_keys", "");
  const k = $("settings-new-key").value.trim();
  if (!k) return;
  try {
    await api("POST", `/v1/trust/keys/${encodeURIComponent(k)}`);
    $("settings-new-key").value = "";
    await renderSettings();
  } catch (e) {
    if (e.status !== 401) fieldError("trusted_keys", e.message);
  }
}

async function untrust(k) {
  fieldError("trusted_keys", "");
  try {
    await api("DELETE", `/v1/trust/keys/${encodeURIComponent(k)}`);
    await renderSettings();
  } catch (e) {
    if (e.status !== 401) fieldError("trusted_keys", e.message);
  }
}

// ---- wiring ----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const pw = $("login-password");
    $("login-submit").disabled = true;
    try {
      const csrf = await submitPassword("/ui/login", pw.value, $("login-error"));
      if (csrf) { pw.value = ""; loggedIn(csrf); }
    } finally {
      $("login-submit").disabled = false;
    }
  });
  $("setup-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const a = $("setup-password").value, b = $("setup-password2").value;
    if (a !== b) {
      $("setup-error").textContent = "The two passwords differ.";
      $("setup-error").hidden = false;
      return;
    }
    const csrf = await submitPassword("/ui/setup", a, $("setup-error"));
    if (csrf) { $("setup-password").value = ""; $("setup-password2").value = ""; loggedIn(csrf); }
  });
  $("uninstall-purge").addEventListener("change", (ev) => {
    $("uninstall-confirm").textContent = ev.target.checked ? "Uninstall and delete its data" : "Uninstall";
  });
  $("uninstall-dialog").addEventListener("close", () => {
    const d = $("uninstall-dialog");
    if (d.returnValue !== "confirm") return;
    const purge = $("uninstall-purge").checked;
    act(d.dataset.app, "uninstall", purge ? `Uninstalling ${d.dataset.app} and deleting its data` : `Uninstalling ${d.dataset.app}`, purge ? "?purge=true" : "");
  });
  let searchTimer = null;
  $("store-search").addEventListener("input", (ev) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      STORE.query = ev.target.value.trim().toLowerCase();
      STORE.shown = { catalog: STORE_PAGE, market: STORE_PAGE };
      drawStore();
    }, 150);
  });
  $("store-catalog-more").addEventListener("click", () => { STORE.shown.catalog += STORE_PAGE * 3; drawStore(); });
  $("store-market-more").addEventListener("click", () => { STORE.shown.market += STORE_PAGE * 3; drawStore(); });
  $("settings-form").addEventListener("submit", saveSettings);
  $("settings-trust-form").addEventListener("submit", trust);
  $("logs-close").addEventListener("click", () => { if (logsAbort) logsAbort.abort(); $("logs-dialog").close(); });
  $("logs-dialog").addEventListener("close", () => { if (logsAbort) logsAbort.abort(); });
  window.addEventListener("hashchange", route);
  // Keep the page current: apps change state on their own (the reconciler, health).
  setInterval(() => { if (S.csrf && !document.hidden && S.view !== "store" && S.view !== "settings") refresh(); }, 5000);
  boot();
});
