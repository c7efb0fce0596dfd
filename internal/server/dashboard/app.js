// app.js is the dashboard: it polls the read API every 1.5 s and draws the rollouts; with the
// user's token it shows the buttons, which post to the control API. Every value from the API
// goes into the page as text, never as HTML.
"use strict";

const POLL_MS = 1500;
const ACTIONS = ["promote", "pause", "resume", "abort", "retry", "undo"];
// Actions that undo work ask first.
const CONFIRM = { abort: "Abort the rollout? Traffic goes back to stable.", undo: "Roll back to the previous revision?" };
// Each revision keeps its colour whatever its role: revision 1 blue, 2 orange, 3 purple...
const PALETTE = ["#2563eb", "#ea580c", "#7c3aed", "#0d9488", "#db2777", "#65a30d"];

const state = { selected: "", token: "", rollout: null };
const $ = (id) => document.getElementById(id);

// el makes an element with a class and text (or children).
function el(tag, cls, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const c of children) e.append(c == null ? "" : c);
  return e;
}

function row(cells, cls) {
  const tr = el("tr", cls);
  for (const c of cells) tr.append(el("td", "", c));
  return tr;
}

function badge(text) {
  return el("span", "badge " + text, text);
}

function time(s) {
  return s ? new Date(s).toLocaleTimeString() : "";
}

async function getJSON(path) {
  const resp = await fetch(path, { cache: "no-store" });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `${path}: ${resp.status}`);
  return body;
}

// --- token ---

// loadToken takes ?token= from the URL once (then drops it from the address bar and the
// history), else the one kept for this tab.
function loadToken() {
  const url = new URL(location.href);
  const t = url.searchParams.get("token");
  if (t) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    return useToken(t);
  }
  const kept = sessionStorage.getItem("ramp-token");
  if (kept) return useToken(kept);
  setToken("");
}

// useToken checks a token against the control API and keeps it for this tab when it works.
async function useToken(t) {
  let status = 0;
  try {
    status = (await fetch("/api/v1/rollouts", { headers: { Authorization: "Bearer " + t } })).status;
  } catch (err) {
    // Unreachable: status stays 0.
  }
  if (status === 200) {
    setToken(t);
    return;
  }
  setToken("");
  $("access").textContent = status === 401 ? "read-only: wrong token" : `read-only: token check failed (${status || "unreachable"})`;
}

function setToken(t) {
  state.token = t;
  if (t) sessionStorage.setItem("ramp-token", t);
  else sessionStorage.removeItem("ramp-token");
  $("access").textContent = t ? "token: actions enabled" : "read-only";
  $("access").className = "badge " + (t ? "Healthy" : "");
  $("token").hidden = $("token-use").hidden = !!t;
  $("token-forget").hidden = !t;
  $("token").value = "";
  renderActions();
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (t) useToken(t);
});
$("token-forget").addEventListener("click", () => setToken(""));

// --- actions ---

// renderActions shows the buttons only with a token: without it the page is read-only.
function renderActions() {
  const box = $("actions");
  box.replaceChildren();
  if (!state.token || !state.selected) return;
  for (const a of ACTIONS) {
    const b = el("button", a in CONFIRM ? "danger" : "", a);
    b.id = "action-" + a;
    b.type = "button";
    b.addEventListener("click", () => act(a));
    box.append(b);
  }
}

async function act(action) {
  const name = state.selected;
  if (CONFIRM[action] && !confirm(CONFIRM[action])) return;
  const out = $("action-result");
  out.textContent = `${action}…`;
  const resp = await fetch(`/api/v1/rollouts/${encodeURIComponent(name)}/${action}`, {
    method: "POST",
    headers: { Authorization: "Bearer " + state.token },
  });
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401) setToken("");
  if (!resp.ok) out.textContent = `${action}: ${body.error || resp.status}`;
  else if (action === "undo" && body.new) out.textContent = `undo: revision ${body.target}'s template rolls out as revision ${body.revision}`;
  else if (action === "undo") out.textContent = `undo: back on revision ${body.revision}${body.note ? "; " + body.note : ""}`;
  else out.textContent = body.message || action;
  poll();
}

// --- list ---

function renderList(list) {
  const body = $("rollouts").tBodies[0];
  body.replaceChildren();
  $("no-rollouts").hidden = list.length > 0;
  for (const r of list) {
    // The canary's real share where the mode observes it (Kubernetes mode), else the one set.
    const weight = r.observedWeight ?? r.canaryWeight;
    const tr = row([r.name, badge(r.phase || "-"), r.step, `${weight}%`], r.name === state.selected ? "selected" : "");
    tr.dataset.name = r.name;
    tr.addEventListener("click", () => select(r.name));
    body.append(tr);
  }
  if (!state.selected && list.length > 0) select(list[0].name);
}

function select(name) {
  if (state.selected === name) return;
  state.selected = name;
  location.hash = "#" + encodeURIComponent(name);
  renderActions();
  poll();
}

// --- one rollout ---

function roleOf(v, rev) {
  const rs = v.revisions.find((r) => r.revision === rev);
  return rs ? rs.role : "";
}

function colorOf(rev) {
  return PALETTE[(rev - 1 + PALETTE.length) % PALETTE.length];
}

function renderRollout(v) {
  $("detail").hidden = false;
  $("name").textContent = v.name;
  $("phase").textContent = v.phase || "-";
  $("phase").className = "badge " + v.phase;
  $("strategy").textContent = v.strategy;
  $("step").textContent = v.step;
  $("message").textContent = v.message || "";

  const weights = $("weights");
  weights.replaceChildren();
  for (const r of v.revisions) {
    const fill = el("div");
    fill.style.width = `${r.weight}%`;
    fill.style.background = colorOf(r.revision);
    const line = el("div", "weight", `revision ${r.revision} (${r.role})`, el("div", "bar", fill), `${r.weight}%`);
    line.dataset.revision = r.revision;
    line.dataset.role = r.role;
    line.dataset.weight = r.weight;
    weights.append(line);
  }

  const steps = $("steps");
  steps.replaceChildren();
  v.steps.forEach((s, i) => {
    const cur = v.stepIndex ?? -1;
    steps.append(el("li", i < cur ? "done" : i === cur ? "current" : "", `${i + 1}. ${s}`));
  });

  renderAnalysis(v);

  const hist = $("history").tBodies[0];
  hist.replaceChildren();
  for (const h of [...v.history].reverse()) {
    const rs = v.revisions.find((r) => r.revision === h.number);
    hist.append(row([h.number, rs ? rs.role : "", rs ? `${rs.weight}%` : "", rs ? `${rs.ready}/${rs.desired}` : "", time(h.createdAt), h.cause || "", h.hash.slice(0, 10)]));
  }

  const events = $("events").tBodies[0];
  events.replaceChildren();
  for (const e of [...v.events].reverse()) {
    events.append(row([time(e.time), e.type, e.reason, e.revision || "", e.message], e.type));
  }
}

// renderAnalysis shows each run, newest first, with each metric's last measurement: for the
// judge, its evidence and explanation.
function renderAnalysis(v) {
  const box = $("analysis");
  box.replaceChildren();
  if (v.analysis.length === 0) box.append(el("p", "muted", "No analysis run."));
  for (const a of [...v.analysis].reverse()) {
    const what = a.templates ? a.templates.join(", ") : a.kind;
    const vs = a.baselineRevision ? ` against revision ${a.baselineRevision}` : "";
    const run = el("div", "run", el("p", "", badge(a.phase), " ", el("strong", "", a.name), ` ${what}: revision ${a.revision}${vs}, since ${time(a.startedAt)}`));
    // A run's message joins its metrics' (the judge's are long): shown when it is short or
    // the metrics say nothing.
    const said = (a.metrics || []).some((m) => m.message);
    if (a.message && (!said || a.message.length <= 160)) run.append(el("p", "evidence", a.message));
    const t = el("table");
    t.append(row(["Metric", "Phase", "Measured", "Value", "Evidence"].map((h) => el("strong", "", h))));
    for (const m of a.metrics || []) {
      const last = (m.measurements || []).at(-1) || {};
      t.append(row([m.name, badge(m.phase), `${m.count} (${m.successful} ok, ${m.failed} failed)`, last.value || "", el("span", "evidence", m.message || last.message || "")]));
    }
    if ((a.metrics || []).length > 0) run.append(t);
    box.append(run);
  }
}

// renderCharts draws one chart per measure, with one line per revision.
function renderCharts(v, s) {
  const box = $("charts");
  box.replaceChildren();
  // The time axis starts with the first traffic (at least 2 minutes back); a revision's line
  // starts with its own first request.
  const to = Date.parse(s.to), step = s.stepSeconds * 1000;
  const firsts = s.revisions.map((r) => r.points.findIndex((p) => p.requests > 0 || p.rate > 0));
  let from = Date.parse(s.from);
  const starts = s.revisions.map((r, i) => (firsts[i] < 0 ? Infinity : Date.parse(r.points[firsts[i]].time) - step));
  if (starts.length > 0) from = Math.max(from, Math.min(Math.min(...starts), to - 120000));
  const measures = [
    ["Request rate", formats.rate, (p) => p.rate],
    ["5xx share", formats.share, (p) => p.errorShare],
    ["Latency p95", formats.seconds, (p) => p.latencyP95],
    ["First token p95", formats.seconds, (p) => p.firstTokenP95],
  ];
  for (const b of s.business || []) {
    measures.push([`${b}: share of events`, formats.share, (p) => (p.business && b in p.business ? p.business[b] : null)]);
  }
  for (const [title, format, pick] of measures) {
    const lines = s.revisions.map((r, i) => ({
      label: `revision ${r.revision}${roleOf(v, r.revision) ? " (" + roleOf(v, r.revision) + ")" : ""}`,
      color: colorOf(r.revision),
      points: r.points.map((p, j) => [Date.parse(p.time), firsts[i] >= 0 && j >= firsts[i] ? pick(p) : null]),
    }));
    box.append(lineChart({ title, lines, from, to, format }));
  }
}

// --- polling ---

let polling = false;

async function poll() {
  if (polling) return;
  polling = true;
  try {
    renderList(await getJSON("/dashboard/api/rollouts"));
    if (state.selected) {
      const name = encodeURIComponent(state.selected);
      const v = await getJSON(`/dashboard/api/rollouts/${name}`);
      state.rollout = v;
      renderRollout(v);
      try {
        const s = await getJSON(`/dashboard/api/rollouts/${name}/series`);
        renderCharts(v, s);
        // Why some lines are missing (Kubernetes mode: a revision's series could not be read).
        const notes = [s.message, ...s.revisions.filter((r) => r.message).map((r) => `revision ${r.revision}: ${r.message}`)].filter(Boolean);
        $("charts-note").hidden = notes.length === 0;
        $("charts-note").textContent = notes.join("\n");
      } catch (err) {
        $("charts").replaceChildren();
        $("charts-note").hidden = false;
        $("charts-note").textContent = err.message;
      }
    }
    $("conn").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("conn").textContent = `cannot reach ramp: ${err.message}`;
  } finally {
    polling = false;
  }
}

state.selected = decodeURIComponent(location.hash.slice(1));
window.addEventListener("hashchange", () => select(decodeURIComponent(location.hash.slice(1))));
loadToken();
poll();
setInterval(poll, POLL_MS);
