// bench/jobs/graphile.mjs: graphile-worker, the peer (database "graphile").
//   node graphile.mjs setup                      install its schema (runMigrations)
//   node graphile.mjs throughput default|tuned N  run the N no-op jobs already queued (bulk-enqueued
//                                                by run.sh with graphile_worker.add_jobs), 10 at a time
//   node graphile.mjs latency N PAUSE_MS          N jobs added one at a time to an idle queue (tuned):
//                                                commit -> handler start
// "tuned" is its performance page's configuration (worker.graphile.org/docs/performance):
// preset.worker = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }.
// Prints one "RESULT ..." line.
import { Logger, run, runMigrations } from 'graphile-worker';
import { client, clockOffset, connectionString, latencyReport, sleep, wallMs } from './common.mjs';

const DB = 'graphile';
const CONCURRENCY = 10;
const RUN_TIMEOUT = Number(process.env.RUN_TIMEOUT || 60);   // s: a throughput run stops there
const TUNED = { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 };

// warnings and errors only
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker ${level}: ${message}`);
});

function options(config, taskList) {
  const o = { connectionString: connectionString(DB), concurrency: CONCURRENCY, noHandleSignals: true, logger, taskList };
  if (config === 'tuned') o.preset = { worker: TUNED };
  else if (config !== 'default') throw new Error(`unknown configuration ${config}`);
  return o;
}

async function throughput(config, n) {
  const c = await client(DB);
  const queued = Number((await c.query('SELECT count(*) AS n FROM graphile_worker._private_jobs')).rows[0].n);
  if (queued !== n) throw new Error(`expected ${n} queued jobs, found ${queued}`);
  let handled = 0;
  let allHandled;
  const all = new Promise((resolve) => { allHandled = resolve; });
  const t0 = wallMs();
  const runner = await run(options(config, { noop: async () => { if (++handled === n) allHandled(); } }));
  const left = async () => Number((await c.query('SELECT count(*) AS n FROM graphile_worker._private_jobs')).rows[0].n);
  const capped = !(await Promise.race([all.then(() => true), sleep(RUN_TIMEOUT * 1000 - (wallMs() - t0)).then(() => false)]));
  // every handler has returned; done when the last completion is in the table
  // (completed jobs are deleted)
  let remaining = await left();
  while (!capped && remaining > 0) { await sleep(2); remaining = await left(); }
  const t1 = wallMs();
  await runner.stop();
  const s = (t1 - t0) / 1000;
  console.log(`RESULT graphile-${config} n=${n} seconds=${s.toFixed(3)} jobs_per_s=${Math.round((n - remaining) / s)} ` +
              `completed=${n - remaining} capped=${capped ? 1 : 0} handled=${handled}`);
  await c.end();
}

async function latency(n, pauseMs) {
  const c = await client(DB);
  const starts = new Map();
  const waiting = new Map();
  const runner = await run(options('tuned', {
    mark: async (payload, helpers) => {
      const t = wallMs();
      const id = String(helpers.job.id);
      starts.set(id, t);
      const w = waiting.get(id);
      if (w) w();
    },
  }));
  const xids = new Map();
  const add = async (i) => {
    const r = await c.query("SELECT (graphile_worker.add_job('mark', json_build_object('i', $1::int))).id::text AS id," +
                            ' pg_current_xact_id()::text AS x', [i]);
    return r.rows[0];
  };
  const started = (id) => (starts.has(id) ? Promise.resolve()
    : new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`job ${id} did not start within 5 s`)), 5000);
      waiting.set(id, () => { clearTimeout(timer); resolve(); });
    }));
  // warm up: one job, not counted
  const warm = await add(-1);
  await started(warm.id);
  starts.delete(warm.id);
  await sleep(200);
  const offset = await clockOffset(c);
  for (let i = 0; i < n; i++) {
    const job = await add(i);
    xids.set(job.id, job.x);
    await started(job.id);
    waiting.delete(job.id);
    await sleep(pauseMs);
  }
  await sleep(100);
  await runner.stop();
  await latencyReport(c, 'graphile-tuned', starts, xids, offset);
  await c.end();
}

const [mode, a, b] = process.argv.slice(2);
const main = {
  setup: async () => { await runMigrations({ connectionString: connectionString(DB), logger }); },
  throughput: () => throughput(a, Number(b)),
  latency: () => latency(Number(a || 500), Number(b || 20)),
}[mode];
if (!main) { console.error('usage: node graphile.mjs setup | throughput default|tuned N | latency N PAUSE_MS'); process.exit(2); }
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
