// test/browser/jobs.test.js: examples/web/jobs.html (the jobs admin page,
// channels jobs_admin and jobs:<id> of examples/jobs.sql) in Chromium, as a
// member of pgapp_admin (a token for jobs_admin) and as app_user: queues and
// counts, an import's progress bar and its cancellation, retry, pause and
// resume, refusals for a non-admin (nothing changes in SQL), a job enqueued
// in SQL showing up, the reconnecting banner.  The import is held at a known
// batch by a second connection that locks one of its contacts, so its
// progress is watched without timing.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import {
  URL_BASE, WAIT_MS, closeBrowser, closeDb, gateway, newPage, screenshot, since, sql, token,
} from './helpers.js';

const require = createRequire(import.meta.url);
const pg = require('pg');

let adminToken;
let viewerToken;
let scheduledJob;   // a job of queue "default" due tomorrow

before(async () => {
  adminToken = await token('admin', { role: 'jobs_admin' });
  viewerToken = await token('alice', { role: 'app_user' });
  [{ id: scheduledJob }] = await sql(`SELECT pgapp.enqueue('default', 'jobs.cleanup_worker', '{"keep_days": 30}',
    scheduled_at => now() + interval '1 day') AS id`);
});

after(async () => {
  await sql('SELECT pgapp.cancel_job($1)', [scheduledJob]);
  await sql("SELECT pgapp.resume_queue(name) FROM pgapp.queue WHERE paused AND name IN ('reports', 'emails')");
  await closeBrowser();
  await closeDb();
});

// The jobs page with a token, once it shows its first view.
async function open(tok, viewport = 'desktop') {
  const page = await newPage(viewport);
  page.urls = [];
  page.on('request', (req) => page.urls.push(req.url()));
  page.on('websocket', (ws) => page.urls.push(ws.url()));
  await page.goto(`${URL_BASE}/jobs.html#token=${tok}`);
  await page.locator('html[data-loaded="yes"]').waitFor({ timeout: WAIT_MS });
  return page;
}

const jobRow = (page, id, state) => page.locator(`#jobs tr[data-job="${id}"]${state ? `[data-state="${state}"]` : ''}`);
const queueRow = (page, name, paused) => page.locator(`#queues tr[data-queue="${name}"]${paused === undefined ? '' : `[data-paused="${paused}"]`}`);

async function jobState(id) {
  return (await sql('SELECT state::text, attempt FROM pgapp.job WHERE id = $1', [id]))[0];
}

test('jobs.html (admin): queues with their counts, cron schedules, no console error', async () => {
  const page = await open(adminToken);
  assert.equal(await page.title(), 'Jobs: pgapp admin');
  await page.getByText('a member of pgapp_admin').waitFor({ timeout: WAIT_MS });
  for (const q of ['default', 'emails', 'imports', 'reports']) {
    await queueRow(page, q).waitFor({ timeout: WAIT_MS });
  }
  // the counts are those of pgapp.queue_stats
  const [stats] = await sql("SELECT scheduled, completed FROM pgapp.queue_stats WHERE queue = 'default'");
  const scheduled = queueRow(page, 'default').locator('td[data-count="scheduled"]');
  assert.equal(Number(await scheduled.textContent()), Number(stats.scheduled));
  assert.ok(Number(stats.scheduled) >= 1);
  // the job due tomorrow is listed, with its buttons
  await jobRow(page, scheduledJob, 'scheduled').waitFor({ timeout: WAIT_MS });
  await page.getByRole('button', { name: `Cancel job ${scheduledJob}` }).waitFor({ timeout: WAIT_MS });
  // cron schedules of examples/jobs.sql
  await page.locator('#schedules').getByText('jobs-cleanup').waitFor({ timeout: WAIT_MS });
  await page.locator('#schedules').getByText('jobs-weekly-analytics').waitFor({ timeout: WAIT_MS });
  // keyboard: Tab reaches the Pause buttons
  const pause = page.getByRole('button', { name: 'Pause queue default' });
  await pause.focus();
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Pause queue default');
  // nothing is fetched from elsewhere than the gateway (its files and its socket)
  const { host } = new URL(URL_BASE);
  assert.deepEqual(page.urls.filter((u) => new URL(u).host !== host), []);
  assert.ok(page.urls.some((u) => u.startsWith(`ws://${host}/socket/websocket`)), page.urls.join(' '));
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('jobs.html (admin): an import started from the page shows its progress and is cancelled from it', async () => {
  // a contact of the import's 6th batch (rows 2501-3000 of 5000), locked by
  // another connection: the import waits there, after reporting 50%
  await sql("INSERT INTO jobs.contact (email, name) VALUES ('person2600@example.com', 'Held') ON CONFLICT (email) DO NOTHING");
  const holder = new pg.Client();
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query("SELECT 1 FROM jobs.contact WHERE email = 'person2600@example.com' FOR UPDATE");

    const page = await open(adminToken);
    const form = page.locator('#import-form');
    await form.getByLabel('Rows').fill('5000');
    await form.getByLabel('Batch size').fill('500');
    await form.getByLabel('Pause after each batch (ms)').fill('0');
    const t0 = performance.now();
    await form.getByRole('button', { name: 'Start import' }).click();
    await page.locator('#notice').getByText(/Import \d+ started/).waitFor({ timeout: WAIT_MS });
    const label = await page.locator('#import-label').textContent();
    const [, importId, jobId] = label.match(/Import (\d+) \(job (\d+)\)/).map(Number);

    // the bar advances (progress events on jobs:<id>) ...
    await page.waitForFunction(() => Number(document.querySelector('#import-progress').value) > 0, null, { timeout: WAIT_MS });
    console.log(`latency: import started to its first progress on the page: ${since(t0)} ms`);
    // ... to the batch before the locked contact
    await page.locator('#import-progress[data-percent="50"]').waitFor({ timeout: WAIT_MS });
    assert.match(await page.locator('#import-label').textContent(), /50% \(2500 of 5000 rows\)/);
    assert.equal((await jobState(jobId)).state, 'executing');
    // the counts follow (a re-read after the broadcast of the claim)
    await queueRow(page, 'imports').locator('td[data-count="executing"]', { hasText: /^1$/ }).waitFor({ timeout: WAIT_MS });
    await screenshot(page, 'jobs-import', 'desktop');

    // cancel from the page: the job is interrupted while it waits
    const t1 = performance.now();
    await page.getByRole('button', { name: 'Cancel import' }).click();
    await page.locator('#import[data-state="cancelled"]').waitFor({ timeout: WAIT_MS });
    console.log(`latency: cancel clicked to "cancelled" on the page: ${since(t1)} ms`);
    await jobRow(page, jobId, 'cancelled').waitFor({ timeout: WAIT_MS });
    assert.equal((await jobState(jobId)).state, 'cancelled');
    // nothing of it stays
    await holder.query('ROLLBACK');
    const [{ n }] = await sql('SELECT count(*)::int AS n FROM jobs.contact WHERE import_id = $1', [importId]);
    assert.equal(n, 0);
    assert.equal(await page.getByRole('button', { name: 'Cancel import' }).isVisible(), false);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  } finally {
    await holder.end();
  }
});

test('jobs.html (admin): a job enqueued in SQL appears; a failed one is retried from the page', async () => {
  const page = await open(adminToken);
  // an email whose template does not exist yet: it fails its only attempt
  const template = `jobs-page-${Date.now()}`;
  const t0 = performance.now();
  const [{ id }] = await sql(`SELECT pgapp.enqueue('emails', 'jobs.email_worker',
    jsonb_build_object('recipient', 'ada@example.com', 'template', $1::text, 'vars', '{}'::jsonb),
    max_attempts => 1) AS id`, [template]);
  await jobRow(page, id).waitFor({ timeout: WAIT_MS });
  console.log(`latency: job enqueued in SQL to shown on the page: ${since(t0)} ms`);
  await jobRow(page, id, 'discarded').waitFor({ timeout: WAIT_MS });
  await jobRow(page, id).getByText(`email template "${template}" does not exist`).waitFor({ timeout: WAIT_MS });
  assert.deepEqual(await jobState(id), { state: 'discarded', attempt: 1 });

  await sql("INSERT INTO jobs.email_template (name, subject, body) VALUES ($1, 'hi', 'hi')", [template]);
  const t1 = performance.now();
  await page.getByRole('button', { name: `Retry job ${id}` }).click();
  await jobRow(page, id, 'completed').waitFor({ timeout: WAIT_MS });
  console.log(`latency: retry clicked to "completed" on the page: ${since(t1)} ms`);
  assert.deepEqual(await jobState(id), { state: 'completed', attempt: 2 });
  assert.match(await jobRow(page, id).textContent(), /2\/2/);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('jobs.html (admin): pause and resume a queue, in the page and in SQL', async () => {
  const page = await open(adminToken);
  const t0 = performance.now();
  await page.getByRole('button', { name: 'Pause queue reports' }).click();
  await queueRow(page, 'reports', true).waitFor({ timeout: WAIT_MS });
  console.log(`latency: pause clicked to shown on the page: ${since(t0)} ms`);
  await page.locator('#notice').getByText('Queue reports is paused').waitFor({ timeout: WAIT_MS });
  assert.equal((await sql("SELECT paused FROM pgapp.queue WHERE name = 'reports'"))[0].paused, true);
  // the button became Resume and keeps the focus
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Resume queue reports');
  await page.keyboard.press('Enter');
  await queueRow(page, 'reports', false).waitFor({ timeout: WAIT_MS });
  await page.locator('#notice').getByText('Queue reports runs again').waitFor({ timeout: WAIT_MS });
  assert.equal((await sql("SELECT paused FROM pgapp.queue WHERE name = 'reports'"))[0].paused, false);

  // a change made in SQL shows up too
  const t1 = performance.now();
  await sql("SELECT pgapp.pause_queue('emails')");
  await queueRow(page, 'emails', true).waitFor({ timeout: WAIT_MS });
  console.log(`latency: queue paused in SQL to shown on the page: ${since(t1)} ms`);
  await sql("SELECT pgapp.resume_queue('emails')");
  await queueRow(page, 'emails', false).waitFor({ timeout: WAIT_MS });
  await screenshot(page, 'jobs', 'desktop');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('jobs.html (app_user): read-only; actions forced through the page are refused, nothing changes', async () => {
  const page = await open(viewerToken);
  await page.getByText('read-only').waitFor({ timeout: WAIT_MS });
  assert.equal(await page.getByRole('button', { name: 'Pause queue emails' }).isDisabled(), true);
  assert.equal(await page.getByRole('button', { name: 'Start import' }).isDisabled(), true);
  await jobRow(page, scheduledJob).waitFor({ timeout: WAIT_MS });
  const importsBefore = (await sql('SELECT count(*)::int AS n FROM jobs.import'))[0].n;

  // the server checks: enable the buttons as a user could, and use them
  const force = (selector) => page.evaluate((sel) => {
    const el = document.querySelector(sel);
    el.disabled = false;
    el.click();
  }, selector);
  const alert = page.getByRole('alert');
  await force('#queues button[data-queue="emails"]');
  await alert.getByText('only members of pgapp_admin may pause queues (your role is app_user)').waitFor({ timeout: WAIT_MS });
  await force(`#jobs button[data-action="cancel"][data-id="${scheduledJob}"]`);
  await alert.getByText('only members of pgapp_admin may cancel jobs').waitFor({ timeout: WAIT_MS });
  await force('#import-form button[type="submit"]');
  await alert.getByText('only members of pgapp_admin may start imports').waitFor({ timeout: WAIT_MS });
  assert.equal((await sql("SELECT paused FROM pgapp.queue WHERE name = 'emails'"))[0].paused, false);
  assert.equal((await jobState(scheduledJob)).state, 'scheduled');
  assert.equal((await sql('SELECT count(*)::int AS n FROM jobs.import'))[0].n, importsBefore);
  // no error text or args for a viewer
  assert.equal(await page.locator('#jobs .args').count(), 0);

  // nor by calling the functions as the role directly
  for (const call of ["SELECT pgapp.pause_queue('emails')", 'SELECT jobs._admin_start_import(10)',
    `SELECT pgapp.cancel_job(${scheduledJob})`, "SELECT jobs._admin_job_details('{1}')"]) {
    await sql('BEGIN; SET LOCAL ROLE app_user');
    await assert.rejects(sql(call), (err) => err.code === '42501', call);
    await sql('ROLLBACK');
  }
  await screenshot(page, 'jobs-readonly', 'desktop');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('jobs.html (admin, phone): the reconnecting banner while the gateway is down, live again after', async () => {
  const page = await open(adminToken, 'phone');
  const banner = page.locator('[data-connection-banner]');
  assert.equal(await banner.isVisible(), false);
  gateway('stop');
  try {
    await banner.waitFor({ state: 'visible', timeout: WAIT_MS });
  } finally {
    gateway('start');
  }
  const t0 = performance.now();
  await banner.waitFor({ state: 'hidden', timeout: WAIT_MS });
  console.log(`latency: gateway started to banner gone: ${since(t0)} ms`);
  // rejoined: broadcasts arrive again
  const [{ id }] = await sql(`SELECT pgapp.enqueue('reports', 'jobs.report_worker', '{"kind": "contacts"}',
    scheduled_at => now() + interval '1 hour') AS id`);
  await jobRow(page, id, 'scheduled').waitFor({ timeout: WAIT_MS });
  await sql('SELECT pgapp.cancel_job($1)', [id]);
  await jobRow(page, id, 'cancelled').waitFor({ timeout: WAIT_MS });
  await screenshot(page, 'jobs', 'phone');
  // the browser reports the refused reconnections as console errors: those alone
  const others = page.problems.filter((p) => !/WebSocket connection to .* failed/.test(p));
  assert.deepEqual(others, []);
  await page.context().close();
});
