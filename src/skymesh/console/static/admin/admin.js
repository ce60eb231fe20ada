// The administrator's console: the coordinator's admin JSON routes (docs/spec/coordinator-api.md),
// called with the admin token as a bearer token, drawn as tables and small SVG charts.
//
// Each section is one entry of PANELS: the routes it reads and how it draws them. A new
// admin route joins as one more entry and one more <section> in index.html.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN = "skymesh.admin";
const REFRESH_MS = 30000;
const LOOKUP_REFRESH_MS = 3000; // the map and an object's pieces, while one is shown

class Refused extends Error {}
let timer = null;
let lookup = null; // { bucket, key } shown in #lookup, or null
let lookupTimer = null;
let holders = new Map(); // node id -> the pieces it holds of the object looked up

async function api(path) {
  const resp = await fetch(path, {
    headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN) },
    cache: "no-store",
  });
  if (resp.status === 401 || resp.status === 403) throw new Refused("the admin token was refused");
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(`${path}: ${body.code || resp.status} ${body.message || ""}`);
  return body;
}

// ---------------------------------------------------------------- panels
const PANELS = [
  { id: "summary", routes: ["/v1/nodes", "/v1/admin/durability"], draw: drawSummary },
  { id: "map", routes: ["/v1/nodes"], draw: drawMap },
  { id: "durability", routes: ["/v1/admin/durability"], draw: drawDurability },
  { id: "usage", routes: ["/v1/admin/routing", () => "/v1/usage?group_by=project&since=" + usageSince()],
    draw: drawUsage },
  { id: "storage", routes: ["/v1/admin/routing", () => "/v1/admin/accounting?by=project&since=" + usageSince()],
    draw: drawStorage },
  { id: "operators", routes: ["/v1/admin/operators"], draw: drawOperators },
  { id: "payouts", routes: [() => "/v1/admin/payouts?month=" + payoutMonth()], draw: drawPayouts },
  { id: "loops", routes: ["/v1/admin/leases"], draw: drawLoops },
  { id: "events", routes: ["/v1/admin/status"], draw: drawEvents },
  { id: "lookup", routes: ["/v1/nodes", () => lookupPath()], draw: drawLookup, when: () => lookup !== null },
];

const COLORS = { online: "#1f9d55", "online, vetting": "#6aa9e9", draining: "#d98f0b",
  offline: "#d0342c", disqualified: "#7a1f1a" };

/** A node's state in words, and its colour on the map. */
function nodeState(n) {
  if (n.disqualified) return ["disqualified", COLORS.disqualified];
  if (!n.admitted) return ["operator revoked", COLORS.disqualified];
  if (!n.online) return ["offline", COLORS.offline];
  if (n.exit) return [n.exit, COLORS.draining];
  return n.vetted ? ["online", COLORS.online] : ["online, vetting", COLORS["online, vetting"]];
}

function stat(label, value, cls) {
  return h("div", { class: "stat" }, h("div", { class: "muted" }, label),
    h("div", { class: "big " + (cls || "") }, value));
}

function drawSummary(el, nodes, report) {
  const list = nodes.nodes;
  const online = list.filter((n) => n.online).length;
  const used = list.reduce((s, n) => s + n.used_bytes, 0);
  const cap = list.reduce((s, n) => s + n.capacity_bytes, 0);
  el.replaceChildren(h("div", { class: "row stats" },
    stat("nodes online", `${online} / ${list.length}`, online < list.length ? "warn" : "ok"),
    stat("regions", new Set(list.map((n) => n.region)).size),
    stat("operators", new Set(list.map((n) => n.operator)).size),
    stat("stored (ciphertext pieces)", `${fmtBytes(used)} of ${fmtBytes(cap)}`),
    stat("segments", `${report.segments} (+${report.inline_segments} inline)`),
    stat("queued for repair", report.at_risk_total, report.at_risk_total ? "warn" : "ok"),
    stat("lost", report.lost_total, report.lost_total ? "bad" : "ok")));
}

/** Nodes by region, then operator: a tile per node coloured by health, a load meter each. */
function drawMap(el, nodes) {
  const regions = new Map();
  for (const n of nodes.nodes) {
    if (!regions.has(n.region)) regions.set(n.region, new Map());
    const ops = regions.get(n.region);
    if (!ops.has(n.operator)) ops.set(n.operator, []);
    ops.get(n.operator).push(n);
  }
  const legend = h("div", { class: "row muted" }, Object.entries(COLORS).map(([state, color]) =>
    h("span", {}, tile({ label: state, color }), " ", state)));
  const cards = [...regions.keys()].sort().map((region) => {
    const ops = regions.get(region);
    return h("div", { class: "region", "data-region": region }, h("h3", {}, region),
      [...ops.keys()].sort().map((op) => {
        const ns = ops.get(op);
        const used = ns.reduce((s, n) => s + n.used_bytes, 0);
        const cap = ns.reduce((s, n) => s + n.capacity_bytes, 0);
        return h("div", { class: "operator" },
          h("div", { class: "row" }, h("b", {}, op),
            h("span", { class: "muted" }, ns.length === 1 ? "1 node" : `${ns.length} nodes`),
            meter(cap ? used / cap : 0, 80), h("span", { class: "muted" }, `${fmtBytes(used)} / ${fmtBytes(cap)}`),
          h("span", { class: "nodes" }, ns.map((n) => {
            const [state, color] = nodeState(n);
            return tile({ color, state, node: n.node_id, label: `${n.node_id.slice(0, 12)} ${state}\n${n.address}\n` +
              `${fmtBytes(n.used_bytes)} of ${fmtBytes(n.capacity_bytes)} used\n` +
              `audit score ${n.audit_score.toFixed(3)} (${n.audits} audits)` });
          }))));
      }));
  });
  const rows = nodes.nodes.map((n) => {
    const [state] = nodeState(n);
    return [h("code", { title: n.node_id }, n.node_id.slice(0, 16)), n.region, n.operator, state,
      h("span", {}, meter(n.capacity_bytes ? n.used_bytes / n.capacity_bytes : 0, 60), " ",
        fmtBytes(n.used_bytes)), n.audit_score.toFixed(3), String(n.audits), fmtTime(n.last_seen)];
  });
  el.replaceChildren(h("h2", {}, "Network map"), legend, h("div", { class: "grid" }, cards),
    h("details", {}, h("summary", {}, "Every node"),
      table(["Node", "Region", "Operator", "State", "Used", "#Audit score", "#Audits", "Last seen"], rows)));
  markHolders();
}

function tile({ color, label, node, state }) {
  const svg = svgEl("svg", { width: 18, height: 18, class: "tile", "data-node": node || "",
    "data-state": state || "" });
  svg.appendChild(svgEl("rect", { x: 1, y: 1, width: 16, height: 16, rx: 3, fill: color }));
  svg.appendChild(svgEl("title", {}, label));
  return svg;
}

// ---------------------------------------------------------------- object lookup
function lookupPath() {
  return "/v1/admin/objects/pieces?bucket=" + encodeURIComponent(lookup.bucket) +
    "&key=" + encodeURIComponent(lookup.key);
}

/** Which node holds which piece of each segment, and the durability rule's verdict on it. */
function drawLookup(el, nodes, where) {
  const byId = new Map(nodes.nodes.map((n) => [n.node_id, n]));
  holders = new Map();
  const parts = [h("p", {}, h("b", {}, `${where.bucket}/${where.key}`),
    `: ${fmtBytes(where.size)}, ${where.segments.length} segment(s) in pieces` +
    (where.inline_segments ? `, ${where.inline_segments} inline (kept by the coordinator, no pieces)` : "") +
    `; stored ${fmtTime(where.created_at)}.`)];
  for (const seg of where.segments) {
    const at = `${seg.position.part}/${seg.position.index}`;
    const s = seg.scheme;
    const cls = seg.healthy < s.k ? "bad" : seg.healthy <= s.repair ? "warn" : "ok";
    parts.push(h("h3", {}, `Segment ${at}: `, h("span", { class: cls }, `${seg.healthy} healthy`),
      ` of ${seg.pieces.length} stored (scheme ${s.k}/${s.repair}/${s.optimal}/${s.total})`));
    parts.push(table(["#Piece", "Node", "Region", "Operator", "Node state", "Piece"], seg.pieces.map((p) => {
      const n = byId.get(p.node_id);
      if (!holders.has(p.node_id)) holders.set(p.node_id, []);
      holders.get(p.node_id).push({ at, piece: p.piece_num, state: p.state });
      return [String(p.piece_num),
        h("code", { class: "holder", title: p.node_id, "data-node": p.node_id, "data-state": p.state },
          p.node_id.slice(0, 12)),
        n ? n.region : "", n ? n.operator : "", n ? nodeState(n)[0] : "unknown",
        h("span", { class: p.state === "lost" ? "bad" : p.state === "misplaced" ? "warn" : "ok" }, p.state)];
    })));
  }
  el.replaceChildren(...parts);
  markHolders();
}

/** Outline the map's tiles of the nodes holding the object's pieces (dashed: lost there). */
function markHolders() {
  for (const t of document.querySelectorAll("#map .nodes svg.tile")) {
    const held = holders.get(t.getAttribute("data-node")) || [];
    t.classList.toggle("holder", held.length > 0);
    t.classList.toggle("holder-lost", held.some((x) => x.state === "lost"));
    if (held.length) t.setAttribute("data-pieces", held.map((x) => `${x.at}#${x.piece}`).join(" "));
    else t.removeAttribute("data-pieces");
  }
}

function showLookup(bucket, key) {
  lookup = bucket && key ? { bucket, key } : null;
  if (lookupTimer) clearInterval(lookupTimer);
  lookupTimer = null;
  holders = new Map();
  $("lookup").replaceChildren();
  markHolders();
  if (!lookup) return;
  $("lookup").replaceChildren(h("p", { class: "muted" }, "Looking up…"));
  refresh(["lookup"]).catch(signIn);
  lookupTimer = setInterval(() => refresh(["map", "lookup"]).catch(signIn), LOOKUP_REFRESH_MS);
}

function drawDurability(el, report) {
  const parts = [h("h2", {}, "Durability"),
    h("p", { class: "muted" }, `${report.segments} segments in pieces, ${report.inline_segments} inline; ` +
      `${report.healthy_nodes} of ${report.nodes} nodes healthy; report of ${fmtTime(report.generated_at)}.`)];
  for (const sh of report.schemes) {
    const s = sh.scheme;
    const counts = Object.entries(sh.histogram).map(([k, v]) => [Number(k), v]);
    const lo = Math.min(s.k - 1, ...counts.map((c) => c[0]));
    const hi = Math.max(s.total, ...counts.map((c) => c[0]));
    const byCount = new Map(counts);
    const bars = [];
    for (let i = Math.max(0, lo); i <= hi; i++) {
      bars.push({ label: i, value: byCount.get(i) || 0,
        color: i < s.k ? "#d0342c" : i <= s.repair ? "#d98f0b" : "#1f9d55" });
    }
    parts.push(h("h3", {}, `Scheme ${s.k}/${s.repair}/${s.optimal}/${s.total}: ${sh.segments} segments, ` +
      `${sh.at_or_below_repair} at or below repair, ${sh.lost} lost`),
    barChart(bars, { title: "segments by healthy pieces", xlabel: "healthy pieces per segment",
      marks: [{ at: s.k, text: "k" }, { at: s.repair, text: "repair", after: true }] }));
  }
  const seg = (x) => [x.bucket, h("code", {}, x.key), `${x.position.part}/${x.position.index}`,
    `${x.healthy} / ${x.stored}`, `${x.scheme.k}/${x.scheme.repair}/${x.scheme.optimal}/${x.scheme.total}`];
  const heads = ["Bucket", "Key", "Part/segment", "Healthy / stored", "Scheme"];
  parts.push(h("h3", {}, `Repair queue: ${report.at_risk_total} segments at or below their repair threshold`),
    report.at_risk.length ? h("div", { id: "repair-queue" }, table(heads, report.at_risk.map(seg)))
      : h("p", { class: "muted", id: "repair-queue" }, "Nothing to repair."));
  if (report.lost_total) {
    parts.push(h("h3", { class: "bad" }, `Lost: ${report.lost_total} segments below k`),
      table(heads, report.lost.map(seg)));
  }
  el.replaceChildren(...parts);
}

function usageSince() {
  const pick = $("usage-since");
  const days = pick ? Number(pick.value) : 30;
  return days ? Math.floor(Date.now() / 1000 - days * 86400) : 0;
}

function drawUsage(el, projects, usage) {
  const byId = new Map(usage.rows.map((r) => [r.project_id, r]));
  const rows = projects.projects.map((p) => {
    const u = byId.get(p.project_id) || { requests: 0, prompt_tokens: 0, completion_tokens: 0, cost: 0 };
    return { p, u };
  });
  const pick = $("usage-since");
  const value = pick ? pick.value : "30";
  const since = h("select", { id: "usage-since", onchange: () => refresh(["usage", "storage"]).catch(signIn) },
    [["1", "last 24 hours"], ["30", "last 30 days"], ["0", "all time"]].map(([v, t]) =>
      h("option", { value: v, selected: v === value }, t)));
  el.replaceChildren(h("h2", {}, "Usage per project"),
    h("div", { class: "row" }, "Inference over", since),
    rows.some(({ u }) => u.requests) ? barChart(rows.map(({ p, u }) => ({ label: p.name, value: u.prompt_tokens + u.completion_tokens })),
      { title: "inference tokens per project", unit: " tokens", width: 560 }) : "",
    table(["Project", "Id", "#Requests", "#Prompt tokens", "#Completion tokens", "#Cost (USD)"],
      rows.map(({ p, u }) => [p.name, h("code", {}, p.project_id), String(u.requests), String(u.prompt_tokens),
        String(u.completion_tokens), u.cost.toFixed(4)])),
    h("p", { class: "muted" }, "Storage per project over the same span is the next panel."));
}

const GB = 1e9; // accounting and payouts count decimal GB, as operators are paid

/** A quantity to three significant digits (a test network's GB-hours are tiny). */
function fmtQty(x) {
  return x === 0 ? "0" : Math.abs(x) >= 1000 ? x.toFixed(0) : x.toPrecision(3);
}

/** Stored bytes (the span's last tally), GB-hours and egress per project: the accounting
 * loop's hourly rollups over the span picked in the usage panel. */
function drawStorage(el, projects, acct) {
  const byId = new Map(acct.rows.map((r) => [r.key, r]));
  const known = new Set(projects.projects.map((p) => p.project_id));
  const rows = projects.projects.map((p) => ({ name: p.name, id: p.project_id, r: byId.get(p.project_id) }))
    .concat(acct.rows.filter((r) => !known.has(r.key)).map((r) => ({ name: r.name || r.key, id: r.key, r })))
    .map(({ name, id, r }) => ({ name, id, r: r || { stored_bytes: 0, byte_hours: 0, egress_bytes: 0 } }));
  const pick = $("usage-since");
  const span = pick ? pick.options[pick.selectedIndex].text : "last 30 days";
  el.replaceChildren(h("h2", {}, "Storage per project"),
    h("p", { class: "muted" }, `Over the ${span === "all time" ? "whole history" : span}, from the ` +
      "accounting loop's hourly rollups (objects' sizes, before erasure coding)."),
    rows.some(({ r }) => r.stored_bytes) ? barChart(rows.map(({ name, r }) => ({ label: name, value: r.stored_bytes })),
      { title: "stored bytes per project (last tally)", fmt: fmtBytes, width: 560 }) : "",
    table(["Project", "Id", "#Stored (last tally)", "#GB-hours", "#Egress"],
      rows.map(({ name, id, r }) => [name, h("code", {}, id), fmtBytes(r.stored_bytes),
        fmtQty(r.byte_hours / GB), fmtBytes(r.egress_bytes)])));
}

function drawOperators(el, ops) {
  el.replaceChildren(h("h2", {}, "Operators"),
    table(["Operator", "Regions", "Compute", "#Nodes", "Admitted", "Join token expires", "Revoked"],
      ops.operators.map((o) => [o.name, o.regions.join(", "), o.compute ? "yes" : "no", String(o.nodes),
        fmtTime(o.created_at), fmtTime(o.token_expires_at), o.revoked_at ? fmtTime(o.revoked_at) : ""])),
    h("p", { class: "muted" }, "Admit and revoke with ", h("code", {}, "skymesh operator add|revoke"), "."));
}

/** The month picked for payouts (YYYY-MM, UTC), this month until one is picked. */
function payoutMonth() {
  const pick = $("payout-month");
  return pick && pick.value ? pick.value : new Date().toISOString().slice(0, 7);
}

/** Each operator's pay for a month at the coordinator's prices (``skymesh payouts``). */
function drawPayouts(el, report) {
  const month = h("input", { type: "month", id: "payout-month", value: report.month, required: true,
    onchange: () => refresh("payouts").catch(signIn) });
  const usd = (x) => x.toFixed(4);
  const held = report.holdback.length ? report.holdback.map((x) => x + "%").join(", ") : "none";
  el.replaceChildren(h("h2", {}, "Operators' accounting"),
    h("div", { class: "row" }, h("label", { for: "payout-month" }, "Payouts for"), month,
      h("span", { class: "muted" }, `${report.hours} hours; USD ${report.price_storage_gb_month} per GB-month, ` +
        `${report.price_egress_gb} per GB of egress, ${report.price_compute_1k_tokens} per 1000 tokens; ` +
        `held back from new nodes: ${held}`)),
    report.rows.length ? table(["Operator", "#Nodes", "#Storage GB-month", "#Egress GB", "#Repair egress GB",
      "#Tokens", "#Amount (USD)", "#Held back", "#Net"], report.rows.map((r) => [r.operator, String(r.nodes),
      fmtQty(r.storage_gb_month), fmtQty(r.egress_gb), fmtQty(r.repair_egress_gb), String(r.tokens),
      usd(r.gross), usd(r.held), usd(r.net)]))
      : h("p", { class: "muted" }, "No operator has usage that month."),
    h("p", { class: "muted" }, "For the books: ", h("code", {}, `skymesh payouts --month ${report.month} --csv`),
      " (one row per operator, every amount)."));
}

function drawLoops(el, leases) {
  el.replaceChildren(h("h2", {}, "Background loops"),
    h("p", { class: "muted" }, `Leases as coordinator ${leases.coordinator} sees them.`),
    table(["Loop", "Held by", "Here", "#Runs here", "Last run here", "Lease expires"],
      leases.leases.map((l) => [l.name, h("code", {}, l.holder || "—"), l.held_here ? "yes" : "",
        l.runs === null ? "" : String(l.runs), fmtTime(l.last_run_at), fmtTime(l.expires_at)])));
}

/** The answering coordinator's last warnings (newest first) and the loops whose last
 * step failed there (``GET /v1/admin/status``, as ``skymesh status`` shows them). */
function drawEvents(el, status) {
  const failing = status.leases.leases.filter((l) => l.last_error);
  const levels = { WARNING: "warn", ERROR: "bad", CRITICAL: "bad" };
  el.replaceChildren(h("h2", {}, "Recent events"),
    h("p", { class: "muted" }, `What coordinator ${status.coordinator_id} (${status.version}) logged at ` +
      "WARNING or above since it started (its last 50; the log file keeps all)."),
    status.events.length ? table(["Time", "Level", "Logger", "Message"], status.events.slice().reverse().map((e) =>
      [h("span", { class: "nowrap" }, fmtTime(e.at)), h("span", { class: levels[e.level] || "" }, e.level), h("code", {}, e.logger),
        h("span", { class: "message" }, e.message)]))
      : h("p", { class: "muted" }, "No warnings."),
    h("h3", {}, "Loops with a last error"),
    failing.length ? table(["Loop", "#Failures", "Last error", "At", "Now"], failing.map((l) =>
      [l.name, String(l.failures), h("code", {}, l.last_error), h("span", { class: "nowrap" }, fmtTime(l.last_error_at)),
        l.last_error_at > (l.last_run_at || 0) ? h("span", { class: "bad" }, "failing") : "recovered"]))
      : h("p", { class: "muted" }, "No loop failed here."));
}

// ---------------------------------------------------------------- loading
/** Redraw every panel, or those whose ids ``only`` names (an id or a list). */
async function refresh(only) {
  const ids = only === undefined ? null : [].concat(only);
  const cache = new Map(); // one fetch per route, shared by the panels that read it
  const get = (r) => {
    const path = typeof r === "function" ? r() : r;
    if (!cache.has(path)) cache.set(path, api(path));
    return cache.get(path);
  };
  const wanted = (p) => (!ids || ids.includes(p.id)) && (!p.when || p.when());
  await Promise.all(PANELS.filter(wanted).map(async (p) => {
    const el = $(p.id);
    try {
      p.draw(el, ...(await Promise.all(p.routes.map(get))));
    } catch (e) {
      if (e instanceof Refused) throw e;
      el.replaceChildren(h("p", { class: "error" }, String(e.message || e)));
    }
  }));
  // When every panel was last redrawn (browser clock, ms): a test clicking Refresh
  // waits for it to pass the click rather than reading the panels drawn before.
  if (!ids) $("view").setAttribute("data-refreshed-at", String(Date.now()));
}

async function signIn() {
  $("login-error").textContent = "";
  try {
    await refresh();
  } catch (e) {
    sessionStorage.removeItem(TOKEN);
    $("login").classList.remove("hidden");
    $("view").classList.add("hidden");
    $("nav").classList.add("hidden");
    $("login-error").textContent = "Sign-in failed: " + (e.message || e);
    return;
  }
  $("login").classList.add("hidden");
  $("view").classList.remove("hidden");
  $("nav").classList.remove("hidden");
  $("who").replaceChildren(h("button", { id: "refresh", onclick: () => refresh().catch(signIn) }, "Refresh"), " ",
    h("button", { id: "logout", onclick: () => { sessionStorage.removeItem(TOKEN); location.reload(); } }, "Sign out"));
  if (!timer) timer = setInterval(() => refresh().catch(signIn), REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN, $("admin-token").value.trim());
    signIn();
  });
  $("lookup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showLookup($("lookup-bucket").value.trim(), $("lookup-key").value);
  });
  $("lookup-clear").addEventListener("click", () => {
    $("lookup-form").reset();
    showLookup("", "");
  });
  if (sessionStorage.getItem(TOKEN)) signIn();
});
