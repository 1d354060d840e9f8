#!/usr/bin/env node
// examples/clients/node/jobs_worker.js: an external worker for a pgapp job
// queue, in Node.
//
//   const { JobsWorker } = require('./jobs_worker');
//   const worker = new JobsWorker({
//     queue: 'thumbnails',                        // a queue of concurrency 0
//     handler: async (job, { signal }) => ({ ok: true }),  // its result, or throw
//   });
//   worker.on('error', (err) => console.error(err));
//   await worker.start();
//   ...
//   await worker.stop();                          // finishes what runs, then ends
//
//   node jobs_worker.js queue [--handler module.js] [--concurrency n] [--lease s]
//
// A queue of concurrency 0 is served by external workers only: pgapp
// NOTIFYs "pgapp_jobs:<queue>" when work arrives there (an enqueue, a
// retry, a scheduled job falling due).  The worker LISTENs on that channel
// and, when woken (or every pollInterval, in case a notification was
// missed), claims jobs with pgapp.fetch_jobs(queue, n, lease).  Each job is
// its own: it must be finished with pgapp.complete_job(id, result, attempt)
// or pgapp.fail_job(id, error, attempt) before its lease runs out, or have
// the lease renewed with pgapp.heartbeat(ids, attempts), which this worker
// does for all the jobs it runs every lease/3.  The job's attempt, as
// fetch_jobs returned it, fences the calls: once a job was rescued and
// fetched again, this worker's late calls change nothing.  heartbeat
// returns the ids still held: a job missing from it was cancelled
// (pgapp.cancel_job) or rescued after its lease ran out (and given to
// another worker), so its handler's signal is aborted and its outcome is
// not reported.
//
// The role the worker logs in as needs membership in pgapp_worker (GRANT
// pgapp_worker TO thumbnailer).  One connection does everything: LISTEN,
// fetch, heartbeat, complete, fail (all short statements).  A lost
// connection stops the worker ('error', then 'stopped'); the jobs it held
// are rescued when their leases run out.
'use strict';

const { EventEmitter } = require('events');
const path = require('path');
const pg = require('pg');

// The reason a job's signal is aborted with.
class JobLostError extends Error {
  constructor(job, why) {
    super(`job ${job.id} ${why}`);
    this.name = 'JobLostError';
    this.job = job;
  }
}

// Events:
//   'job'       (job)                  a job was claimed and its handler started
//   'completed' (job, result)          complete_job recorded it
//   'failed'    (job, err)             fail_job recorded the error (retryable or discarded)
//   'lost'      (job, why)             no longer ours (cancelled, or rescued after the lease ran
//                                      out): the handler's signal is aborted, nothing recorded
//   'error'     (err)                  a query failed; err.job is set when it was about one job
//   'idle'      ()                     nothing more to fetch for now: waiting for a notification
//   'stopped'   ()
class JobsWorker extends EventEmitter {
  constructor({
    queue,
    handler,
    config = {},              // a pg.Client config, or a connection string ({}: the PG* variables)
    concurrency = 10,         // jobs run at once (and claimed at most per fetch)
    lease = 30,               // seconds a claimed job is held without a heartbeat
    heartbeatInterval = null, // ms between heartbeats (default lease / 3)
    pollInterval = 10000,     // ms between fetches when no notification comes
    stopTimeout = 30000,      // ms stop() waits for running jobs before giving them up
  } = {}) {
    super();
    if (typeof queue !== 'string' || queue === '') throw new TypeError('queue must be a queue name');
    if (typeof handler !== 'function') throw new TypeError('handler must be a function (job, { signal, progress }) => result');
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new TypeError('concurrency must be a positive integer');
    if (!(lease >= 1)) throw new TypeError('lease must be at least 1 second');
    this.queue = queue;
    this.handler = handler;
    this.config = typeof config === 'string' ? { connectionString: config } : config;
    this.concurrency = concurrency;
    this.lease = lease;
    this.heartbeatInterval = heartbeatInterval ?? Math.max(100, Math.floor((lease * 1000) / 3));
    this.pollInterval = pollInterval;
    this.stopTimeout = stopTimeout;
    this.channel = `pgapp_jobs:${queue}`;
    this.client = null;
    this.running = false;
    this.jobs = new Map(); // id -> { job, controller, state: 'running' | 'finishing' | 'lost' | 'abandoned', done }
    this.wanted = false;   // a notification (or a freed slot) since the last fetch
    this.wake = null;      // resolves the loop's wait
    this.heartbeatTimer = null;
    this.heartbeating = false;
    this.loopDone = null;
    this.tail = Promise.resolve(); // the last query sent: one at a time on the connection
    this.stopping = null;
    this.fatalError = null; // the error that stopped the worker (a lost connection)
    this.stopped = new Promise((resolve) => { this.resolveStopped = resolve; });
  }

  // Connect, LISTEN, and start fetching.  Resolves once listening.
  async start() {
    if (this.client) throw new Error('already started');
    this.client = new pg.Client(this.config);
    this.client.on('notification', (n) => {
      if (n.channel === this.channel) this.poke();
    });
    try {
      await this.client.connect();
    } catch (err) {
      this.client = null;
      throw err;
    }
    this.client.on('error', (err) => this.fatal(err));
    const { rows } = await this.sql(
      "SELECT current_user AS role, has_function_privilege('pgapp.fetch_jobs(text, integer, interval)', 'EXECUTE') AS may");
    if (!rows[0].may) {
      const err = new Error(`role "${rows[0].role}" may not fetch jobs: GRANT pgapp_worker TO "${rows[0].role}"`);
      err.code = '42501';
      await this.client.end().catch(() => {});
      this.client = null;
      throw err;
    }
    // LISTEN before the first fetch: work enqueued in between is not missed
    await this.sql(`LISTEN ${this.client.escapeIdentifier(this.channel)}`);
    this.running = true;
    this.wanted = true;
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatInterval);
    this.loopDone = this.loop();
    return this;
  }

  // A statement on the worker's connection, after the ones sent before it
  // (pg wants one query at a time per client).
  sql(text, params) {
    const client = this.client;
    if (!client) return Promise.reject(new Error('the worker is not connected'));
    const result = this.tail.then(() => client.query(text, params));
    this.tail = result.catch(() => {});
    return result;
  }

  // Claimed jobs not finished yet (running, or lost but their handler still going).
  get inFlight() {
    return this.jobs.size;
  }

  poke() {
    this.wanted = true;
    if (this.wake) this.wake();
  }

  async loop() {
    while (this.running) {
      const room = this.concurrency - this.jobs.size;
      if (room > 0 && this.wanted) {
        this.wanted = false;
        let jobs;
        try {
          jobs = await this.fetch(room);
        } catch (err) {
          if (!this.running) break;
          this.emit('error', err);
          jobs = [];
        }
        for (const job of jobs) this.run(job);
        // a full batch: there may be more, ask again at once
        if (jobs.length === room) this.wanted = true;
        continue;
      }
      if (room > 0) this.emit('idle');
      await new Promise((resolve) => {
        const timer = setTimeout(() => { this.wanted = true; resolve(); }, this.pollInterval);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = null;
    }
  }

  async fetch(n) {
    const { rows } = await this.sql(
      'SELECT * FROM pgapp.fetch_jobs($1, $2, make_interval(secs => $3))', [this.queue, n, this.lease]);
    return rows;
  }

  run(job) {
    const entry = { job, controller: new AbortController(), state: 'running' };
    this.jobs.set(job.id, entry);
    this.emit('job', job);
    entry.done = (async () => {
      let result;
      let error = null;
      try {
        result = await this.handler(job, {
          signal: entry.controller.signal,
          worker: this,
          progress: (percent, message) => this.progress(entry, percent, message),
        });
      } catch (err) {
        error = err instanceof Error ? err : new Error(String(err));
      }
      try {
        if (entry.state === 'running') {
          entry.state = 'finishing';
          if (error === null) await this.complete(entry, result);
          else await this.fail(entry, error);
        }
      } finally {
        this.jobs.delete(job.id);
        this.poke(); // a free slot
      }
    })();
  }

  async complete(entry, result) {
    const { job } = entry;
    try {
      const { rows } = await this.sql('SELECT pgapp.complete_job($1, $2::jsonb, $3) AS ok',
        [job.id, result === undefined ? null : JSON.stringify(result), job.attempt]);
      if (rows[0].ok) this.emit('completed', job, result);
      else this.emit('lost', job, 'was cancelled or rescued before it completed');
    } catch (err) {
      err.job = job;
      this.emit('error', err);
    }
  }

  // The handler's progress (percent 0..100, an optional message): kept on
  // the job, shown by pgapp.queue_stats, broadcast on "jobs:<id>".  Resolves
  // to false when the job is no longer this worker's.
  async progress(entry, percent, message = null) {
    const { job } = entry;
    const { rows } = await this.sql('SELECT pgapp.report_progress($1, $2, $3, $4) AS ok',
      [job.id, percent, message, job.attempt]);
    return rows[0].ok;
  }

  async fail(entry, error) {
    const { job } = entry;
    try {
      const { rows } = await this.sql('SELECT pgapp.fail_job($1, $2, $3) AS ok',
        [job.id, error.message || String(error), job.attempt]);
      if (rows[0].ok) this.emit('failed', job, error);
      else this.emit('lost', job, 'was cancelled or rescued before it failed');
    } catch (err) {
      err.job = job;
      this.emit('error', err);
    }
  }

  // Renew the leases of the running jobs; the ones not renewed are lost.
  async heartbeat() {
    if (this.heartbeating || !this.client) return;
    const running = [...this.jobs.values()].filter((e) => e.state === 'running');
    const ids = running.map((e) => e.job.id);
    if (ids.length === 0) return;
    this.heartbeating = true;
    try {
      const { rows } = await this.sql('SELECT pgapp.heartbeat($1::bigint[], $2::int[]) AS held',
        [ids, running.map((e) => e.job.attempt)]);
      const held = new Set(rows[0].held.map(String));
      for (const id of ids) {
        const entry = this.jobs.get(id);
        if (entry && entry.state === 'running' && !held.has(String(id))) this.lose(entry, 'is no longer held (cancelled, or rescued after its lease ran out)');
      }
    } catch (err) {
      if (this.client) this.emit('error', err);
    } finally {
      this.heartbeating = false;
    }
  }

  lose(entry, why) {
    entry.state = 'lost';
    entry.controller.abort(new JobLostError(entry.job, why));
    this.emit('lost', entry.job, why);
  }

  // Stop fetching, let the running jobs finish (at most stopTimeout ms),
  // give up the others (fail_job: retried later, by any worker), close.
  stop({ timeout = this.stopTimeout } = {}) {
    if (!this.stopping) this.stopping = this.doStop(timeout);
    return this.stopping;
  }

  async doStop(timeout) {
    this.running = false;
    if (this.wake) this.wake();
    if (this.loopDone) await this.loopDone;
    const pending = [...this.jobs.values()].map((e) => e.done);
    if (pending.length > 0) {
      let timer;
      await Promise.race([
        Promise.allSettled(pending),
        new Promise((resolve) => { timer = setTimeout(resolve, timeout); }),
      ]);
      clearTimeout(timer);
    }
    const unfinished = [...this.jobs.values()].filter((e) => e.state === 'running');
    for (const entry of unfinished) {
      entry.state = 'abandoned';
      entry.controller.abort(new JobLostError(entry.job, 'was given up: the worker stopped'));
      await this.fail(entry, new Error('the worker stopped before the job finished'));
    }
    // completions under way are not cut off
    await Promise.race([
      Promise.allSettled([...this.jobs.values()].filter((e) => e.state === 'finishing').map((e) => e.done)),
      new Promise((resolve) => setTimeout(resolve, 5000).unref()),
    ]);
    await this.close();
  }

  async close() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => {});
    this.resolveStopped();
    this.emit('stopped');
  }

  fatal(err) {
    if (!this.stopping) this.fatalError = err;
    this.emit('error', err);
    if (!this.stopping) {
      this.running = false;
      if (this.wake) this.wake();
      for (const entry of this.jobs.values()) {
        if (entry.state === 'running') {
          entry.state = 'abandoned';
          entry.controller.abort(new JobLostError(entry.job, 'was given up: the connection was lost'));
        }
      }
      this.stopping = this.close();
    }
  }
}

// SIGINT and SIGTERM stop the worker gracefully; a second one exits at once.
function stopOnSignals(worker, { log = () => {} } = {}) {
  let signalled = false;
  const onSignal = (signal) => {
    if (signalled) {
      log(`${signal} again: exiting now`);
      process.exit(130);
    }
    signalled = true;
    log(`${signal}: finishing the running jobs (${worker.inFlight}), then stopping`);
    worker.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  worker.stopped.then(() => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

const USAGE = 'usage: node jobs_worker.js queue [--handler module.js] [--concurrency n] [--lease seconds] [--poll ms]';

// Without --handler: print the job and complete it with {"handled_by": pid}.
async function printJob(job) {
  console.log(JSON.stringify({ id: job.id, worker: job.worker, args: job.args, attempt: job.attempt }));
  return { handled_by: process.pid };
}

function parseArgs(argv) {
  const opts = { queue: null, handler: null, concurrency: 10, lease: 30, poll: 10000 };
  const fail = (message) => {
    console.error(`jobs_worker.js: ${message}`);
    console.error(USAGE);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : fail(`${arg} needs a value`));
    if (arg === '--handler') opts.handler = value();
    else if (arg === '--concurrency') opts.concurrency = Number(value());
    else if (arg === '--lease') opts.lease = Number(value());
    else if (arg === '--poll') opts.poll = Number(value());
    else if (arg === '--help' || arg === '-h') fail('help');
    else if (arg.startsWith('--')) fail(`unknown option ${arg}`);
    else if (opts.queue === null) opts.queue = arg;
    else fail(`one queue only (got ${opts.queue} and ${arg})`);
  }
  if (opts.queue === null) fail('which queue?');
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // the module exports the handler: module.exports = async (job, { signal }) => result
  const handler = opts.handler ? require(path.resolve(opts.handler)) : printJob;
  const worker = new JobsWorker({
    queue: opts.queue, handler, concurrency: opts.concurrency, lease: opts.lease, pollInterval: opts.poll,
  });
  const log = (line) => console.error(`jobs_worker: ${line}`);
  worker.on('error', (err) => log(`error: ${err.job ? `job ${err.job.id}: ` : ''}${err.message}`));
  worker.on('failed', (job, err) => log(`job ${job.id} failed (attempt ${job.attempt}): ${err.message}`));
  worker.on('lost', (job, why) => log(`job ${job.id} ${why}`));
  worker.on('completed', (job) => log(`job ${job.id} completed`));
  stopOnSignals(worker, { log });
  try {
    await worker.start();
  } catch (err) {
    log(`cannot start: ${err.message}`);
    process.exit(1);
  }
  log(`working queue "${opts.queue}" (concurrency ${opts.concurrency}, lease ${opts.lease} s)`);
  await worker.stopped;
  log('stopped');
  // (a handler that ignored its signal may still hold the event loop)
  process.exit(worker.fatalError ? 1 : 0);
}

if (require.main === module) main();

module.exports = { JobsWorker, JobLostError, stopOnSignals };
