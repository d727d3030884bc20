// Courier's dashboard: polls GET /v1/status and GET /v1/requests every two
// seconds and draws them. No framework and no build step; every string
// from the server goes into the page as text, never as HTML.
"use strict";

const keyName = "courier-api-key";
const svgNS = "http://www.w3.org/2000/svg";
let key = localStorage.getItem(keyName) || "";
let timer = null;

// A key in the fragment (/#key=...) is taken once and removed from the URL.
if (location.hash.startsWith("#key=")) {
  key = decodeURIComponent(location.hash.slice(5));
  localStorage.setItem(keyName, key);
  history.replaceState(null, "", location.pathname);
}

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

class NeedKey extends Error {}

async function getJSON(path) {
  const headers = key ? { Authorization: "Bearer " + key } : {};
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) throw new NeedKey();
  const body = await resp.json();
  if (!resp.ok) throw new Error((body.error && body.error.message) || resp.statusText);
  return body;
}

function bar(fraction, title) {
  const pct = Math.max(0, Math.min(1, fraction)) * 100;
  return el("span", { class: "bar", title }, el("span", { style: "width:" + pct.toFixed(1) + "%" }));
}

function pct(f) { return (100 * f).toFixed(0) + "%"; }
function ms(x) { return x >= 1000 ? (x / 1000).toFixed(2) + " s" : x.toFixed(1) + " ms"; }

function fill(tbodyParent, rows) {
  const tbody = tbodyParent.querySelector("tbody");
  tbody.replaceChildren(...rows);
}

function drawWorkers(st) {
  const s = st.slots;
  $("slots").textContent = `${s.busy} busy, ${s.free} free; background ${s.background_busy} busy, ${s.background_free} free`;
  fill($("workers"), st.workers.map(w => {
    const slots = el("td", {}, bar(w.slots ? w.busy / w.slots : 0, `${w.busy} busy of ${w.slots}`), `${w.busy}/${w.slots}`);
    const bg = w.background_slots > 0
      ? el("td", {}, bar(w.background_busy / w.background_slots, `${w.background_busy} busy of ${w.background_slots}`), `${w.background_busy}/${w.background_slots}`)
      : el("td", { class: "muted" }, "shared");
    const kv = w.kv_blocks > 0
      ? el("td", {}, bar(w.kv_cache_usage, `${w.kv_blocks - w.free_kv_blocks} of ${w.kv_blocks} blocks`), pct(w.kv_cache_usage))
      : el("td", { class: "muted" }, "-");
    const hits = el("td", { class: "num" }, w.prefix_lookups > 0 ? pct(w.prefix_hit_rate) : "-");
    // Prompt positions taken from the prefix cache, not evaluated (the
    // copied ones from a cached partial block); upstream workers have none.
    const reused = w.kv_blocks > 0
      ? el("td", { class: "num", "data-prefix-positions": w.prefix_positions, "data-prefix-copied-positions": w.prefix_copied_positions,
          title: `${w.prefix_positions - w.prefix_copied_positions} in shared blocks, ${w.prefix_copied_positions} copied from partial blocks` },
          `${w.prefix_positions} (${w.prefix_copied_positions} copied)`)
      : el("td", { class: "muted" }, "-");
    return el("tr", { "data-worker": w.name },
      el("td", {}, w.name + (w.upstream ? " → " + w.upstream : "")),
      el("td", {}, w.models.join(", ")),
      el("td", { class: "state-" + w.state }, w.state),
      slots, bg, kv, hits, reused,
      el("td", { class: "num" }, w.preemptions));
  }));
  if (st.workers.length === 0) fill($("workers"), [el("tr", {}, el("td", { colspan: 9, class: "muted" }, "no live workers"))]);
}

function drawQueues(st) {
  fill($("queues"), st.queues.map(q => el("tr", { "data-model": q.model },
    el("td", {}, q.model),
    el("td", { class: "num" }, q.running),
    el("td", { class: "num" }, q.waiting),
    el("td", {}, Object.entries(q.tenants || {}).map(([t, n]) => (t || "-") + ": " + n).join("  ") || "-"))));
}

function drawBatches(st) {
  $("batches-section").hidden = st.batches.length === 0;
  fill($("batches"), st.batches.map(b => {
    const done = b.completed + b.failed;
    return el("tr", { "data-batch": b.id },
      el("td", {}, b.id), el("td", {}, b.status), el("td", {}, b.endpoint),
      el("td", {}, bar(b.total ? done / b.total : 0, `${b.completed} completed, ${b.failed} failed`), `${done}/${b.total}`));
  }));
}

// chart draws values (oldest first) as a line over an area.
function chart(node, values, unit) {
  const W = 600, H = 140, top = 16, bottom = 18;
  const maxV = Math.max(...values, 0);
  const yMax = maxV > 0 ? maxV * 1.1 : 1;
  const n = values.length;
  const x = i => n > 1 ? (i / (n - 1)) * W : 0;
  const y = v => top + (H - top - bottom) * (1 - v / yMax);
  const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const base = H - bottom;
  const kids = [
    svg("line", { class: "axis", x1: 0, y1: base, x2: W, y2: base }),
    svg("polygon", { class: "area", points: `0,${base} ${pts} ${W},${base}` }),
    svg("polyline", { class: "line", points: pts }),
  ];
  const label = (tx, ty, text, anchor) => {
    const t = svg("text", { x: tx, y: ty, "text-anchor": anchor || "start" });
    t.textContent = text;
    return t;
  };
  kids.push(label(2, 12, "max " + maxV.toFixed(1) + " " + unit));
  kids.push(label(W - 2, 12, "now " + (values[n - 1] || 0).toFixed(1) + " " + unit, "end"));
  kids.push(label(2, H - 4, "-5 min"), label(W - 2, H - 4, "now", "end"));
  node.replaceChildren(...kids);
}

function drawCharts(st) {
  chart($("chart-tps"), st.recent.tokens_per_second, "tok/s");
  chart($("chart-ttft"), st.recent.ttft_ms, "ms");
}

// waterfall draws a request's phases scaled to its own total.
function waterfall(tl) {
  const ev = tl.events;
  const t0 = ev[0].at, t1 = ev[ev.length - 1].at;
  const span = Math.max(t1 - t0, 1);
  const at = phase => { const e = ev.find(e => e.phase === phase); return e ? e.at : null; };
  const placed = at("placed"), first = at("first_token");
  const seg = (cls, a, b, title) => el("span", {
    class: cls, title,
    style: `left:${(100 * (a - t0) / span).toFixed(2)}%;width:${Math.max(0.3, 100 * (b - a) / span).toFixed(2)}%`,
  });
  const parts = [];
  const p = placed ?? t1, f = first ?? t1;
  parts.push(seg("p-queued", t0, p, "waiting " + ms((p - t0) / 1000)));
  if (placed !== null) parts.push(seg("p-prefill", p, f, "to first token " + ms((f - p) / 1000)));
  if (first !== null) parts.push(seg("p-decode", f, t1, "generating " + ms((t1 - f) / 1000)));
  for (const e of ev.filter(e => e.phase === "resumed")) parts.push(seg("p-resume", e.at, e.at, "resumed after " + (e.worker || "a lost worker")));
  const title = ev.map(e => `${e.phase} +${ms((e.at - t0) / 1000)}` + (e.worker ? " " + e.worker : "") + (e.reason ? " (" + e.reason + ")" : "")).join("\n");
  return el("div", { class: "wf", title }, ...parts);
}

function drawRequests(list) {
  fill($("requests"), list.data.map(tl => el("tr", { "data-request": tl.id },
    el("td", { title: tl.id }, tl.id.slice(0, 12)),
    el("td", {}, tl.model || "-"),
    el("td", { class: "status-" + tl.status }, tl.status + (tl.http_status !== 200 ? " " + tl.http_status : "")),
    el("td", {}, (tl.workers || []).join(" → ") || "-"),
    el("td", { class: "num" }, (tl.prompt_tokens || 0) + " + " + (tl.completion_tokens || 0)),
    el("td", { class: "num" }, ms(tl.total_ms)),
    el("td", {}, waterfall(tl)))));
}

async function poll() {
  try {
    const st = await getJSON("/v1/status");
    $("key-form").hidden = true;
    $("main").hidden = false;
    $("gateway").textContent = "gateway " + (st.gateway || "") + " · models: " + (st.models.join(", ") || "none");
    drawWorkers(st);
    drawCharts(st);
    drawQueues(st);
    drawBatches(st);
    $("requests-off").hidden = st.timelines;
    if (st.timelines) drawRequests(await getJSON("/v1/requests?limit=20"));
    $("updated").textContent = "updated " + new Date(st.time).toLocaleTimeString();
    $("error").hidden = true;
  } catch (err) {
    if (err instanceof NeedKey) {
      $("main").hidden = true;
      $("key-form").hidden = false;
      clearInterval(timer);
      timer = null;
      return;
    }
    $("error").textContent = String(err.message || err);
    $("error").hidden = false;
  }
}

function start() {
  poll();
  if (timer === null) timer = setInterval(poll, 2000);
}

$("key-form").addEventListener("submit", ev => {
  ev.preventDefault();
  key = $("key").value.trim();
  localStorage.setItem(keyName, key);
  start();
});

start();
