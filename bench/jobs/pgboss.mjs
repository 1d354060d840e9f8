// bench/jobs/pgboss.mjs: pg-boss, the peer (database "pgboss").
//   node pgboss.mjs setup              create its schema and the queues "bench" and "lat" (notify)
//   node pgboss.mjs throughput N       N no-op jobs bulk-enqueued with insert() (one call), then
//                                      VACUUM ANALYZE + CHECKPOINT, then one worker with batchSize 10
//                                      and burstWhenBatchFull (fetch again at once while batches
//                                      come back full), timed from work() until none is unfinished
//   node pgboss.mjs latency N PAUSE_MS N jobs sent one at a time to an idle queue with NOTIFY
//                                      (useListenNotify + queue notify): commit -> handler start
// Prints one "RESULT ..." line.
import { PgBoss } from 'pg-boss';
import { client, clockOffset, connectionString, latencyReport, sleep, wallMs } from './common.mjs';

const DB = 'pgboss';
const RUN_TIMEOUT = Number(process.env.RUN_TIMEOUT || 60);   // s: a throughput run stops there

async function boss(extra = {}) {
  const b = new PgBoss({ connectionString: connectionString(DB), ...extra });
  b.on('error', (e) => console.error('pg-boss error:', e));
  await b.start();
  return b;
}

async function setup() {
  const b = await boss();
  if (!(await b.getQueue('bench'))) await b.createQueue('bench');
  if (!(await b.getQueue('lat'))) await b.createQueue('lat', { notify: true });
  await b.stop({ graceful: false });
}

async function throughput(n) {
  const c = await client(DB);
  const b = await boss();
  await b.deleteAllJobs('bench');
  await b.insert('bench', Array.from({ length: n }, (_, i) => ({ data: { i } })));
  const unfinished = async () => Number((await c.query(
    "SELECT count(*) AS n FROM pgboss.job WHERE name = 'bench' AND state < 'completed'")).rows[0].n);
  const queued = await unfinished();
  if (queued !== n) throw new Error(`expected ${n} queued jobs, found ${queued}`);
  await c.query('VACUUM ANALYZE');
  await c.query('CHECKPOINT');
  let handled = 0;
  let allHandled;
  const all = new Promise((resolve) => { allHandled = resolve; });
  const t0 = wallMs();
  await b.work('bench', { batchSize: 10, burstWhenBatchFull: true }, async (jobs) => {
    handled += jobs.length;
    if (handled >= n) allHandled();
  });
  const capped = !(await Promise.race([all.then(() => true), sleep(RUN_TIMEOUT * 1000 - (wallMs() - t0)).then(() => false)]));
  // every handler has returned; done when the last completion is in the table
  let remaining = await unfinished();
  while (!capped && remaining > 0) { await sleep(2); remaining = await unfinished(); }
  const t1 = wallMs();
  await b.stop({ graceful: true, timeout: 5000 });
  const s = (t1 - t0) / 1000;
  console.log(`RESULT pg-boss n=${n} seconds=${s.toFixed(3)} jobs_per_s=${Math.round((n - remaining) / s)} ` +
              `completed=${n - remaining} capped=${capped ? 1 : 0} handled=${handled}`);
  await b.deleteAllJobs('bench').catch(() => {});
  await c.end();
}

async function latency(n, pauseMs) {
  const c = await client(DB);
  const w = await client(DB);
  const b = await boss({ useListenNotify: true });
  await b.deleteAllJobs('lat');
  const starts = new Map();
  const waiting = new Map();
  await b.work('lat', async (jobs) => {
    const t = wallMs();
    for (const job of jobs) {
      starts.set(job.id, t);
      const f = waiting.get(job.id);
      if (f) f();
    }
  });
  // send() in a transaction of our own, to read its xid (the row's xmin until a worker takes it)
  const db = { executeSql: (text, values) => w.query(text, values) };
  const send = async (i) => {
    await w.query('BEGIN');
    const id = await b.send('lat', { i }, { db });
    const x = (await w.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x;
    await w.query('COMMIT');
    return { id, x };
  };
  const started = (id) => (starts.has(id) ? Promise.resolve()
    : new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`job ${id} did not start within 60 s`)), 60000);
      waiting.set(id, () => { clearTimeout(timer); resolve(); });
    }));
  const warm = await send(-1);
  await started(warm.id);
  starts.delete(warm.id);
  await sleep(200);
  const offset = await clockOffset(c);
  const xids = new Map();
  for (let i = 0; i < n; i++) {
    const job = await send(i);
    xids.set(job.id, job.x);
    await started(job.id);
    waiting.delete(job.id);
    await sleep(pauseMs);
  }
  await sleep(100);
  await b.stop({ graceful: true, timeout: 5000 });
  await latencyReport(c, 'pg-boss', starts, xids, offset);
  await c.end();
  await w.end();
}

const [mode, a, b2] = process.argv.slice(2);
const main = {
  setup,
  throughput: () => throughput(Number(a)),
  latency: () => latency(Number(a || 500), Number(b2 || 20)),
}[mode];
if (!main) { console.error('usage: node pgboss.mjs setup | throughput N | latency N PAUSE_MS'); process.exit(2); }
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
