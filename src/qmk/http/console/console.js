// The QMK web console: plain JavaScript against the REST API (docs/http.md), no build step.
"use strict";

const BELL = `OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
`;
const $ = (id) => document.getElementById(id);
// the server's facts (/console/facts.json): the default shots and a job's final states,
// read from their tables on the server rather than written here a second time
const facts = { final: new Set() };
const state = { session: null, tenant: null, jobs: new Map(), selected: null, stream: null, machineTimer: null, trigger: null, lastEventId: null };

async function api(method, path, body) {
  const headers = {};
  if (state.session) headers["Authorization"] = `Bearer ${state.session}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await reply.json();
  if (!reply.ok) {
    const error = new Error(`${data.code} ${data.name}: ${data.detail}`);
    error.status = reply.status;
    throw error;
  }
  return data;
}

function text(tag, content, attrs) {
  const node = document.createElement(tag);
  if (content !== undefined) node.textContent = content;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString() : "";
}

// ------------------------------------------------------------------ sign in

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  const requested = $("caps").value.split(",").map((c) => c.trim()).filter(Boolean);
  try {
    state.session = null;
    state.lastEventId = null;
    const reply = await api("POST", "/v1/sessions", { tenant: $("tenant").value, key: $("key").value, requested });
    state.session = reply.session_id;
    state.tenant = reply.tenant;
    sessionStorage.setItem("qmk-session", JSON.stringify({ session: state.session, tenant: state.tenant }));
    await start();
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
}

function signOut() {
  sessionStorage.removeItem("qmk-session");
  if (state.stream) state.stream.abort();
  if (state.machineTimer) clearInterval(state.machineTimer);
  Object.assign(state, { session: null, tenant: null, selected: null, stream: null, machineTimer: null, trigger: null, lastEventId: null });
  state.jobs.clear();
  $("workspace").hidden = true;
  $("sign-in-panel").hidden = false;
  $("sign-out").hidden = true;
  $("who").textContent = "signed out";
}

async function start() {
  $("sign-in-panel").hidden = true;
  $("workspace").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `tenant ${state.tenant}`;
  await Promise.all([loadJobs(), loadResources(), loadMachine(), loadTriggers()]);
  followMachine();
  watch();
}

// ------------------------------------------------------------------ jobs

async function loadJobs() {
  const reply = await api("GET", "/v1/jobs?limit=50");
  for (const job of reply.jobs.slice().reverse()) state.jobs.set(job.job_id, job);
  renderJobs();
}

function renderJobs() {
  const body = $("jobs").querySelector("tbody");
  body.replaceChildren();
  const jobs = [...state.jobs.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
  for (const job of jobs) {
    const row = text("tr", undefined, { "data-job": job.job_id });
    row.append(text("td", job.job_id), text("td", undefined), text("td", String(job.shots ?? "")), text("td", when(job.created_at)));
    row.children[1].append(text("span", job.state, { class: `state ${job.state}`, "data-state": job.state }));
    if (job.job_id === state.selected) row.classList.add("selected");
    row.addEventListener("click", () => select(job.job_id));
    body.append(row);
  }
}

async function submit(event) {
  event.preventDefault();
  $("submit-error").textContent = "";
  const source = $("program").value;
  let format = $("format").value || null;
  let program = source;
  if (!format && source.trim().startsWith("{")) {
    try { program = JSON.parse(source); } catch (error) { format = "qvm-json"; }
  }
  const request = { program };
  // no shots given: the server's default (the field shows it once the facts are in)
  if ($("shots").value !== "") request.shots = Number($("shots").value);
  if (format) request.format = format;
  if ($("seed").value !== "") request.seed = Number($("seed").value);
  try {
    const job = await api("POST", "/v1/jobs", request);
    state.jobs.set(job.job_id, job);
    renderJobs();
    await select(job.job_id);
  } catch (error) {
    $("submit-error").textContent = error.message;
  }
}

async function upload() {
  const file = $("upload").files[0];
  if (!file) return;
  $("program").value = await file.text();
  const formats = { qasm: "", qasm3: "qasm3", ll: "qir", json: "qvm-json", asm: "qvm-asm" };
  const ext = file.name.split(".").pop().toLowerCase();
  if (ext in formats) $("format").value = formats[ext];
}

// ------------------------------------------------------------------ one job

async function select(jobId) {
  state.selected = jobId;
  renderJobs();
  $("job-panel").hidden = false;
  $("job-id").textContent = jobId;
  await showJob(jobId);
}

async function showJob(jobId) {
  const job = await api("GET", `/v1/jobs/${jobId}`);
  if (state.selected !== jobId) return;
  state.jobs.set(jobId, Object.assign(state.jobs.get(jobId) || {}, job));
  renderJobs();
  $("job-state").textContent = job.state;
  $("job-state").className = `state ${job.state}`;
  $("job-state").setAttribute("data-state", job.state);
  $("job-error").textContent = job.error ? `${job.error.code} ${job.error.name}: ${job.error.message}` : "";
  drawHistogram(job.result ? job.result.counts : {}, job.result ? job.result.shots : 0);
  const [telemetry, audit] = await Promise.all([
    api("GET", `/v1/jobs/${jobId}/telemetry`),
    api("GET", `/v1/audit?job_id=${encodeURIComponent(jobId)}&limit=200`),
  ]);
  if (state.selected !== jobId) return;
  drawTelemetry(telemetry);
  drawTimeline(audit.entries, telemetry);
  drawAudit(audit.entries);
}

function drawHistogram(counts, shots) {
  const box = $("histogram");
  box.replaceChildren();
  const entries = Object.entries(counts).sort((a, b) => a[0].localeCompare(b[0]));
  if (!entries.length) {
    box.append(text("p", "no outcomes yet", { class: "muted" }));
    return;
  }
  const NS = "http://www.w3.org/2000/svg";
  const width = Math.max(240, entries.length * 56), height = 180, top = 20, base = 150;
  const most = Math.max(...entries.map(([, n]) => n));
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "outcome histogram");
  entries.forEach(([outcome, count], i) => {
    const h = Math.max(1, ((base - top) * count) / most);
    const x = 10 + i * 56;
    const bar = document.createElementNS(NS, "rect");
    Object.entries({ x, y: base - h, width: 40, height: h, class: "bar", "data-outcome": outcome, "data-count": count })
      .forEach(([k, v]) => bar.setAttribute(k, v));
    const title = document.createElementNS(NS, "title");
    title.textContent = `${outcome}: ${count} of ${shots}`;
    bar.append(title);
    const label = document.createElementNS(NS, "text");
    Object.entries({ x: x + 20, y: base + 16, "text-anchor": "middle", class: "outcome" }).forEach(([k, v]) => label.setAttribute(k, v));
    label.textContent = outcome || "(empty)";
    const value = document.createElementNS(NS, "text");
    Object.entries({ x: x + 20, y: base - h - 4, "text-anchor": "middle", "font-size": 11 }).forEach(([k, v]) => value.setAttribute(k, v));
    value.textContent = count;
    svg.append(bar, label, value);
  });
  box.append(svg);
}

function drawTelemetry(telemetry) {
  const table = $("telemetry");
  table.replaceChildren();
  const rows = { attempts: telemetry.attempts, preemptions: telemetry.preemptions, queued_s: telemetry.queued_s, run_s: telemetry.run_s, physical_qubits: telemetry.physical_qubits };
  Object.assign(rows, telemetry.telemetry || {});
  for (const [key, value] of Object.entries(rows)) {
    if (value === null || value === undefined || typeof value === "object") continue;
    const row = text("tr");
    row.append(text("td", key), text("td", String(value)));
    table.append(row);
  }
}

function drawTimeline(entries, telemetry) {
  const box = $("timeline");
  box.replaceChildren();
  // a run's attestation: on the job line that completed it (its epochs), or, before
  // 2026-11-26, an attest line of its own
  const attest = entries.filter((e) => e.event === "attest" || (e.event === "job" && e.epochs)).pop();
  if (!attest) {
    box.append(text("p", telemetry.state && facts.final.has(telemetry.state) ? "no attestation (the job did not complete)" : "runs once the job completes", { class: "muted" }));
    return;
  }
  for (const epoch of attest.epochs || []) {
    const cell = text("div", undefined, { class: "epoch", "data-epoch": epoch.epoch });
    cell.append(text("strong", `epoch ${epoch.epoch}`), text("div", `${epoch.nodes} nodes`));
    cell.append(text("div", Object.entries(epoch.ops).map(([op, n]) => `${op}×${n}`).join(" ")));
    cell.style.flexGrow = String(Math.max(1, epoch.nodes));
    box.append(cell);
  }
}

function drawAudit(entries) {
  const list = $("audit");
  list.replaceChildren();
  for (const entry of entries) {
    const { seq, ts, event, ...rest } = entry;
    delete rest.tenant;
    delete rest.job_id;
    const detail = Object.entries(rest).filter(([k]) => k !== "epochs").map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ");
    list.append(text("li", `#${seq} ${when(ts)} ${event} ${detail}`));
  }
}

// ------------------------------------------------------------------ machine

async function loadResources() {
  const reply = await api("GET", "/v1/resources");
  const table = $("resources");
  table.replaceChildren();
  const rows = Object.assign({}, reply.machine, { tenant: reply.tenant }, Object.fromEntries(Object.entries(reply.usage || {}).map(([k, v]) => [`usage: ${k}`, v])));
  for (const [key, value] of Object.entries(rows)) {
    if (value === null || typeof value === "object") continue;
    const row = text("tr");
    row.append(text("td", key), text("td", String(value)));
    table.append(row);
  }
}

// ------------------------------------------------------------------ the shared machine

const SVG = "http://www.w3.org/2000/svg";
// how often the machine panel follows the machine while signed in (its schedule moves in
// machine time, which no job event announces)
const MACHINE_REFRESH_MS = 2000;

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

// a tenant's colour: the same name, the same hue on every page and every module
function hue(tenant) {
  let h = 0;
  for (const ch of tenant) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h}, 62%, 52%)`;
}

async function loadMachine() {
  const reply = await api("GET", "/v1/machine");
  const jobs = reply.jobs;
  $("machine-summary").textContent =
    `${reply.policy} · cycle ${reply.clock_cycle} · ${jobs.queued} queued, ${jobs.running} running, ` +
    `${jobs.stopped} stopped, ${jobs.done} done · idle error at most ` +
    `${reply.max_idle_logical_error.toExponential(1)}, ${reply.over_budget} past budget`;
  $("machine-summary").setAttribute("data-policy", reply.policy);
  drawFloorplan(reply.floorplan);
  drawUtilization(reply.utilization_over_time);
  const table = $("machine");
  table.replaceChildren();
  const rows = {
    "tiles used": reply.utilization.tiles, "factories used": reply.utilization.factories,
    "links used": reply.utilization.links, "Jain's fairness": reply.jain_fairness,
    "throughput (jobs per machine-second)": reply.throughput_jobs_per_s,
    "mean slowdown": reply.mean_slowdown, "p95 slowdown": reply.p95_slowdown,
    "mean idle logical error": reply.mean_idle_logical_error,
    "most idle logical error": reply.max_idle_logical_error,
  };
  for (const [tenant, share] of Object.entries(reply.tenant_shares)) rows[`share: ${tenant}`] = share;
  for (const [key, value] of Object.entries(rows)) {
    const row = text("tr");
    row.append(text("td", key), text("td", typeof value === "number" ? String(+value.toFixed(4)) : String(value)));
    table.append(row);
  }
}

// each module's line of job tiles, snaked over its rows as the machine numbers them, with
// every placed job's tiles in its tenant's colour
function drawFloorplan(modules) {
  const box = $("floorplan");
  box.replaceChildren();
  const tenants = new Set();
  for (const module of modules) {
    const width = Math.max(1, module.width || Math.ceil(Math.sqrt(module.tiles)));
    const rows = Math.ceil(module.tiles / width);
    // a tile of 2 to 10 pixels: a module of thousands of tiles fits the panel
    const cell = Math.max(2, Math.min(10, Math.floor(Math.min(720 / width, 320 / rows))));
    const gap = cell > 3 ? 1 : 0;
    const picture = svg("svg", { width: width * cell + 2, height: rows * cell + 16, role: "img", "data-module": module.module, "aria-label": `module ${module.module} floorplan` });
    const label = svg("text", { x: 1, y: 11, class: "module-label" });
    label.textContent = `module ${module.module}: ${module.tiles} job tiles`;
    picture.append(label);
    const at = (index) => {
      const row = Math.floor(index / width);
      const col = row % 2 === 0 ? index % width : width - 1 - (index % width);
      return { x: 1 + col * cell, y: 15 + row * cell };
    };
    picture.append(svg("rect", { x: 1, y: 15, width: width * cell, height: rows * cell, class: "tile" }));
    for (const job of module.jobs) {
      tenants.add(job.tenant);
      const group = svg("g", { class: "job", "data-tenant": job.tenant, "data-tiles": job.tiles, "data-state": job.state, "data-first-tile": job.first_tile });
      if (job.job) group.setAttribute("data-job", job.job);
      const title = svg("title");
      title.textContent = `${job.tenant} ${job.job || "(another tenant's job)"}: tiles ${job.first_tile}-${job.first_tile + job.tiles - 1}, ${job.state}`;
      group.append(title);
      for (let i = job.first_tile; i < job.first_tile + job.tiles; i++) {
        const { x, y } = at(i);
        group.append(svg("rect", { x, y, width: cell - gap, height: cell - gap, fill: hue(job.tenant), opacity: job.state === "running" ? 1 : 0.5 }));
      }
      picture.append(group);
    }
    box.append(picture);
  }
  const legend = $("tenants");
  legend.replaceChildren();
  for (const tenant of [...tenants].sort()) {
    const item = text("span", tenant, { "data-tenant": tenant });
    const swatch = text("i");
    swatch.style.background = hue(tenant);
    item.prepend(swatch);
    legend.append(item);
  }
}

// tiles, factories and links busy over available, per span of whole epochs
function drawUtilization(series) {
  const box = $("utilization");
  box.replaceChildren();
  const width = 480, height = 120, left = 30, top = 6, bottom = 100;
  const picture = svg("svg", { width, height, role: "img", "aria-label": "utilization over time" });
  const colours = { tiles: "#2f5bd3", factories: "#d97706", links: "#157f3b" };
  const last = Math.max(1, ...Object.values(series).flat().map(([cycle]) => cycle));
  for (const [y, label] of [[top, "1"], [bottom, "0"]]) {
    const tick = svg("text", { x: 2, y: y + 4, class: "axis" });
    tick.textContent = label;
    picture.append(tick);
  }
  for (const [resource, points] of Object.entries(series)) {
    const path = points.map(([cycle, used]) => `${left + ((width - left - 4) * cycle) / last},${bottom - (bottom - top) * Math.min(used, 1)}`);
    const line = svg("polyline", { points: path.join(" "), class: "series", stroke: colours[resource] || "#6b7280", "data-resource": resource, "data-points": points.length });
    picture.append(line);
  }
  const axis = svg("text", { x: left, y: height - 4, class: "axis" });
  axis.textContent = `machine cycles 0-${last} (tiles blue, factories orange, links green)`;
  picture.append(axis);
  box.append(picture);
}

function followMachine() {
  if (state.machineTimer) clearInterval(state.machineTimer);
  state.machineTimer = setInterval(() => {
    if (state.session) loadMachine().catch((error) => console.warn("machine", error));
  }, MACHINE_REFRESH_MS);
}

// ------------------------------------------------------------------ workflow triggers

function runsOn(trigger) {
  if (trigger.on === "schedule") return trigger.cron ? `cron ${trigger.cron} (UTC)` : `every ${trigger.every_s} s`;
  if (trigger.on === "job") return `a job ends ${trigger.states.join("/")}`;
  return "a calibration";
}

function runResult(run) {
  if (!run) return "";
  if (run.error) return run.error;
  return Object.entries(run.summary || {}).map(([s, n]) => `${n} ${s}`).join(", ");
}

function runWhy(run) {
  return run.reason === "catch-up" ? `catch-up: ${run.detail.missed} missed, ran once` : run.reason;
}

async function loadTriggers() {
  const reply = await api("GET", "/v1/triggers");
  const body = $("triggers").querySelector("tbody");
  body.replaceChildren();
  $("no-triggers").hidden = reply.triggers.length > 0;
  for (const trigger of reply.triggers) {
    const last = trigger.last_run;
    const row = text("tr", undefined, { "data-trigger": trigger.trigger_id });
    row.append(
      text("td", trigger.name, { title: trigger.trigger_id }),
      text("td", runsOn(trigger)),
      text("td", `${trigger.workflow} (${trigger.jobs} jobs)`),
      text("td", trigger.next_run_at ? new Date(trigger.next_run_at * 1000).toLocaleString() : "on its event", { "data-next": trigger.next_run_at ?? "" }),
      text("td", undefined),
      text("td", runResult(last)),
    );
    if (last) {
      row.children[4].append(text("span", last.state, { class: `state ${last.state}`, "data-run-state": last.state }));
      row.children[4].append(text("span", ` ${runWhy(last)} ${when(last.started_at)}`));
    } else {
      row.children[4].append(text("span", "never ran", { class: "muted", "data-run-state": "" }));
    }
    if (trigger.trigger_id === state.trigger) row.classList.add("selected");
    row.addEventListener("click", () => selectTrigger(trigger.trigger_id));
    body.append(row);
  }
  if (state.trigger && !reply.triggers.some((t) => t.trigger_id === state.trigger)) {
    state.trigger = null;
    $("trigger-runs-panel").hidden = true;
  }
  if (state.trigger) await loadRuns(state.trigger);
}

async function selectTrigger(triggerId) {
  state.trigger = triggerId;
  $("trigger-runs-panel").hidden = false;
  $("trigger-id").textContent = triggerId;
  for (const row of $("triggers").querySelectorAll("tbody tr")) row.classList.toggle("selected", row.dataset.trigger === triggerId);
  await loadRuns(triggerId);
}

async function loadRuns(triggerId) {
  const reply = await api("GET", `/v1/triggers?trigger_id=${encodeURIComponent(triggerId)}&runs=20`);
  if (state.trigger !== triggerId) return;
  const body = $("trigger-runs").querySelector("tbody");
  body.replaceChildren();
  for (const run of reply.triggers[0].runs) {
    const row = text("tr", undefined, { "data-run": run.run_id });
    row.append(text("td", run.run_id), text("td", runWhy(run)), text("td", undefined), text("td", when(run.started_at)), text("td", when(run.finished_at)), text("td", undefined), text("td", runResult(run)));
    row.children[2].append(text("span", run.state, { class: `state ${run.state}`, "data-run-state": run.state }));
    for (const jobId of run.jobs) {
      const link = text("a", jobId, { href: "#", "data-job": jobId });
      link.addEventListener("click", (event) => { event.preventDefault(); select(jobId); });
      row.children[5].append(link, text("br"));
    }
    body.append(row);
  }
}

// ------------------------------------------------------------------ live events

async function watch() {
  const controller = new AbortController();
  state.stream = controller;
  $("live").textContent = "(live)";
  try {
    // a reconnect resumes past the last event heard (its id: is its whole cursor)
    const headers = { Authorization: `Bearer ${state.session}` };
    if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
    const reply = await fetch("/v1/events", { headers, signal: controller.signal });
    if (!reply.ok) state.lastEventId = null; // refused: the next try starts from now
    const reader = reply.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
          else if (line.startsWith("id: ")) state.lastEventId = line.slice(4);
        }
        if (data) onEvent(name, JSON.parse(data));
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") console.warn("event stream ended", error);
  }
  if (state.stream === controller) {
    $("live").textContent = "(reconnecting)";
    setTimeout(() => { if (state.session && state.stream === controller) watch(); }, 2000);
  }
}

function onEvent(name, event) {
  if (name === "trigger") {
    loadTriggers().catch((error) => console.warn("triggers", error));
    return;
  }
  if (name !== "job" || !event.job_id || !event.state) return;
  const job = state.jobs.get(event.job_id) || { job_id: event.job_id, shots: "", created_at: event.ts };
  job.state = event.state;
  state.jobs.set(event.job_id, job);
  renderJobs();
  if (event.job_id === state.selected) showJob(event.job_id);
  loadMachine().catch((error) => console.warn("machine", error));
}

// ------------------------------------------------------------------ the server's facts

async function loadFacts() {
  const reply = await fetch("/console/facts.json");
  const data = await reply.json();
  facts.final = new Set(data.final_states);
  $("shots").placeholder = String(data.shots);
  if ($("shots").value === "") $("shots").value = String(data.shots);
}

// ------------------------------------------------------------------ wiring

$("sign-in").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
$("submit").addEventListener("submit", submit);
$("upload").addEventListener("change", upload);
$("bell").addEventListener("click", () => { $("program").value = BELL; $("format").value = ""; });
$("refresh-resources").addEventListener("click", loadResources);
$("refresh-machine").addEventListener("click", loadMachine);
$("refresh-triggers").addEventListener("click", () => loadTriggers());
loadFacts().catch((error) => console.warn("no server facts", error));
const saved = sessionStorage.getItem("qmk-session");
if (saved) {
  Object.assign(state, JSON.parse(saved));
  start().catch(signOut);
}
