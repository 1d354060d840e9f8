// bench/jobs/common.mjs: what the peer drivers share: connection strings from
// PGHOST/PGPORT/PGUSER, the clock, percentiles, and the latency report.
import pg from 'pg';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function connectionString(database) {
  const host = encodeURIComponent(process.env.PGHOST || '/var/run/postgresql');
  const user = encodeURIComponent(process.env.PGUSER || 'postgres');
  return `postgresql://${user}@/${database}?host=${host}&port=${process.env.PGPORT || 5432}`;
}

export async function client(database) {
  const c = new pg.Client({ connectionString: connectionString(database) });
  await c.connect();
  return c;
}

// The wall clock in ms since the epoch, sub-millisecond: what a handler
// records when it starts.
export const wallMs = () => performance.timeOrigin + performance.now();

// How far this process's wallMs() is from the server's clock_timestamp():
// the sample with the shortest round trip of 50, server minus here (ms).
export async function clockOffset(c) {
  let best = null;
  for (let i = 0; i < 50; i++) {
    const a = wallMs();
    const r = await c.query('SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS ms');
    const b = wallMs();
    const rtt = b - a;
    const off = Number(r.rows[0].ms) - (a + b) / 2;
    if (best === null || rtt < best.rtt) best = { rtt, off };
  }
  return best;
}

export function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// Commit -> handler start for each job: starts (Map id -> wallMs at the
// handler's start), xids (Map id -> the enqueuing transaction's xid, the
// inserted row's xmin); commit times from pg_xact_commit_timestamp.
export async function latencyReport(c, label, starts, xids, offset) {
  const ids = [...xids.keys()];
  const r = await c.query(
    `SELECT x, (extract(epoch FROM pg_xact_commit_timestamp(x::xid)) * 1000)::text AS ms
       FROM unnest($1::text[]) AS x`, [ids.map((id) => xids.get(id))]);
  const commitMs = new Map(r.rows.map((row) => [row.x, Number(row.ms)]));
  const lat = ids.map((id) => starts.get(id) + offset.off - commitMs.get(xids.get(id))).sort((a, b) => a - b);
  const f = (v) => v.toFixed(2);
  console.log(`RESULT ${label} n=${lat.length} p50=${f(percentile(lat, 50))} p99=${f(percentile(lat, 99))} ` +
              `min=${f(lat[0])} max=${f(lat[lat.length - 1])} ` +
              `clock_offset=${offset.off.toFixed(3)} clock_rtt=${offset.rtt.toFixed(3)}`);
}
