// aiproxy usage dashboard: reads the /dashboard/api endpoints (same origin, session cookie) and
// draws cards, tables and small SVG bar charts. No libraries, no build step, no inline code.
"use strict";

const $ = (id) => document.getElementById(id);
const num = new Intl.NumberFormat("en-US");
const SVG = "http://www.w3.org/2000/svg";
const FIELDS = ["range", "from", "to", "user", "model"];

function params() {
  const q = new URLSearchParams(location.search);
  const out = new URLSearchParams();
  for (const f of FIELDS) { const v = (q.get(f) || "").trim(); if (v) out.set(f, v); }
  if (!out.get("range")) out.set("range", "7d");
  if (out.get("range") !== "custom") { out.delete("from"); out.delete("to"); }
  return out;
}

async function get(path, q) {
  const resp = await fetch(`/dashboard/api/${path}?${q}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (resp.status === 401) { location.assign("/dashboard"); throw new Error("logged out"); }
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error ? body.error.message : `HTTP ${resp.status}`);
  return body;
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function usd(s) { return "$" + s; }
function ms(v) { return v === null || v === undefined ? "–" : num.format(Math.round(v)); }

function table(id, cols, rows) {
  const t = $(id);
  t.replaceChildren();
  const head = el("tr");
  for (const c of cols) head.append(el("th", c.n ? { class: "n" } : {}, c.label));
  t.append(el("thead")); t.tHead.append(head);
  const body = el("tbody");
  if (!rows.length) { const tr = el("tr"); tr.append(el("td", { colspan: cols.length, class: "empty" }, "No requests in this range.")); body.append(tr); }
  for (const r of rows) {
    const tr = el("tr");
    for (const c of cols) {
      const td = el("td", c.n ? { class: "n" } : {});
      const v = c.get(r);
      if (v instanceof Node) td.append(v); else td.textContent = v;
      tr.append(td);
    }
    body.append(tr);
  }
  t.append(body);
}

const AGG = [
  { label: "Requests", n: 1, get: (r) => num.format(r.requests) },
  { label: "Tokens in", n: 1, get: (r) => num.format(r.prompt_tokens) },
  { label: "Tokens out", n: 1, get: (r) => num.format(r.completion_tokens) },
  { label: "Cost", n: 1, get: (r) => usd(r.cost_usd) },
  { label: "Errors", n: 1, get: (r) => num.format(r.errors) },
];

function bars(id, rows, value, error, bucket) {
  const box = $(id);
  box.replaceChildren();
  const w = 600, h = 160, pad = 18;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const max = Math.max(0, ...rows.map(value));
  const bw = (w - 2) / Math.max(rows.length, 1);
  const add = (tag, attrs) => { const n = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); svg.append(n); return n; };
  add("line", { x1: 0, y1: h - pad, x2: w, y2: h - pad, class: "axis" });
  rows.forEach((r, i) => {
    const v = value(r);
    if (v > 0 && max > 0) {
      const bh = (v / max) * (h - pad - 14);
      const rect = add("rect", { x: 1 + i * bw + bw * 0.1, y: h - pad - bh, width: Math.max(bw * 0.8, 1), height: bh, class: "b" });
      const t = document.createElementNS(SVG, "title"); t.textContent = `${r.bucket}: ${id === "chart-cost" ? usd(r.cost_usd) : num.format(v)}`; rect.append(t);
      if (error) {
        const e = error(r);
        if (e > 0) add("rect", { x: 1 + i * bw + bw * 0.1, y: h - pad - (e / max) * (h - pad - 14), width: Math.max(bw * 0.8, 1), height: (e / max) * (h - pad - 14), class: "e" });
      }
    }
  });
  const label = (r) => bucket === "hour" ? r.bucket.slice(11) + "h" : r.bucket.slice(5);
  if (rows.length) {
    add("text", { x: 2, y: h - 4 }).textContent = label(rows[0]);
    const last = add("text", { x: w - 2, y: h - 4, "text-anchor": "end" }); last.textContent = label(rows[rows.length - 1]);
  }
  const top = add("text", { x: 2, y: 10 });
  top.textContent = id === "chart-cost" ? "max " + usd(rows.reduce((a, r) => (parseFloat(r.cost_usd) > parseFloat(a) ? r.cost_usd : a), "0")) : "max " + num.format(max);
  box.append(svg);
}

function topUsers(rows) {
  const box = $("top-users");
  box.replaceChildren();
  const top = rows.slice(0, 5);
  if (!top.length) { box.append(el("div", { class: "empty" }, "No requests in this range.")); return; }
  const max = Math.max(...top.map((r) => parseFloat(r.cost_usd)), 0);
  for (const r of top) {
    const row = el("div", { class: "hbar" });
    row.append(el("span", { class: "name", title: r.user }, r.user));
    const bar = document.createElementNS(SVG, "svg");
    bar.setAttribute("viewBox", "0 0 100 10");
    bar.setAttribute("preserveAspectRatio", "none");
    const track = document.createElementNS(SVG, "rect");
    for (const [k, v] of Object.entries({ width: 100, height: 10, class: "track" })) track.setAttribute(k, v);
    const fill = document.createElementNS(SVG, "rect");
    for (const [k, v] of Object.entries({ width: max ? (parseFloat(r.cost_usd) / max) * 100 : 0, height: 10, class: "b" })) fill.setAttribute(k, v);
    bar.append(track, fill);
    row.append(bar);
    row.append(el("span", { class: "n" }, usd(r.cost_usd)));
    box.append(row);
  }
}

function fillList(id, rows, key) {
  const list = $(id);
  list.replaceChildren(...rows.map((r) => el("option", { value: r[key] })));
}

function status(s) {
  return el("span", { class: s === "ok" ? "st-ok" : "st-bad" }, s);
}

async function load() {
  const q = params();
  for (const f of FIELDS) { const input = $(f); if (input) input.value = q.get(f) || (f === "range" ? "7d" : ""); }
  $("filters").classList.toggle("preset", q.get("range") !== "custom");
  $("export").href = `/dashboard/api/export.csv?${q}`;
  $("export-latest").href = `/dashboard/api/export.csv?${q}&section=latest`;
  $("status").textContent = "Loading…";
  try {
    const [summary, series, users, models, providers, latest] = await Promise.all([
      get("summary", q), get("timeseries", q), get("breakdown", q + "&by=user"), get("breakdown", q + "&by=model"),
      get("breakdown", q + "&by=provider"), get("latest", q),
    ]);
    const t = summary.totals;
    $("total-requests").textContent = num.format(t.requests);
    $("total-prompt").textContent = num.format(t.prompt_tokens);
    $("total-completion").textContent = num.format(t.completion_tokens);
    $("total-cost").textContent = usd(t.cost_usd);
    $("total-error-rate").textContent = (t.error_rate * 100).toFixed(1) + "%";
    $("total-errors").textContent = `${num.format(t.errors)} errors`;
    $("total-cache").textContent = usd(t.cache_savings_usd);
    $("cache-note").textContent = t.cache === "off" ? "cache off" : "";
    const lat = summary.latency;
    $("ttft").textContent = `${ms(lat.ttft_ms.p50)} / ${ms(lat.ttft_ms.p95)}`;
    $("duration").textContent = `${ms(lat.duration_ms.p50)} / ${ms(lat.duration_ms.p95)}`;
    for (const b of document.querySelectorAll(".bucket")) b.textContent = series.bucket;
    bars("chart-cost", series.data, (r) => parseFloat(r.cost_usd), null, series.bucket);
    bars("chart-requests", series.data, (r) => r.requests, (r) => r.errors, series.bucket);
    topUsers(users.data);
    table("by-user", [{ label: "User", get: (r) => r.user }, ...AGG], users.data);
    table("by-model", [{ label: "Model", get: (r) => r.model }, ...AGG], models.data);
    table("by-provider", [{ label: "Provider", get: (r) => r.provider }, ...AGG], providers.data);
    fillList("users", users.data, "user");
    fillList("models", models.data, "model");
    table("latest", [
      { label: "Time (UTC)", get: (r) => r.started_at.replace("T", " ").slice(0, 19) },
      { label: "User", get: (r) => r.user_id },
      { label: "Model", get: (r) => r.requested_model },
      { label: "Status", get: (r) => status(r.status) },
      { label: "In", n: 1, get: (r) => num.format(r.prompt_tokens) },
      { label: "Out", n: 1, get: (r) => num.format(r.completion_tokens) },
      { label: "Cost", n: 1, get: (r) => usd(r.cost_usd) },
      { label: "TTFT ms", n: 1, get: (r) => ms(r.ttft_ms) },
      { label: "ms", n: 1, get: (r) => ms(r.duration_ms) },
    ], latest.data);
    const since = summary.since.slice(0, 10), until = new Date(Date.parse(summary.until) - 1).toISOString().slice(0, 10);
    $("status").textContent = `${since} to ${until} (UTC)` + (q.get("user") ? `, user ${q.get("user")}` : "") +
      (q.get("model") ? `, model ${q.get("model")}` : "") + (lat.capped ? `; latency from the newest ${num.format(lat.sampled_rows)} requests` : "");
    document.body.dataset.loaded = "true";
  } catch (err) {
    $("status").textContent = "Could not load the figures: " + err.message;
    document.body.dataset.loaded = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("range").addEventListener("change", () => $("filters").classList.toggle("preset", $("range").value !== "custom"));
  $("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const f of FIELDS) { const v = $(f).value.trim(); if (v) q.set(f, v); }
    history.pushState(null, "", "?" + q);
    load();
  });
  window.addEventListener("popstate", load);
  load();
});
