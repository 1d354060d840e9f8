// bench/pubsub/latency.js: end-to-end delivery latency, from sending COMMIT
// to the listener receiving the message, for N sequential writer
// transactions (INSERT + pgapp.broadcast) in one mode; prints p50/p99/max.
//   node latency.js direct|outbox [N]
// Writer and listener are two connections of this process: one clock.
'use strict';
const { Client } = require('../../examples/clients/node/node_modules/pg');

const mode = process.argv[2] || 'outbox';
const n = Number(process.argv[3] || 500);

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const listener = new Client();
  const writer = new Client();
  await listener.connect();
  await writer.connect();
  const waiting = new Map();
  listener.on('notification', (msg) => {
    const seq = JSON.parse(msg.payload).payload.seq;
    const w = waiting.get(seq);
    if (w) w(process.hrtime.bigint());
  });
  await listener.query('SELECT pgapp.subscribe($1)', ['latency']);
  const latencies = [];
  for (let i = 0; i < n; i++) {
    const received = new Promise((resolve) => waiting.set(i, resolve));
    await writer.query('BEGIN');
    await writer.query('INSERT INTO bench_order (customer_id, total) VALUES ($1, 19.99)', [i]);
    await writer.query("SELECT pgapp.broadcast('latency', 'created', jsonb_build_object('seq', $1::int), $2)", [i, mode]);
    const sent = process.hrtime.bigint();
    await writer.query('COMMIT');
    const at = await Promise.race([received, new Promise((r) => setTimeout(() => r(null), 5000))]);
    if (at === null) throw new Error(`message ${i} not received within 5 s`);
    latencies.push(Number(at - sent) / 1e6);
    waiting.delete(i);
  }
  latencies.sort((a, b) => a - b);
  console.log(`${mode}: ${n} messages, commit -> listener p50 ${percentile(latencies, 50).toFixed(2)} ms, ` +
              `p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${latencies[latencies.length - 1].toFixed(2)} ms`);
  await writer.end();
  await listener.end();
}
main().catch((e) => { console.error(e); process.exit(1); });
