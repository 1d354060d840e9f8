// examples/web/jobs.js: the jobs admin page (jobs.html; docs/web.md#jobs-admin).
//
// One channel, jobs_admin (examples/jobs.sql): its join reply is the page
// (queues with counts by state, recent jobs, cron schedules, the latest
// imports; for admins also the jobs' args and last errors); its broadcasts
// ("jobs", "queue", "jobs_deleted") update the rows at once and ask for a
// fresh view (push "refresh", at most one at a time), since only a re-read
// gives exact counts.  Actions are pushes whose replies say what happened
// or why not: the database checks who may (members of pgapp_admin); the
// page only disables the buttons of others.  A running import is followed
// on its own topic, jobs:<id>, where pgapp broadcasts "progress".
import { askToken, connectSocket, esc, pushEvent } from "./lib/pgapp.js";

const STATES = ["available", "scheduled", "executing", "retryable", "completed", "discarded", "cancelled"];
const FINISHED = new Set(["completed", "discarded", "cancelled"]);
const RETRYABLE = new Set(["scheduled", "retryable", "completed", "discarded", "cancelled"]);
const MAX_JOBS = 50;

const $ = (sel) => document.querySelector(sel);

const page = {
  admin: false,
  filter: "",
  queues: [],
  jobs: new Map(),        // id -> job, newest first when listed
  details: {},            // id -> {args, last_error} (admins)
  schedules: [],
  imports: [],
};
let channel;
let socket;

// ---- messages ------------------------------------------------------------

function showAlert(text) {
  const el = $("#alert");
  el.textContent = text;
  el.hidden = !text;
}
function showNotice(text) {
  const el = $("#notice");
  el.textContent = text;
  el.hidden = !text;
  if (text) showAlert("");
}
function reason(reply) {
  if (!reply) return "no reply";
  return reply.message || reply.reason || JSON.stringify(reply);
}

// ---- rendering -------------------------------------------------------------

function time(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return `<time datetime="${esc(ts)}">${esc(d.toLocaleTimeString())}</time>`;
}
function badge(state) {
  return `<span class="badge state-${esc(state)}">${esc(state)}</span>`;
}
function adminAttrs() {
  return page.admin ? "" : ' disabled aria-describedby="who"';
}

// Re-render a tbody keeping the keyboard focus on the same button (or, if it
// is gone, on the first button of the same row).
function renderBody(table, html) {
  const body = $(`${table} tbody`);
  const active = document.activeElement;
  let key = null;
  let row = null;
  if (active && body.contains(active)) {
    key = active.dataset.key || null;
    row = active.closest("tr")?.dataset.row || null;
  }
  body.innerHTML = html;
  if (key || row) {
    const again = (key && body.querySelector(`[data-key="${CSS.escape(key)}"]`))
      || (row && body.querySelector(`tr[data-row="${CSS.escape(row)}"] button`));
    if (again && !again.disabled) again.focus();
  }
}

function renderQueues() {
  renderBody("#queues", page.queues.map((q) => {
    const counts = STATES.map((s) => {
      const n = Number(q.counts?.[s]) || 0;
      return `<td class="num${n ? "" : " zero"}" data-count="${s}">${n}</td>`;
    }).join("");
    const paused = q.paused === true;
    const action = paused ? "resume" : "pause";
    const label = paused ? "Resume" : "Pause";
    return `<tr data-row="queue:${esc(q.name)}" data-queue="${esc(q.name)}" data-paused="${paused}">
      <th scope="row">${esc(q.name)}</th>
      <td class="workers">${esc(q.busy ?? 0)} busy of ${esc(q.concurrency)}</td>
      <td>${paused ? '<span class="badge paused">paused</span>' : '<span class="badge running">running</span>'}</td>
      ${counts}
      <td><button type="button" class="secondary" data-action="${action}" data-queue="${esc(q.name)}"
        data-key="queue:${esc(q.name)}" aria-label="${label} queue ${esc(q.name)}"${adminAttrs()}>${label}</button></td>
    </tr>`;
  }).join(""));
}

function jobList() {
  return [...page.jobs.values()].sort((a, b) => b.id - a.id).slice(0, MAX_JOBS);
}

function renderJobs() {
  const jobs = jobList();
  renderBody("#jobs", jobs.map((j) => {
    const d = page.details[j.id] || {};
    const err = d.last_error;
    const errors = j.errors
      ? `${esc(j.errors)}${err ? `: <span class="error-text">${esc(err.message)}</span>
           <span class="muted">(${esc(err.sqlstate)}, attempt ${esc(err.attempt)})</span>` : ""}`
      : '<span class="muted">none</span>';
    const args = d.args ? `<div class="args"><code>${esc(d.args)}</code></div>` : "";
    const buttons = [];
    if (RETRYABLE.has(j.state)) {
      buttons.push(`<button type="button" class="secondary" data-action="retry" data-id="${esc(j.id)}"
        data-key="retry:${esc(j.id)}" aria-label="Retry job ${esc(j.id)}"${adminAttrs()}>Retry</button>`);
    }
    if (!FINISHED.has(j.state) && !j.cancelling) {
      buttons.push(`<button type="button" class="secondary" data-action="cancel" data-id="${esc(j.id)}"
        data-key="cancel:${esc(j.id)}" aria-label="Cancel job ${esc(j.id)}"${adminAttrs()}>Cancel</button>`);
    }
    const state = j.cancelling && !FINISHED.has(j.state) ? `${badge(j.state)} <span class="muted">cancelling</span>` : badge(j.state);
    return `<tr data-row="job:${esc(j.id)}" data-job="${esc(j.id)}" data-state="${esc(j.state)}">
      <td class="num">${esc(j.id)}</td>
      <td>${esc(j.queue)}</td>
      <td><code>${esc(j.worker)}</code>${args}</td>
      <td>${state}</td>
      <td class="num">${esc(j.attempt)}/${esc(j.max_attempts)}</td>
      <td class="errors">${errors}</td>
      <td>${time(j.inserted_at)}</td>
      <td class="actions">${buttons.join(" ")}</td>
    </tr>`;
  }).join(""));
  $("#jobs-empty").hidden = jobs.length > 0;
}

function renderSchedules() {
  renderBody("#schedules", page.schedules.map((s) => `<tr>
      <th scope="row">${esc(s.name)}</th>
      <td><code>${esc(s.schedule)}</code></td>
      <td>${esc(s.queue)}</td>
      <td><code>${esc(s.worker)}</code></td>
      <td>${s.active ? "yes" : "no"}</td>
      <td>${s.last_start ? `${time(s.last_start)} ${esc(s.last_status)}` : '<span class="muted">not yet</span>'}</td>
    </tr>`).join(""));
  $("#schedules-empty").hidden = page.schedules.length > 0;
}

function renderWho(view) {
  const who = view.user ? `${view.user} (role ${view.role})` : `role ${view.role}`;
  $("#who").textContent = view.admin
    ? `Signed in as ${who}, a member of pgapp_admin.`
    : `Signed in as ${who}: read-only (the actions are for members of pgapp_admin).`;
  document.documentElement.dataset.admin = view.admin ? "yes" : "no";
  for (const el of document.querySelectorAll("[data-admin]")) {
    el.disabled = !view.admin;
    if (!view.admin) el.setAttribute("aria-describedby", "who");
  }
}

function render() {
  renderQueues();
  renderJobs();
  renderSchedules();
  renderImport();
}

// ---- the view, broadcasts, refresh -----------------------------------------

function applyView(view) {
  page.admin = !!view.admin;
  page.queues = view.queues || [];
  page.jobs = new Map((view.jobs || []).map((j) => [j.id, j]));
  page.details = view.details || {};
  page.schedules = view.schedules || [];
  page.imports = view.imports || [];
  renderWho(view);
  adoptImport();
  render();
  document.documentElement.dataset.loaded = "yes";
}

let refreshTimer = null;
let refreshing = false;
let again = false;

// Ask for a fresh view soon: one request at a time, one more if something
// changed meanwhile.
function scheduleRefresh(delay = 100) {
  if (refreshTimer || refreshing) {
    again = true;
    return;
  }
  refreshTimer = setTimeout(refresh, delay);
}
async function refresh() {
  refreshTimer = null;
  refreshing = true;
  again = false;
  try {
    applyView(await pushEvent(channel, "refresh", { state: page.filter }));
  } catch (err) {
    // the socket is down: the rejoin brings a fresh view
    if (err?.reason !== "timeout") showAlert(`Could not refresh: ${reason(err)}`);
  } finally {
    refreshing = false;
    if (again) scheduleRefresh();
  }
}

// (Any role that can connect may NOTIFY raw text on the topic's channel:
// what a broadcast says is escaped when shown, and re-read by the refresh.)
function onJobs({ jobs = [] }) {
  for (const j of Array.isArray(jobs) ? jobs : []) {
    if (!Number.isSafeInteger(j?.id)) continue;
    if (page.jobs.has(j.id) || !page.filter || page.filter === j.state) page.jobs.set(j.id, { ...page.jobs.get(j.id), ...j });
    if (page.filter && page.filter !== j.state && page.jobs.has(j.id)) page.jobs.delete(j.id);
    if (imp && imp.job_id === j.id) updateImportState(j.state, j.cancelling);
  }
  // keep at most MAX_JOBS rows
  for (const j of [...page.jobs.values()].sort((a, b) => b.id - a.id).slice(MAX_JOBS)) page.jobs.delete(j.id);
  renderJobs();
  renderImport();
  scheduleRefresh();
}

function onQueue(q) {
  if (typeof q?.name !== "string") return;
  const known = page.queues.find((x) => x.name === q.name);
  if (q.op === "delete") page.queues = page.queues.filter((x) => x.name !== q.name);
  else if (known) Object.assign(known, { concurrency: q.concurrency, paused: q.paused });
  else page.queues.push({ name: q.name, concurrency: q.concurrency, paused: q.paused, counts: {} });
  renderQueues();
  scheduleRefresh();
}

// ---- the import --------------------------------------------------------------

// The import shown: {import_id, job_id, state, percent, message, cancelling}
let imp = null;
let progressChannel = null;

function follow(jobId) {
  if (progressChannel && progressChannel.topic === `jobs:${jobId}`) return;
  if (progressChannel) progressChannel.leave();
  progressChannel = socket.channel(`jobs:${jobId}`, {});
  progressChannel.on("progress", (p) => {
    if (!imp || imp.job_id !== p.id) return;
    imp.percent = p.percent;
    imp.message = p.message;
    if (!FINISHED.has(imp.state)) imp.state = "executing";
    renderImport();
  });
  const channel = progressChannel;
  const apply = (j) => {
    if (!imp || imp.job_id !== j.id) return;
    // a reply may come after a newer progress event: never go back
    if (j.percent != null && (imp.percent == null || j.percent >= imp.percent)) {
      imp.percent = j.percent;
      if (j.message != null) imp.message = j.message;
    }
    updateImportState(j.state);
    renderImport();
  };
  // the join reply, then "state" once more: the gateway LISTENs after the
  // join function ran, and the reports made in between were not sent here
  channel.join()
    .receive("ok", (j) => {
      apply(j);
      pushEvent(channel, "state").then(apply).catch(() => {});
    })
    .receive("error", (reply) => {
      channel.leave();
      if (progressChannel === channel) progressChannel = null;
      showAlert(`Cannot follow the import's progress: ${reason(reply)}`);
    });
}

function stopFollowing() {
  if (progressChannel) progressChannel.leave();
  progressChannel = null;
}

function updateImportState(state, cancelling) {
  if (!imp || !state) return;
  imp.state = state;
  if (cancelling !== undefined) imp.cancelling = cancelling;
  if (state === "completed") imp.percent = 100;
  if (FINISHED.has(state)) stopFollowing();
}

// The latest import of a view, unless the page follows a newer one.
function adoptImport() {
  const latest = page.imports[0];
  if (!latest || !latest.job_id) return;
  if (imp && imp.import_id > latest.id) return;
  if (!imp || imp.import_id !== latest.id) {
    imp = { import_id: latest.id, job_id: latest.job_id, percent: null, message: null };
  }
  const job = page.jobs.get(latest.job_id);
  imp.state = latest.job_state || imp.state;
  imp.cancelling = job ? job.cancelling : imp.cancelling;
  if (latest.percent != null) imp.percent = latest.percent;
  if (latest.message != null) imp.message = latest.message;
  if (latest.job_state === "completed") imp.percent = 100;
  if (imp.state && !FINISHED.has(imp.state)) follow(imp.job_id);
  else stopFollowing();
}

function renderImport() {
  const box = $("#import");
  if (!imp) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const bar = $("#import-progress");
  const known = imp.percent != null;
  const percent = known ? Number(imp.percent) : 0;
  bar.value = percent;
  bar.dataset.percent = String(percent);
  const what = imp.message ? ` (${imp.message})` : "";
  $("#import-label").textContent = `Import ${imp.import_id} (job ${imp.job_id})${known ? `: ${percent}%` : ""}${what}`;
  const state = $("#import-state");
  const shown = imp.cancelling && !FINISHED.has(imp.state) ? "cancelling" : (imp.state || "starting");
  state.textContent = shown;
  state.className = `badge state-${shown}`;
  box.dataset.state = shown;
  const cancel = $("#import-cancel");
  cancel.hidden = FINISHED.has(imp.state);
  cancel.disabled = !page.admin || !!imp.cancelling;
}

// ---- actions -----------------------------------------------------------------

const DONE = {
  retry: (r) => (r.done ? `Job ${r.id} will run again (${r.state}).` : `Job ${r.id} is ${r.state} already.`),
  cancel: (r) => (r.done ? (r.cancelling && !FINISHED.has(r.state) ? `Job ${r.id} is being cancelled.` : `Job ${r.id} is cancelled.`)
    : `Job ${r.id} has finished already (${r.state}).`),
  pause: (r) => `Queue ${r.queue} is paused: no new job of it starts.`,
  resume: (r) => `Queue ${r.queue} runs again.`,
  start_import: (r) => `Import ${r.import_id} started (job ${r.job_id}).`,
};

async function act(event, payload, button) {
  if (button) button.setAttribute("aria-busy", "true");
  const t0 = performance.now();
  try {
    const reply = await pushEvent(channel, event, payload);
    showNotice(DONE[event](reply));
    document.documentElement.dataset.lastAction = `${event} ok ${Math.round(performance.now() - t0)}ms`;
    return reply;
  } catch (err) {
    showAlert(`Refused: ${reason(err)}`);
    document.documentElement.dataset.lastAction = `${event} error`;
    return null;
  } finally {
    if (button) button.removeAttribute("aria-busy");
  }
}

async function onAction(ev) {
  const button = ev.target.closest("button[data-action]");
  if (!button || button.disabled) return;
  const { action } = button.dataset;
  if (action === "pause" || action === "resume") {
    const reply = await act(action, { queue: button.dataset.queue }, button);
    if (reply) onQueue({ op: "update", name: reply.queue, paused: reply.paused, concurrency: page.queues.find((q) => q.name === reply.queue)?.concurrency });
  } else {
    const id = Number(button.dataset.id);
    const reply = await act(action, { id }, button);
    if (reply && page.jobs.has(id)) {
      Object.assign(page.jobs.get(id), { state: reply.state, cancelling: reply.cancelling });
      if (imp && imp.job_id === id) updateImportState(reply.state, reply.cancelling);
      renderJobs();
      renderImport();
    }
  }
}

async function onImport(ev) {
  ev.preventDefault();
  const form = ev.target;
  const payload = Object.fromEntries(["rows", "batch_size", "pause_ms"].map((k) => [k, Number(form.elements[k].value)]));
  const reply = await act("start_import", payload, form.querySelector("button"));
  if (!reply) return;
  imp = { import_id: reply.import_id, job_id: reply.job_id, state: "available", percent: 0, message: null };
  renderImport();
  follow(reply.job_id);
  scheduleRefresh(0);
}

async function onCancelImport(ev) {
  if (!imp) return;
  const reply = await act("cancel", { id: imp.job_id }, ev.target);
  if (reply) {
    updateImportState(reply.state, reply.cancelling);
    renderImport();
  }
}

// ---- start -------------------------------------------------------------------

async function main() {
  for (const t of ["#queues", "#jobs"]) $(t).addEventListener("click", onAction);
  $("#import-form").addEventListener("submit", onImport);
  $("#import-cancel").addEventListener("click", onCancelImport);
  $("#state-filter").addEventListener("change", (ev) => {
    page.filter = ev.target.value;
    scheduleRefresh(0);
  });

  const token = await askToken(document.querySelector("main"));
  socket = connectSocket(token, {
    onRefused: () => showAlert("The server refused the token (expired, revoked or invalid). Reload the page to enter another."),
  });
  // params as a function: a rejoin (after a reconnect) asks for the current filter
  channel = socket.channel("jobs_admin", () => ({ state: page.filter }));
  channel.on("jobs", onJobs);
  channel.on("jobs_deleted", () => scheduleRefresh());
  channel.on("queue", onQueue);
  // every (re)join replies with the whole view.  The gateway runs the join
  // function, then LISTENs: a change committed in between is in neither the
  // view nor a broadcast, so the page reads the view once more after each
  // join (from then on, every change is broadcast to it)
  channel.join()
    .receive("ok", (view) => {
      showAlert("");
      applyView(view);
      scheduleRefresh(0);
    })
    .receive("error", (reply) => {
      channel.leave();
      $("#who").textContent = "Not allowed.";
      showAlert(`This page is not for you: ${reason(reply)}`);
    });
}

main();
