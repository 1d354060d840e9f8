// test/clients/jobs.test.js: the external worker of examples/clients/node
// (jobs_worker.js) against a live server (PG* environment variables),
// printing TAP.
//
// A plain pg connection (PG*, a superuser) makes the queues, enqueues and
// reads pgapp.job; the workers log in as a role that is a member of
// pgapp_worker and nothing else.  The queues have concurrency 0, so only
// these workers run their jobs.  Each wait is bounded (WAIT_MS).  Run by
// "bash scripts/test clients".
'use strict';

const assert = require('assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { createRequire } = require('module');

const LIB = path.join(__dirname, '..', '..', 'examples', 'clients', 'node', 'jobs_worker.js');
const { JobsWorker, JobLostError } = require(LIB);
const pg = createRequire(LIB)('pg'); // the library's own pg (its node_modules)

const WAIT_MS = 10000;
const ROLE = 'clients_jobs_worker';
const OUTSIDER = 'clients_jobs_outsider';
const QUEUE = 'clients_jobs';
const RESCUE_QUEUE = 'clients_jobs_rescue';
const CLI_QUEUE = 'clients_jobs_cli';
const WORKER_FN = 'public.clients_thumbnail';

// Items pushed by events, taken by tests with a bounded wait.
class Inbox {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.wake = null;
  }

  push(item) {
    this.items.push(item);
    if (this.wake) this.wake();
  }

  // Wait until an item matching pred is there, and take it.
  async take(pred = () => true) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const i = this.items.findIndex(pred);
      if (i >= 0) return this.items.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`waited ${WAIT_MS / 1000} s for ${this.what}, got: ${JSON.stringify(this.items).slice(0, 500)}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = null;
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll fn until it returns something truthy (at most WAIT_MS).
async function until(what, fn) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const got = await fn();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`waited ${WAIT_MS / 1000} s for ${what}`);
    await sleep(50);
  }
}

let db;                       // the superuser connection
const workers = [];           // every worker started, stopped at the end
const released = new Map();   // "id:attempt" -> release() of a "hold" job
const aborted = new Map();    // job id -> the reason its signal aborted with
const raw = new Inbox('a notification on pgapp_jobs:' + QUEUE);

const enqueue = async (queue, args, opts = {}) => {
  const { rows } = await db.query(
    `SELECT pgapp.enqueue($1, $2::regproc, $3::jsonb, max_attempts => $4) AS id`,
    [queue, WORKER_FN, JSON.stringify(args), opts.maxAttempts ?? 20]);
  return rows[0].id;
};
const jobRow = async (id) => (await db.query(
  `SELECT state::text, attempt, result, errors, attempted_by, scheduled_at > now() + interval '15 s' AS backed_off
     FROM pgapp.job WHERE id = $1`, [id])).rows[0];

// Settled when a "progress" handler's report has returned (whichever side
// asks first creates it).
const progressedJobs = new Map();
function progressed(id) {
  const key = String(id);
  if (!progressedJobs.has(key)) {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    progressedJobs.set(key, { promise, resolve });
  }
  return progressedJobs.get(key);
}

// What the handler does is up to the job's args: "echo" returns them,
// "fail" throws, "sleep" takes ms milliseconds (stopping when its signal
// aborts), "hold" runs until the test releases it, ignoring its signal
// (a worker that froze), "until_aborted" runs until its signal aborts,
// "progress" reports 40% and then waits to be released.
async function handler(job, { signal, progress }) {
  const { kind } = job.args;
  if (kind === 'echo') return { echo: job.args, attempt: job.attempt };
  if (kind === 'progress') {
    const held = await progress(40, 'rows 400 of 1000');
    progressed(job.id).resolve(held);
    await new Promise((resolve) => released.set(`${job.id}:${job.attempt}`, resolve));
    return { reported: held };
  }
  if (kind === 'fail') throw new Error(`no thumbnail for ${job.args.file}`);
  if (kind === 'sleep') {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, job.args.ms);
      signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); });
    });
    return { slept: job.args.ms };
  }
  if (kind === 'hold') {
    await new Promise((resolve) => released.set(`${job.id}:${job.attempt}`, resolve));
    return { held: true };
  }
  if (kind === 'until_aborted') {
    await new Promise((resolve, reject) => signal.addEventListener('abort', () => {
      aborted.set(job.id, signal.reason);
      reject(signal.reason);
    }));
  }
  throw new Error(`unknown kind ${kind}`);
}

// A worker logged in as ROLE, its events in inboxes.
async function startWorker(opts) {
  const w = new JobsWorker({ handler, config: { user: ROLE }, ...opts });
  w.inbox = {};
  for (const event of ['job', 'completed', 'failed', 'lost', 'error', 'idle']) {
    w.inbox[event] = new Inbox(`"${event}" of the worker on ${opts.queue}`);
  }
  for (const event of ['job', 'completed', 'failed', 'lost']) {
    w.on(event, (job, more) => w.inbox[event].push({ job, more }));
  }
  w.on('idle', () => w.inbox.idle.push({}));
  w.on('error', (err) => w.inbox.error.push({ err }));
  workers.push(w);
  await w.start();
  return w;
}
const forJob = (id) => (e) => e.job && e.job.id === id;

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
let main1; // the worker of QUEUE

test('a worker role in pgapp_worker starts; a role outside it is refused', async () => {
  db = new pg.Client();
  await db.connect();
  await db.query(`DROP ROLE IF EXISTS ${ROLE}, ${OUTSIDER}`);
  await db.query(`CREATE ROLE ${ROLE} LOGIN IN ROLE pgapp_worker`);
  await db.query(`CREATE ROLE ${OUTSIDER} LOGIN`);
  // the job's worker function names the kind of job; external workers run
  // it in their own way, pgapp never calls it on a queue of concurrency 0
  await db.query(`CREATE OR REPLACE FUNCTION ${WORKER_FN}(args jsonb, job pgapp.job_info) RETURNS jsonb
                  LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'run by an external worker'; END $$`);
  for (const q of [QUEUE, RESCUE_QUEUE, CLI_QUEUE]) {
    await db.query('SELECT pgapp.drop_queue(name, force => true) FROM pgapp.queue WHERE name = $1', [q]);
    await db.query('SELECT pgapp.create_queue($1, 0)', [q]);
  }
  db.on('notification', (n) => raw.push(n));
  await db.query(`LISTEN "pgapp_jobs:${QUEUE}"`);

  const outsider = new JobsWorker({ queue: QUEUE, handler, config: { user: OUTSIDER } });
  await assert.rejects(outsider.start(), (err) => {
    assert.equal(err.code, '42501');
    assert.match(err.message, /may not fetch jobs: GRANT pgapp_worker TO "clients_jobs_outsider"/);
    return true;
  });

  // lease 2 s: a heartbeat every 666 ms; no polling, only notifications wake it
  main1 = await startWorker({ queue: QUEUE, concurrency: 3, lease: 2, pollInterval: 3600 * 1000 });
  await main1.inbox.idle.take(); // its first fetch found nothing
});

test('jobs enqueued to an external queue are picked up at its NOTIFY and completed', async () => {
  const t0 = Date.now();
  // three at once: claimed by one fetch, run and completed together
  const { rows: [{ ids }] } = await db.query(
    'SELECT pgapp.enqueue_many($1, $2::regproc, $3::jsonb) AS ids',
    [QUEUE, WORKER_FN, JSON.stringify(['a.png', 'b.png', 'c.png'].map((file) => ({ kind: 'echo', file })))]);
  const n = await raw.take();
  assert.deepEqual(JSON.parse(n.payload), { event: 'available', queue: QUEUE });
  for (const [i, id] of ids.entries()) {
    const file = ['a.png', 'b.png', 'c.png'][i];
    const { job, more: result } = await main1.inbox.completed.take(forJob(id));
    assert.equal(job.worker, 'clients_thumbnail');
    assert.deepEqual(job.args, { kind: 'echo', file });
    assert.deepEqual(result, { echo: { kind: 'echo', file }, attempt: 1 });
    const row = await jobRow(id);
    assert.equal(row.state, 'completed');
    assert.equal(row.attempt, 1);
    assert.deepEqual(row.result, result);
    assert.match(row.attempted_by, new RegExp(`^external ${ROLE} \\(\\d+\\)$`));
    assert.deepEqual(row.errors, []);
  }
  assert.ok(Date.now() - t0 < 5000, 'picked up within seconds (the worker polls only every hour)');
});

test('a failing handler records its error and makes the job retryable', async () => {
  const id = await enqueue(QUEUE, { kind: 'fail', file: 'b.png' }, { maxAttempts: 3 });
  const { more: err } = await main1.inbox.failed.take(forJob(id));
  assert.equal(err.message, 'no thumbnail for b.png');
  const row = await jobRow(id);
  assert.equal(row.state, 'retryable');
  assert.equal(row.attempt, 1);
  assert.equal(row.backed_off, true, 'retried after the backoff (15 s + 2^attempt s)');
  assert.equal(row.errors.length, 1);
  assert.equal(row.errors[0].message, 'no thumbnail for b.png');
  assert.equal(row.errors[0].attempt, 1);
});

test('a handler\'s progress is kept on the job and shown by queue_stats while it runs', async () => {
  const id = await enqueue(QUEUE, { kind: 'progress' });
  await main1.inbox.job.take(forJob(id));
  assert.equal(await progressed(id).promise, true, 'report_progress returned true');
  const row = (await db.query(`SELECT j.progress::float8 AS progress, s.progress AS stats
                                 FROM pgapp.job AS j JOIN pgapp.queue_stats AS s ON s.queue = j.queue
                                WHERE j.id = $1`, [id])).rows[0];
  assert.equal(row.progress, 40);
  assert.deepEqual(row.stats, [{ job: Number(id), percent: 40 }]);
  released.get(`${id}:1`)();
  const { more: result } = await main1.inbox.completed.take(forJob(id));
  assert.deepEqual(result, { reported: true });
});

test('heartbeats keep a job that runs 2.5 times its lease', async () => {
  const id = await enqueue(QUEUE, { kind: 'sleep', ms: 5000 });
  await main1.inbox.job.take(forJob(id));
  // past the first lease, it is still held
  await sleep(3000);
  const { rows } = await db.query(
    `SELECT state::text, expires_at > now() AS lease_ahead, lease::text FROM pgapp.job WHERE id = $1`, [id]);
  assert.deepEqual(rows[0], { state: 'executing', lease_ahead: true, lease: '00:00:02' });
  const { more: result } = await main1.inbox.completed.take(forJob(id));
  assert.deepEqual(result, { slept: 5000 });
  const row = await jobRow(id);
  assert.equal(row.state, 'completed');
  assert.equal(row.attempt, 1, 'never rescued: one attempt');
  assert.deepEqual(row.errors, []);
  assert.deepEqual(main1.inbox.lost.items, []);
});

test('a lease that runs out: the job is rescued and done by another worker; the first one\'s completion, while the second holds it, is refused', async () => {
  // a worker that froze: it claimed the job, it never renews its lease
  const frozen = await startWorker({ queue: RESCUE_QUEUE, concurrency: 1, lease: 1, heartbeatInterval: 3600 * 1000 });
  await frozen.inbox.idle.take();
  const id = await enqueue(RESCUE_QUEUE, { kind: 'hold' });
  await frozen.inbox.job.take(forJob(id));
  const { rows: [claimed] } = await db.query('SELECT attempted_by FROM pgapp.job WHERE id = $1', [id]);
  // a second worker gets it once the lease has run out (a fetch rescues
  // expired leases of its queue; pgapp's supervisor too, within a second)
  const other = await startWorker({ queue: RESCUE_QUEUE, concurrency: 1, lease: 5, pollInterval: 250 });
  const { job: second } = await other.inbox.job.take(forJob(id));
  assert.equal(second.attempt, 2);
  // the frozen worker wakes up while the second one holds the job, and
  // completes: refused (its attempt, 1, no longer fences the job), lost
  released.get(`${id}:1`)();
  const lost = await frozen.inbox.lost.take(forJob(id));
  assert.match(lost.more, /cancelled or rescued before it completed/);
  assert.deepEqual(frozen.inbox.completed.items, []);
  assert.equal((await jobRow(id)).state, 'executing', 'still the second worker\'s');
  released.get(`${id}:2`)();
  const { more: result } = await other.inbox.completed.take(forJob(id));
  assert.deepEqual(result, { held: true });
  const row = await jobRow(id);
  assert.equal(row.state, 'completed');
  assert.equal(row.attempt, 2);
  assert.equal(row.errors.length, 1);
  assert.equal(row.errors[0].sqlstate, '57P01');
  assert.match(row.errors[0].message, /stopped renewing its lease/);
  assert.equal(row.errors[0].worker, claimed.attempted_by, 'the error names the worker that lost it');
  assert.deepEqual(row.result, { held: true });
  await Promise.all([frozen.stop(), other.stop()]);
});

test('a cancelled job disappears from heartbeat\'s result: its signal aborts, nothing is recorded', async () => {
  const id = await enqueue(QUEUE, { kind: 'until_aborted' });
  await main1.inbox.job.take(forJob(id));
  const { rows } = await db.query('SELECT pgapp.cancel_job($1) AS cancelled', [id]);
  assert.equal(rows[0].cancelled, true);
  const lost = await main1.inbox.lost.take(forJob(id));
  assert.match(lost.more, /no longer held/);
  // what heartbeat says, asked directly as the worker role
  const probe = new pg.Client({ user: ROLE });
  await probe.connect();
  try {
    const { rows: [hb] } = await probe.query('SELECT pgapp.heartbeat(ARRAY[$1::bigint]) AS held', [id]);
    assert.deepEqual(hb.held, []);
  } finally {
    await probe.end();
  }
  // the handler ended with the reason, and no fail_job followed
  await until('the job to leave the worker', () => !main1.jobs.has(id));
  assert.ok(aborted.get(id) instanceof JobLostError, 'the signal aborted with a JobLostError');
  assert.equal(aborted.get(id).job.id, id);
  const row = await jobRow(id);
  assert.equal(row.state, 'cancelled');
  assert.deepEqual(row.errors, []);
  assert.deepEqual(main1.inbox.failed.items.filter(forJob(id)), []);
});

test('SIGTERM stops the command gracefully: the running job completes, nothing more is fetched', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgapp-jobs-'));
  const module = path.join(dir, 'handler.js');
  fs.writeFileSync(module, `module.exports = async (job) => {
    await new Promise((resolve) => setTimeout(resolve, job.args.ms));
    return { slept: job.args.ms };
  };\n`);
  const child = spawn(process.execPath, ['--throw-deprecation', LIB, CLI_QUEUE, '--handler', module, '--concurrency', '1', '--lease', '5'],
    { env: { ...process.env, PGUSER: ROLE }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    await until('the command to start', () => /working queue "clients_jobs_cli"/.test(stderr));
    const first = await enqueue(CLI_QUEUE, { ms: 1500 });
    await until('the job to run', async () => (await jobRow(first)).state === 'executing');
    child.kill('SIGTERM');
    const second = await enqueue(CLI_QUEUE, { ms: 1 });
    const { code, signal } = await Promise.race([exited, sleep(WAIT_MS).then(() => ({ timeout: true }))]);
    assert.equal(signal, null);
    assert.equal(code, 0, `exit status 0; stderr: ${stderr}`);
    assert.match(stderr, /SIGTERM: finishing the running jobs \(1\), then stopping/);
    const a = await jobRow(first);
    assert.equal(a.state, 'completed');
    assert.deepEqual(a.result, { slept: 1500 });
    const b = await jobRow(second);
    assert.equal(b.state, 'available', 'the job enqueued after SIGTERM was left for others');
    assert.equal(b.attempt, 0);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const warnings = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));

test('no worker emitted an error, and Node no warning (such as pg\'s about overlapping queries)', async () => {
  for (const w of workers) assert.deepEqual(w.inbox.error.items.map((e) => e.err.message), [], `errors of the worker on ${w.queue}`);
  assert.deepEqual(warnings, []);
});

async function main() {
  console.log(`1..${tests.length}`);
  let failed = 0;
  for (const [i, t] of tests.entries()) {
    try {
      await t.fn();
      console.log(`ok ${i + 1} - ${t.name}`);
    } catch (err) {
      failed++;
      console.log(`not ok ${i + 1} - ${t.name}`);
      console.log(`# ${String(err.stack || err).split('\n').slice(0, 12).join('\n# ')}`);
      if (i === 0) {
        console.log('Bail out! cannot set up the queues and start a worker');
        break;
      }
    }
  }
  for (const release of released.values()) release();
  await Promise.allSettled(workers.map((w) => w.stop({ timeout: 1000 })));
  const errors = workers.flatMap((w) => w.inbox.error.items);
  if (errors.length > 0) console.log(`# worker errors: ${errors.map((e) => e.err.message).join('; ')}`);
  if (db) {
    for (const q of [QUEUE, RESCUE_QUEUE, CLI_QUEUE]) {
      await db.query('SELECT pgapp.drop_queue(name, force => true) FROM pgapp.queue WHERE name = $1', [q]).catch(() => {});
    }
    await db.query(`DROP ROLE IF EXISTS ${ROLE}, ${OUTSIDER}`).catch(() => {});
    await db.end().catch(() => {});
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.log(`not ok - ${err.message}`);
  process.exitCode = 1;
});
