// bench/jobs/pgapp.mjs: pgapp's latency on an idle queue (database "pgapp", schema.sql),
// and the wait for a throughput run's end.
//   node pgapp.mjs latency N PAUSE_MS
//   node pgapp.mjs wait TIMEOUT_S
// One warm-up job (it leaves the queue "lat" one live idle worker), then N jobs
// enqueued one at a time, each after the previous one completed and PAUSE_MS
// more.  Commit -> handler start: the enqueuing transaction's commit timestamp
// (pg_xact_commit_timestamp of its xid, the inserted row's xmin) to the
// clock_timestamp() bench_mark records first thing; both the server's clock.
// Also where the time goes: enqueue commit -> the claim's statement start
// (attempted_at) -> the claim's commit -> handler start.
import { client, percentile, sleep } from './common.mjs';

async function latency(n, pauseMs) {
  const c = await client('pgapp');
  await c.query('TRUNCATE lat_start');
  const enqueue = async (i) => (await c.query(
    "SELECT pgapp.enqueue('lat', 'bench_mark', jsonb_build_object('i', $1::int))::text AS id," +
    ' pg_current_xact_id()::text AS x', [i])).rows[0];
  const done = async (id) => {
    for (let k = 0; k < 5000; k++) {
      const r = await c.query('SELECT state::text FROM pgapp.job WHERE id = $1', [id]);
      if (r.rows[0].state === 'completed') return;
      if (r.rows[0].state !== 'available' && r.rows[0].state !== 'executing') throw new Error(`job ${id} ${r.rows[0].state}`);
      await sleep(1);
    }
    throw new Error(`job ${id} not completed within 5 s`);
  };
  const warm = await enqueue(-1);
  await done(warm.id);
  await sleep(200);
  const jobs = [];
  for (let i = 0; i < n; i++) {
    const job = await enqueue(i);
    jobs.push(job);
    await sleep(pauseMs);
    await done(job.id);
  }
  const r = await c.query(
    `SELECT (extract(epoch FROM s.started - e.commit) * 1000)::float8 AS total,
            (extract(epoch FROM s.claimed_at - e.commit) * 1000)::float8 AS to_claim,
            (extract(epoch FROM s.claim_commit - s.claimed_at) * 1000)::float8 AS claim,
            (extract(epoch FROM s.started - s.claim_commit) * 1000)::float8 AS to_handler
       FROM unnest($1::bigint[], $2::text[]) AS q(id, x)
       CROSS JOIN LATERAL (SELECT pg_xact_commit_timestamp(q.x::xid) AS commit) AS e
       JOIN lat_start AS s ON s.job_id = q.id`, [jobs.map((j) => j.id), jobs.map((j) => j.x)]);
  if (r.rows.length !== n) throw new Error(`${r.rows.length} of ${n} jobs recorded their start`);
  const col = (k) => r.rows.map((row) => row[k]).sort((a, b) => a - b);
  const f = (v) => v.toFixed(2);
  const total = col('total');
  const parts = ['to_claim', 'claim', 'to_handler'].map((k) => {
    const s = col(k);
    return `${k}_p50=${f(percentile(s, 50))} ${k}_p99=${f(percentile(s, 99))}`;
  });
  console.log(`RESULT pgapp n=${n} p50=${f(percentile(total, 50))} p99=${f(percentile(total, 99))} ` +
              `min=${f(total[0])} max=${f(total[total.length - 1])} ${parts.join(' ')}`);
  await c.end();
}

// Wait until the throughput run's queue "bench" has no job left to run, or
// TIMEOUT_S passed.  Polled from here, in autocommit statements, rather than
// from a DO block in run.sh's psql session: a DO block is one statement whose
// snapshot would hold back the xmin horizon for the whole run, so that no
// dead index entry of a claimed job could be cleaned up while the workers
// claim (the peers' drivers do not hold one either).  The poll itself must
// cost the measured server next to nothing: while jobs are due or a worker
// is busy it reads the claim index and the workers' shared memory only;
// "no job executing" (a scan of the whole table: no index has executing
// jobs) is checked once that says done.  The time measured is the last
// completion's commit, so the poll's interval does not count.
async function wait(timeoutS) {
  const c = await client(process.env.PGAPP_BENCH_DB || 'pgapp');
  const until = Date.now() + timeoutS * 1000;
  for (;;) {
    const r = await c.query(
      "SELECT NOT EXISTS (SELECT FROM pgapp.job WHERE queue = 'bench' AND claimable)" +
      " AND NOT EXISTS (SELECT FROM pgapp.workers WHERE queue = 'bench' AND state <> 'idle') AS quiet");
    if (r.rows[0].quiet) {
      const d = await c.query(
        "SELECT NOT EXISTS (SELECT FROM pgapp.job WHERE queue = 'bench' AND claimable)" +
        " AND NOT EXISTS (SELECT FROM pgapp.job WHERE queue = 'bench' AND state = 'executing') AS done");
      if (d.rows[0].done) break;
    }
    if (Date.now() > until) break;
    await sleep(20);
  }
  await c.end();
}

const [mode, a, b] = process.argv.slice(2);
const main = {
  latency: () => latency(Number(a || 500), Number(b || 20)),
  wait: () => wait(Number(a || 60)),
}[mode];
if (!main) { console.error('usage: node pgapp.mjs latency N PAUSE_MS | wait TIMEOUT_S'); process.exit(2); }
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
