// The tenant console: buckets and objects of one S3 access key, through this gateway's S3 API.
"use strict";

const state = { s3: null, view: "buckets", bucket: "", prefix: "", selected: "" };
const $ = (id) => document.getElementById(id);

function start() {
  if (!window.crypto || !crypto.subtle) { // WebCrypto: https, or http on localhost only
    $("login-error").textContent = "This page signs requests with WebCrypto, which the browser " +
      "offers only over https or on localhost: open the console through one of those.";
    $("login-btn").disabled = true;
    return;
  }
  $("login").addEventListener("submit", (e) => { e.preventDefault(); login(); });
  for (const a of document.querySelectorAll("#nav a")) {
    a.addEventListener("click", () => show(a.dataset.view));
  }
  const saved = sessionStorage.getItem("skymesh.s3");
  if (saved) {
    const { accessKey, secret } = JSON.parse(saved);
    state.s3 = new S3(accessKey, secret);
    signedIn();
  }
}

async function login() {
  const s3 = new S3($("access-key").value.trim(), $("secret-key").value);
  $("login-error").textContent = "";
  try {
    await s3.listBuckets(); // proves the key before it is kept
  } catch (e) {
    $("login-error").textContent = "Sign-in failed: " + e.message;
    return;
  }
  sessionStorage.setItem("skymesh.s3", JSON.stringify({ accessKey: s3.accessKey, secret: s3.secret }));
  state.s3 = s3;
  signedIn();
}

function signedIn() {
  $("login").classList.add("hidden");
  $("nav").classList.remove("hidden");
  $("who").replaceChildren(h("span", { class: "mono" }, state.s3.accessKey), " ",
    h("button", { id: "logout", onclick: logout }, "Sign out"));
  show("buckets");
}

function logout() {
  sessionStorage.removeItem("skymesh.s3");
  location.reload();
}

function show(view, bucket, prefix) {
  state.view = view;
  if (bucket !== undefined) { state.bucket = bucket; state.prefix = prefix || ""; state.selected = ""; }
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === view || (view === "objects" && a.dataset.view === "buckets"));
  }
  const render = { buckets: renderBuckets, objects: renderObjects, keys: renderKeys,
    usage: renderUsage, project: renderProject }[view];
  render().catch(fail);
}

function fail(e) {
  $("view").prepend(h("p", { class: "error", id: "error" }, String(e.message || e)));
}

// ---------------------------------------------------------------- buckets
async function renderBuckets() {
  const buckets = await state.s3.listBuckets();
  const name = h("input", { type: "text", id: "new-bucket", placeholder: "new-bucket-name",
    pattern: "[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9]" });
  const create = h("form", { class: "row", id: "create-bucket" }, name,
    h("button", { class: "primary", type: "submit" }, "Create bucket"));
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await state.s3.createBucket(name.value.trim()); show("buckets"); } catch (err) { fail(err); }
  });
  const rows = buckets.map((b) => [
    h("a", { class: "link", "data-bucket": b.name, onclick: () => show("objects", b.name, "") }, b.name),
    b.created,
    h("button", { class: "danger", onclick: async () => {
      if (!confirm(`Delete the bucket ${b.name}? It must be empty.`)) return;
      try { await state.s3.deleteBucket(b.name); show("buckets"); } catch (err) { fail(err); }
    } }, "Delete"),
  ]);
  $("view").replaceChildren(h("section", { class: "card" }, h("h2", {}, "Buckets"), create,
    buckets.length ? h("div", { id: "bucket-list" }, table(["Name", "Created", ""], rows))
      : h("p", { class: "muted", id: "bucket-list" }, "No buckets yet.")));
}

// ---------------------------------------------------------------- objects
async function renderObjects() {
  const { bucket, prefix } = state;
  const listed = await state.s3.list(bucket, prefix, "/");
  const crumbs = h("div", { class: "crumbs row" },
    h("a", { onclick: () => show("buckets") }, "Buckets"), "/",
    h("a", { onclick: () => show("objects", bucket, "") }, bucket));
  let acc = "";
  for (const part of prefix.split("/").filter(Boolean)) {
    acc += part + "/";
    const to = acc;
    crumbs.append("/", h("a", { onclick: () => show("objects", bucket, to) }, part));
  }
  const folders = listed.prefixes.map((p) => h("tr", { "data-prefix": p },
    h("td", {}, h("a", { class: "link", onclick: () => show("objects", bucket, p) }, "📁 " + p.slice(prefix.length))),
    h("td", { class: "num" }, ""), h("td", {}, ""), h("td", {}, "")));
  const files = await Promise.all(listed.objects.map(objectRow));
  const rows = [...folders, ...files];
  $("view").replaceChildren(
    h("section", { class: "card" }, h("h2", {}, "Objects"), crumbs, uploadForm(),
      h("table", { id: "objects" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", { class: "num" }, "Size"),
          h("th", {}, "Last modified"), h("th", {}, ""))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Nothing here.")))),
      listed.truncated ? h("p", { class: "muted" }, `The first ${rows.length} entries; ` +
        "open a folder, or use an S3 client, for the rest.") : ""),
    h("section", { class: "card hidden", id: "details" }));
  if (state.selected) details(state.selected).catch(fail);
}

async function objectRow(o) {
  const { bucket } = state;
  const name = o.key.slice(state.prefix.length);
  const href = await downloadLink(bucket, o.key, 900);
  return h("tr", { "data-key": o.key },
    h("td", {}, h("a", { class: "link", onclick: () => details(o.key).catch(fail) }, name)),
    h("td", { class: "num" }, fmtBytes(o.size)),
    h("td", {}, o.modified),
    h("td", {},
      h("a", { class: "download", href, download: name.split("/").pop() || "download" }, "Download"), " ",
      h("button", { class: "details", onclick: () => details(o.key).catch(fail) }, "Details"), " ",
      h("button", { class: "danger delete", onclick: async () => {
        if (!confirm(`Delete ${o.key}?`)) return;
        try { await state.s3.deleteObject(bucket, o.key); show("objects"); } catch (err) { fail(err); }
      } }, "Delete")));
}

/** A presigned GET that the browser saves as a file rather than shows. */
function downloadLink(bucket, key, expires, versionId) {
  const file = key.split("/").pop() || "download";
  const query = [["response-content-disposition", `attachment; filename*=UTF-8''${uriEncode(file)}`]];
  if (versionId && versionId !== "null") query.push(["versionId", versionId]);
  return state.s3.presign("GET", bucket, key, expires, query);
}

function uploadForm() {
  const input = h("input", { type: "file", id: "upload-file", multiple: true });
  const bar = h("progress", { id: "upload-progress", max: 1, value: 0, class: "hidden" });
  const status = h("span", { id: "upload-status", class: "muted" });
  const button = h("button", { class: "primary", id: "upload-btn", type: "button", onclick: async () => {
    const { bucket, prefix } = state;
    const files = [...input.files];
    if (!files.length) { status.textContent = "Choose a file first."; return; }
    bar.classList.remove("hidden");
    button.disabled = true;
    try {
      for (const file of files) {
        const key = prefix + file.name;
        status.textContent = `uploading ${key}…`;
        await state.s3.upload(bucket, key, file, (done, total) => { bar.max = total; bar.value = done; });
        status.textContent = `uploaded ${key}`;
      }
      const done = status.textContent, max = bar.max;
      await renderObjects(); // the listing with the new objects, and a new form
      $("upload-status").textContent = done;
      Object.assign($("upload-progress"), { max, value: max });
      $("upload-progress").classList.remove("hidden");
    } catch (err) {
      status.textContent = "";
      fail(err);
    } finally {
      button.disabled = false;
    }
  } }, "Upload");
  return h("div", { class: "row" }, input, button, bar, status);
}

async function details(key) {
  state.selected = key;
  const { bucket } = state;
  const [versions, tags] = await Promise.all([
    state.s3.versions(bucket, key),
    state.s3.tags(bucket, key).catch((e) => e),
  ]);
  const versionRows = await Promise.all(versions.map(async (v) => [
    h("code", {}, v.versionId), v.latest ? "latest" : "", v.modified,
    v.marker ? "delete marker" : fmtBytes(v.size),
    v.marker ? "" : h("a", { class: "download", download: key.split("/").pop(),
      href: await downloadLink(bucket, key, 900, v.versionId) }, "Download")]));
  const expires = h("input", { type: "number", id: "share-expires", min: 1, max: 604800, value: 3600 });
  const url = h("textarea", { class: "share hidden", id: "share-url", readonly: true });
  const share = h("button", { id: "share-btn", onclick: async () => {
    const secs = Math.max(1, Math.min(604800, Number(expires.value) || 3600));
    url.value = await state.s3.presign("GET", bucket, key, secs);
    url.classList.remove("hidden");
    url.select();
  } }, "Make link");
  const panel = $("details");
  panel.classList.remove("hidden");
  panel.replaceChildren(
    h("h2", {}, "Object ", h("code", { id: "details-key" }, key)),
    h("h3", {}, "Share"),
    h("div", { class: "row" }, "A link anyone can download with, valid for", expires, "seconds (at most 7 days)", share),
    url,
    h("h3", {}, "Versions"),
    h("div", { id: "versions" }, table(["Version id", "Latest", "Last modified", "#Size", ""],
      versionRows)),
    h("h3", {}, "Tags"),
    tags instanceof Error ? h("p", { class: "error" }, tags.message)
      : tags.length ? h("div", { id: "tags" }, table(["Key", "Value"], tags.map((t) => [t.key, t.value])))
        : h("p", { class: "muted", id: "tags" }, "No tags."));
}

// ---------------------------------------------------------------- project
async function renderProject() {
  const buckets = await state.s3.listBuckets();
  const sizes = h("div", { id: "project-usage" }, h("p", { class: "muted" }, "Counting…"));
  $("view").replaceChildren(
    h("section", { class: "card" }, h("h2", {}, "Storage"), sizes),
    h("p", { class: "muted" }, "The project's metered usage over time, and its cost, is on the ",
      h("a", { class: "link", onclick: () => show("usage") }, "Usage"), " page; its keys on the ",
      h("a", { class: "link", onclick: () => show("keys") }, "Keys"), " page."));
  const rows = [];
  const bars = [];
  for (const b of buckets) {
    const { objects, truncated } = await state.s3.list(b.name, "", "", 100);
    const bytes = objects.reduce((n, o) => n + o.size, 0);
    const more = truncated ? " or more" : "";
    rows.push([b.name, objects.length + more, fmtBytes(bytes) + more]);
    bars.push({ label: b.name, value: bytes });
  }
  sizes.replaceChildren(
    buckets.length ? barChart(bars, { title: "bytes stored per bucket", unit: " B", width: 560, fmt: fmtBytes }) : "",
    table(["Bucket", "#Objects", "#Stored (plaintext)"], rows),
    h("p", { class: "muted" }, "Counted by listing each bucket now (current versions only)."));
}

// ---------------------------------------------------------------- keys
const EXPIRIES = [["never", ""], ["1 hour", 3600], ["1 day", 86400], ["30 days", 30 * 86400],
  ["1 year", 365 * 86400]];

function keyState(k) {
  if (k.revoked_at) return "revoked";
  if (k.expires_at && k.expires_at * 1000 <= Date.now()) return "expired";
  return "live";
}

async function renderKeys() {
  const keys = await state.s3.api("GET", "keys");
  const kind = h("select", { id: "key-kind" }, h("option", { value: "s3" }, "S3 access key"),
    h("option", { value: "inference" }, "Inference API key"));
  const name = h("input", { type: "text", id: "key-name", placeholder: "what it is for", maxlength: 200 });
  const expires = h("select", { id: "key-expires" },
    EXPIRIES.map(([label, secs]) => h("option", { value: secs }, "expires: " + label)));
  const create = h("form", { class: "row", id: "create-key" }, kind, name, expires,
    h("button", { class: "primary", type: "submit" }, "Create key"));
  create.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { scope: kind.value, name: name.value.trim() };
    if (expires.value) body.expires_in = Number(expires.value);
    try {
      const made = await state.s3.api("POST", "keys", [], body);
      await renderKeys();
      showSecret(made);
    } catch (err) { fail(err); }
  });
  const rows = [
    ...keys.access_keys.map((k) => ({ kind: "S3", id: k.access_key_id, k })),
    ...keys.inference_keys.map((k) => ({ kind: "inference", id: k.key_id, k })),
  ].sort((a, b) => b.k.created_at - a.k.created_at).map(({ kind: kd, id, k }) => {
    const st = keyState(k);
    const own = kd === "S3" && id === state.s3.accessKey;
    return h("tr", { "data-key-id": id, "data-state": st },
      h("td", {}, kd), h("td", {}, h("code", {}, id), own ? h("span", { class: "muted" }, " (signed in)") : ""),
      h("td", {}, k.name), h("td", {}, fmtTime(k.created_at)),
      h("td", {}, k.expires_at ? fmtTime(k.expires_at) : "never"),
      h("td", { class: st === "live" ? "ok" : "bad" }, st),
      h("td", {}, st === "live" ? h("button", { class: "danger revoke", onclick: () => revoke(kd, id, own) },
        "Revoke") : ""));
  });
  $("view").replaceChildren(
    h("section", { class: "card" }, h("h2", {}, "Keys"),
      h("p", { class: "muted" }, "S3 access keys sign S3 requests (and this console); inference " +
        "API keys are the OpenAI-compatible API's bearer keys. A secret is shown once, when " +
        "its key is made: the network keeps none (an S3 secret is derived by this gateway, an " +
        "inference key only hashed)."),
      create, h("div", { id: "new-secret", class: "hidden" }),
      h("table", { id: "keys" },
        h("thead", {}, h("tr", {}, ["Kind", "Id", "Name", "Created", "Expires", "State", ""].map((x) => h("th", {}, x)))),
        h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No keys."))))));
}

/** The secret of a key just made, with a copy button: it is not shown again. */
function showSecret(made) {
  const c = made.created;
  const lines = c.access_key
    ? [["Access key id", c.access_key.access_key_id], ["Secret access key", made.secret_access_key]]
    : [["Inference API key", c.inference_key.key]];
  const panel = $("new-secret");
  panel.classList.remove("hidden");
  panel.replaceChildren(h("p", { class: "warn" }, "Copy the secret now: it is shown only this once."),
    ...lines.map(([label, value], i) => {
      const field = h("input", { type: "text", readonly: true, value, class: "mono",
        id: i === lines.length - 1 ? "new-secret-value" : "new-key-id", size: 60 });
      return h("div", { class: "row" }, h("label", {}, label), field,
        h("button", { type: "button", class: "copy", onclick: () => copy(field) }, "Copy"));
    }));
}

async function copy(field) {
  field.select();
  try { await navigator.clipboard.writeText(field.value); } catch (e) { document.execCommand("copy"); }
}

async function revoke(kind, id, own) {
  if (own && !confirm(`${id} is the key you are signed in with: revoking it signs you out ` +
    "of this console, and every program using it stops working. Revoke it anyway?")) return;
  if (!own && !confirm(`Revoke the ${kind} key ${id}? Programs using it stop working within seconds.`)) return;
  try {
    await state.s3.api("POST", `keys/${id}/revoke`); // ids are letters, digits, - and _
    if (own) { logout(); return; }
    await renderKeys();
  } catch (err) { fail(err); }
}

// ---------------------------------------------------------------- usage
const SPANS = [["last 24 hours", 86400, 3600], ["last 7 days", 7 * 86400, 86400],
  ["last 30 days", 30 * 86400, 86400], ["last 365 days", 365 * 86400, 86400]];

async function renderUsage() {
  const pick = $("usage-span");
  const chosen = pick ? Number(pick.value) : 2;
  const [, span, step] = SPANS[chosen];
  const now = Math.floor(Date.now() / 1000);
  const since = Math.floor((now - span) / step) * step;
  const u = await state.s3.api("GET", "usage", [["since", since], ["step", step]]);
  const select = h("select", { id: "usage-span", onchange: () => show("usage") },
    SPANS.map(([label], i) => h("option", { value: i, selected: i === chosen }, label)));
  const label = (t) => fmtTime(t).slice(step < 86400 ? 11 : 5, step < 86400 ? 16 : 10);
  const chart = (title, value, fmt) => barChart(u.points.map((p) => ({ label: label(p.start), value: value(p) })),
    { title, fmt, width: Math.min(900, 80 + 40 * Math.max(u.points.length, 4)), height: 160,
      labelEvery: Math.ceil(u.points.length / 12), values: u.points.length <= 12 });
  const usd = (x) => "$" + (x < 0.01 && x > 0 ? x.toPrecision(2) : x.toFixed(2));
  const t = u.total;
  const cost = table(["Usage", "#Amount", "#Price", "#Cost"], [
    ["Storage", (t.byte_hours / 730 / 1e9).toPrecision(3) + " GB-months", usd(u.price_storage_gb_month) + " / GB-month", usd(u.storage_amount)],
    ["Egress", fmtBytes(t.egress_bytes), usd(u.price_egress_gb) + " / GB", usd(u.egress_amount)],
    ["Inference", fmtCount(t.tokens) + " tokens in " + fmtCount(t.requests) + " requests",
      usd(u.price_compute_1k_tokens) + " / 1000 tokens", usd(u.compute_amount)],
    [h("b", {}, "Total"), "", "", h("b", { id: "usage-amount" }, usd(u.amount))],
  ]);
  const rows = u.points.map((p) => [fmtTime(p.start), fmtBytes(p.stored_bytes),
    (p.byte_hours / 1e9).toFixed(3), fmtBytes(p.egress_bytes), p.requests, p.tokens]);
  $("view").replaceChildren(
    h("section", { class: "card", id: "usage", "data-span": chosen }, h("h2", {}, "Usage and cost"),
      h("div", { class: "row" }, select),
      h("div", { id: "usage-cost" }, cost),
      h("p", { class: "muted" }, "Metered by the network every accounting interval (whole hours); " +
        "priced at the network's rates, a GB-month being 730 hours of a GB stored.")),
    h("section", { class: "card", id: "usage-charts" }, h("h2", {}, "Over time"),
      u.points.length ? [
        h("h3", {}, "Stored"), chart("bytes stored", (p) => p.stored_bytes, fmtBytes),
        h("h3", {}, "Egress"), chart("bytes read", (p) => p.egress_bytes, fmtBytes),
        h("h3", {}, "Inference tokens"), chart("tokens", (p) => p.tokens, fmtCount),
      ] : h("p", { class: "muted" }, "No usage metered in this span yet."),
      h("div", { id: "usage-table" }, table(["Start (UTC)", "#Stored", "#GB-hours", "#Egress", "#Requests",
        "#Tokens"], rows))));
}

document.addEventListener("DOMContentLoaded", start);
