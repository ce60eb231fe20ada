// The S3 API of the gateway that served this page, signed with AWS Signature V4 in the
// browser (WebCrypto: available on https and on http://localhost). Path-style requests
// to the same origin; the secret never leaves the browser.
"use strict";

const REGION = "us-east-1"; // the gateway takes any region in a signature's scope
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const UNSIGNED = "UNSIGNED-PAYLOAD";
const MIB = 1024 * 1024;
const utf8 = new TextEncoder();

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(data) {
  return hex(await crypto.subtle.digest("SHA-256", typeof data === "string" ? utf8.encode(data) : data));
}

async function hmac(key, msg) {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, utf8.encode(msg)));
}

/** RFC 3986 encoding as SigV4 wants it; "/" kept when encoding a key's path. */
function uriEncode(s, keepSlash) {
  const e = encodeURIComponent(s).replace(/[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return keepSlash ? e.replace(/%2F/g, "/") : e;
}

function objectPath(bucket, key) {
  if (!bucket) return "/";
  return "/" + uriEncode(bucket) + (key ? "/" + uriEncode(key, true) : "");
}

function canonicalQuery(query) {
  return query.map(([k, v]) => [uriEncode(k), uriEncode(v === undefined ? "" : String(v))])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => k + "=" + v).join("&");
}

function amzNow() {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return { stamp, date: stamp.slice(0, 8) };
}

class S3 {
  constructor(accessKey, secret) {
    this.accessKey = accessKey;
    this.secret = secret;
    this.multipartThreshold = 64 * MIB; // larger files go by multipart upload
    this.partSize = 16 * MIB; // grown for files of more than 10,000 parts (S3's most)
  }

  /** The day's signing key, derived once a day (every link of a listing is signed). */
  async signingKey(date) {
    if (this.keyDate !== date) {
      let k = await hmac(utf8.encode("AWS4" + this.secret), date);
      k = await hmac(k, REGION);
      k = await hmac(k, "s3");
      this.key = hmac(k, "aws4_request");
      this.keyDate = date;
    }
    return this.key;
  }

  async signature(canonical, stamp, date) {
    const scope = `${date}/${REGION}/s3/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", stamp, scope, await sha256Hex(canonical)].join("\n");
    return { scope, sig: hex(await hmac(await this.signingKey(date), toSign)) };
  }

  /** Headers for a header-signed request (without Host, which the browser sets). */
  async sign(method, path, query, payloadHash, extra) {
    const { stamp, date } = amzNow();
    const headers = { host: location.host, "x-amz-content-sha256": payloadHash, "x-amz-date": stamp };
    for (const [k, v] of Object.entries(extra || {})) headers[k.toLowerCase()] = v;
    const names = Object.keys(headers).sort();
    const canonical = [method, path, canonicalQuery(query),
      names.map((n) => `${n}:${String(headers[n]).trim()}\n`).join(""), names.join(";"),
      payloadHash].join("\n");
    const { scope, sig } = await this.signature(canonical, stamp, date);
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${this.accessKey}/${scope}, ` +
      `SignedHeaders=${names.join(";")}, Signature=${sig}`;
    delete headers.host;
    return headers;
  }

  /** A presigned URL: anyone holding it may do ``method`` until it expires. */
  async presign(method, bucket, key, expires, extraQuery) {
    const { stamp, date } = amzNow();
    const path = objectPath(bucket, key);
    const scope = `${date}/${REGION}/s3/aws4_request`;
    const query = [...(extraQuery || []),
      ["X-Amz-Algorithm", "AWS4-HMAC-SHA256"], ["X-Amz-Credential", `${this.accessKey}/${scope}`],
      ["X-Amz-Date", stamp], ["X-Amz-Expires", String(expires)], ["X-Amz-SignedHeaders", "host"]];
    const canonical = [method, path, canonicalQuery(query), `host:${location.host}\n`, "host",
      UNSIGNED].join("\n");
    const { sig } = await this.signature(canonical, stamp, date);
    return `${location.origin}${path}?${canonicalQuery(query)}&X-Amz-Signature=${sig}`;
  }

  /** Send a signed request; an S3 error answer is thrown as Error("Code: Message"). */
  async request(method, bucket, key, query, body, extra) {
    query = query || [];
    const path = objectPath(bucket, key);
    const payload = body === undefined || body === null ? EMPTY_SHA256 : await sha256Hex(body);
    const headers = await this.sign(method, path, query, payload, extra);
    const qs = canonicalQuery(query);
    const resp = await fetch(path + (qs ? "?" + qs : ""), { method, headers, body, cache: "no-store" });
    if (!resp.ok) throw await s3Error(resp);
    return resp;
  }

  /** The console's JSON API on this gateway (``/_console/api/<path>``), signed as S3 is:
   * the project's keys and usage. ``body`` is sent as JSON. */
  async api(method, path, query, body) {
    const json = body === undefined ? undefined : JSON.stringify(body);
    const extra = json === undefined ? undefined : { "content-type": "application/json" };
    const resp = await this.request(method, "_console", "api/" + path, query || [], json, extra);
    return resp.json();
  }

  async xml(method, bucket, key, query) {
    const resp = await this.request(method, bucket, key, query);
    return new DOMParser().parseFromString(await resp.text(), "application/xml").documentElement;
  }

  async listBuckets() {
    const doc = await this.xml("GET", "", "", []);
    return all(doc, "Bucket").map((b) => ({ name: text(b, "Name"), created: text(b, "CreationDate") }));
  }

  createBucket(name) { return this.request("PUT", name, "", []); }
  deleteBucket(name) { return this.request("DELETE", name, "", []); }
  deleteObject(bucket, key) { return this.request("DELETE", bucket, key, []); }

  /** The objects and common prefixes under ``prefix`` ("/" delimited: one level), at most
   * ``pages`` pages of 1,000; ``truncated`` tells whether more are left. */
  async list(bucket, prefix, delimiter, pages) {
    const objects = [], prefixes = [];
    let token = null;
    let left = pages || 10;
    do {
      const q = [["list-type", "2"], ["prefix", prefix]];
      if (delimiter) q.push(["delimiter", delimiter]);
      if (token) q.push(["continuation-token", token]);
      const doc = await this.xml("GET", bucket, "", q);
      for (const c of kids(doc, "Contents")) {
        objects.push({ key: text(c, "Key"), size: Number(text(c, "Size")),
          modified: text(c, "LastModified"), etag: text(c, "ETag") });
      }
      for (const p of kids(doc, "CommonPrefixes")) prefixes.push(text(p, "Prefix"));
      token = text(doc, "IsTruncated") === "true" ? text(doc, "NextContinuationToken") : null;
    } while (token && --left > 0);
    return { objects, prefixes, truncated: Boolean(token) };
  }

  async versions(bucket, key) {
    const doc = await this.xml("GET", bucket, "", [["versions", ""], ["prefix", key]]);
    return [...doc.children].filter((el) => el.localName === "Version" || el.localName === "DeleteMarker")
      .filter((el) => text(el, "Key") === key)
      .map((el) => ({ marker: el.localName === "DeleteMarker", versionId: text(el, "VersionId"),
        latest: text(el, "IsLatest") === "true", modified: text(el, "LastModified"),
        size: el.localName === "Version" ? Number(text(el, "Size")) : null }));
  }

  async tags(bucket, key) {
    const doc = await this.xml("GET", bucket, key, [["tagging", ""]]);
    return all(doc, "Tag").map((t) => ({ key: text(t, "Key"), value: text(t, "Value") }));
  }

  /** Upload ``file``, telling ``onProgress(sent, total)``: one PUT, or by parts when large. */
  upload(bucket, key, file, onProgress) {
    if (file.size <= this.multipartThreshold) return this.put(bucket, key, [], file, onProgress);
    return this.uploadByParts(bucket, key, file, onProgress);
  }

  /** One signed PUT by XMLHttpRequest, whose upload events fetch() lacks; resolves on 2xx. */
  async put(bucket, key, query, body, onProgress) {
    const path = objectPath(bucket, key);
    const headers = await this.sign("PUT", path, query, UNSIGNED, {});
    const qs = canonicalQuery(query);
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", path + (qs ? "?" + qs : ""));
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(xhr);
        else reject(new Error(errorText(xhr.status, xhr.responseText)));
      };
      xhr.onerror = () => reject(new Error("the upload failed: network error"));
      xhr.send(body);
    });
  }

  /** A multipart upload, one part after another; aborted if any step fails. */
  async uploadByParts(bucket, key, file, onProgress) {
    const created = await this.xml("POST", bucket, key, [["uploads", ""]]);
    const uploadId = text(created, "UploadId");
    const size = Math.max(this.partSize, Math.ceil(file.size / 10000));
    const parts = [];
    try {
      for (let n = 1, at = 0; at < file.size; n++, at += size) {
        const q = [["partNumber", String(n)], ["uploadId", uploadId]];
        const xhr = await this.put(bucket, key, q, file.slice(at, at + size),
          (sent) => onProgress(at + sent, file.size));
        parts.push(`<Part><PartNumber>${n}</PartNumber><ETag>${escapeXml(xhr.getResponseHeader("ETag"))}</ETag></Part>`);
      }
      const body = `<CompleteMultipartUpload>${parts.join("")}</CompleteMultipartUpload>`;
      const resp = await this.request("POST", bucket, key, [["uploadId", uploadId]], body);
      const answer = await resp.text(); // S3 may answer 200 with an error in the body
      if (answer.includes("<Error>")) throw new Error(errorText(200, answer));
    } catch (e) {
      await this.request("DELETE", bucket, key, [["uploadId", uploadId]]).catch(() => {});
      throw e;
    }
  }
}

function escapeXml(s) {
  return String(s).replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function kids(el, name) { return [...el.children].filter((c) => c.localName === name); }
function all(el, name) { return [...el.getElementsByTagNameNS("*", name)]; }
function text(el, name) { const c = kids(el, name)[0]; return c ? c.textContent : ""; }

function errorText(status, body) {
  try {
    const doc = new DOMParser().parseFromString(body, "application/xml").documentElement;
    if (doc.localName === "Error") return `${text(doc, "Code")}: ${text(doc, "Message")}`;
  } catch (_) { /* not XML */ }
  return `HTTP ${status}`;
}

async function s3Error(resp) { return new Error(errorText(resp.status, await resp.text())); }
