// bench/gateway/report.mjs: the table of bench/gateway from its
// results.jsonl (one line per run: part, server, round, r): the medians of
// the rounds, every run's value in brackets, and the ratios.
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const runs = (part, server, f) => rows.filter((x) => x.part === part && x.server === server).map((x) => f(x.r));
const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-');
const line = (label, cells) => console.log(`${label.padEnd(44)}${cells.map((c) => String(c).padStart(24)).join('')}`);

function table(part, servers, metrics) {
  line('', servers);
  const med = {};
  for (const [label, f, d = 0] of metrics) {
    const cells = servers.map((s) => {
      const xs = runs(part, s, f);
      if (!xs.length) return '-';
      med[`${label}|${s}`] = median(xs);
      return `${fmt(median(xs), d)} [${xs.map((x) => fmt(x, d)).join(' ')}]`;
    });
    line(label, cells);
  }
  return (label, s) => med[`${label}|${s}`];
}

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(2)}x` : '-');

if (rows.some((x) => x.part === 'a')) {
  const n = rows.find((x) => x.part === 'a').r.sockets;
  console.log(`\n(a) fan-out: ${n} sockets on one topic, broadcasts from SQL (median [runs])`);
  const m = table('a', ['gateway', 'relay'], [
    ['deliveries/s', (r) => r.deliveries_per_s],
    ['broadcasts/s', (r) => r.broadcasts_per_s],
    ['server CPU us per delivery', (r) => r.server_cpu_us_per_delivery, 2],
    ['machine busy (both cores) %', (r) => r.machine_busy * 100],
    ['load generator CPU s', (r) => r.loadgen_cpu_s, 1],
    ['light load: COMMIT->socket p50 ms', (r) => r.latency_light.p50, 2],
    ['light load: COMMIT->socket p99 ms', (r) => r.latency_light.p99, 2],
    ['light load: COMMIT->first socket p50 ms', (r) => r.latency_light_first_socket.p50, 2],
    ['light load: COMMIT->first socket p99 ms', (r) => r.latency_light_first_socket.p99, 2],
    ['light load: COMMIT->all sockets p50 ms', (r) => r.latency_light_all_sockets.p50, 2],
    ['light load: COMMIT->all sockets p99 ms', (r) => r.latency_light_all_sockets.p99, 2],
    ['loaded: COMMIT->socket p50 ms', (r) => r.latency_loaded.p50, 2],
    ['loaded: COMMIT->socket p99 ms', (r) => r.latency_loaded.p99, 2],
    ['deliveries missing', (r) => r.missing],
  ]);
  console.log(`ratios: deliveries/s gateway/relay ${ratio(m('deliveries/s', 'gateway'), m('deliveries/s', 'relay'))} (target >= 2x); ` +
    `server CPU per delivery relay/gateway ${ratio(m('server CPU us per delivery', 'relay'), m('server CPU us per delivery', 'gateway'))}`);
}

if (rows.some((x) => x.part === 'b')) {
  const n = rows.find((x) => x.part === 'b').r.sockets;
  console.log(`\n(b) memory: ${n} idle joined sockets, VmRSS of the server (median [runs])`);
  const per = (r, key) => ((r[key] - r.rss_before_kb) * 1024) / r.sockets;
  const m = table('b', ['gateway', 'relay'], [
    ['RSS before, KiB', (r) => r.rss_before_kb],
    ['RSS after, KiB', (r) => r.rss_after_kb],
    ['RSS after a full GC, KiB', (r) => r.rss_after_gc_kb],
    ['bytes per connection', (r) => per(r, 'rss_after_kb')],
    ['bytes per connection, after GC', (r) => per(r, 'rss_after_gc_kb')],
  ]);
  console.log(`ratios: per connection gateway/relay ${ratio(m('bytes per connection', 'gateway'), m('bytes per connection', 'relay'))}, ` +
    `against the relay after a full GC ${ratio(m('bytes per connection', 'gateway'), m('bytes per connection, after GC', 'relay'))} (target <= 0.25x)`);
}

if (rows.some((x) => x.part === 'c')) {
  const n = rows.find((x) => x.part === 'c').r.sockets;
  console.log(`\n(c) churn: ${n} sockets joining and leaving one topic in a loop (median [runs])`);
  const m = table('c', ['gateway', 'relay', 'relay-local'], [
    ['join+leave pairs/s', (r) => r.pairs_per_s],
    ['join reply p50 ms', (r) => r.join_latency.p50, 2],
    ['join reply p99 ms', (r) => r.join_latency.p99, 2],
    ['server CPU s', (r) => r.server_cpu_s, 2],
  ]);
  console.log(`ratios: pairs/s gateway/relay (join in SQL, both) ${ratio(m('join+leave pairs/s', 'gateway'), m('join+leave pairs/s', 'relay'))}; ` +
    `gateway/relay-local (no database call) ${ratio(m('join+leave pairs/s', 'gateway'), m('join+leave pairs/s', 'relay-local'))}`);
}
