// Small SVG charts for both consoles, drawn by hand: no library, no CDN.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (and optional text). */
function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

/**
 * A vertical bar chart: bars = [{label, value, color?}], marks = [{at: label, text, after?}]
 * drawn as dashed lines before (or after) the bar of that label (a scheme's k and repair);
 * opts.fmt writes a value (default: a count, 12k); opts.labelEvery writes every n-th label
 * only, and opts.values false writes no value above the bars (for long series).
 */
function barChart(bars, opts) {
  const o = Object.assign({ width: 520, height: 180, unit: "", title: "", fmt: fmtCount,
    labelEvery: 1, values: true }, opts || {});
  const pad = { l: 58, r: 8, t: 14, b: 30 };
  const svg = svgEl("svg", { width: o.width, height: o.height, role: "img",
    viewBox: `0 0 ${o.width} ${o.height}`, class: "chart" });
  if (o.title) svg.appendChild(svgEl("title", {}, o.title));
  const max = Math.max(1, ...bars.map((b) => b.value));
  const w = Math.min(64, (o.width - pad.l - pad.r) / Math.max(1, bars.length));
  const h = o.height - pad.t - pad.b;
  svg.appendChild(svgEl("line", { x1: pad.l, y1: pad.t + h, x2: o.width - pad.r, y2: pad.t + h,
    stroke: "#999" }));
  svg.appendChild(svgEl("text", { x: pad.l - 4, y: pad.t + 4, "text-anchor": "end" }, o.fmt(max)));
  svg.appendChild(svgEl("text", { x: pad.l - 4, y: pad.t + h, "text-anchor": "end" }, "0"));
  bars.forEach((b, i) => {
    const bh = (b.value / max) * h;
    const x = pad.l + i * w;
    const rect = svgEl("rect", { x: x + w * 0.12, y: pad.t + h - bh, width: w * 0.76,
      height: Math.max(bh, b.value > 0 ? 1 : 0), fill: b.color || "#2f5fd0" });
    rect.appendChild(svgEl("title", {}, `${b.label}: ${b.value}${o.unit}`));
    svg.appendChild(rect);
    if (o.values && b.value > 0) {
      svg.appendChild(svgEl("text", { x: x + w / 2, y: pad.t + h - bh - 2, "text-anchor": "middle" },
        o.fmt(b.value)));
    }
    if (i % o.labelEvery === 0) {
      svg.appendChild(svgEl("text", { x: x + w / 2, y: o.height - pad.b + 14, "text-anchor": "middle" },
        b.label));
    }
  });
  for (const m of o.marks || []) {
    const i = bars.findIndex((b) => String(b.label) === String(m.at));
    if (i < 0) continue;
    const x = pad.l + (m.after ? i + 1 : i) * w;
    svg.appendChild(svgEl("line", { x1: x, y1: pad.t, x2: x, y2: pad.t + h, stroke: "#d0342c",
      "stroke-dasharray": "4 3" }));
    svg.appendChild(svgEl("text", { x: x + 2, y: pad.t + 8, fill: "#d0342c" }, m.text));
  }
  if (o.xlabel) {
    svg.appendChild(svgEl("text", { x: pad.l + (o.width - pad.l - pad.r) / 2, y: o.height - 2,
      "text-anchor": "middle", class: "muted" }, o.xlabel));
  }
  return svg;
}

/** A horizontal fill bar (used / capacity) as a small SVG. */
function meter(fraction, width, color) {
  const f = Math.max(0, Math.min(1, fraction || 0));
  const svg = svgEl("svg", { width: width || 60, height: 8, role: "img" });
  svg.appendChild(svgEl("rect", { x: 0, y: 0, width: width || 60, height: 8, fill: "#e6e9ef", rx: 2 }));
  svg.appendChild(svgEl("rect", { x: 0, y: 0, width: (width || 60) * f, height: 8, rx: 2,
    fill: color || (f > 0.9 ? "#d0342c" : f > 0.7 ? "#d98f0b" : "#1f9d55") }));
  svg.appendChild(svgEl("title", {}, `${(f * 100).toFixed(1)}% used`));
  return svg;
}

function fmtCount(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(0) + "k";
  return String(Math.round(n * 100) / 100);
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function fmtTime(t) {
  if (!t) return "";
  return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** An element with attributes and children (strings become text: never HTML). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A table from column heads and rows of cells; a head starting "#" is numeric. */
function table(heads, rows) {
  const num = heads.map((x) => x.startsWith("#"));
  return h("table", {},
    h("thead", {}, h("tr", {}, heads.map((x, i) => h("th", { class: num[i] ? "num" : "" },
      num[i] ? x.slice(1) : x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: num[i] ? "num" : "" }, c))))));
}
