// bench/gateway/loadgen.mjs: the load generator of bench/gateway, the same
// for pgapp-gateway and the relay.  Its sockets are raw WebSockets
// (wsclient.mjs, not the phoenix client) speaking Phoenix V2 JSON: phx_join
// with {}, heartbeats every 30 s, phx_leave.
//
//   node loadgen.mjs wait PORT               until GET /health answers 200 (10 s at most)
//   node loadgen.mjs fanout PORT [options]   (a) broadcasts from SQL to sockets on one topic
//   node loadgen.mjs idle PORT [options]     (b) idle joined sockets, held until SIGTERM
//   node loadgen.mjs churn PORT [options]    (c) join + leave, as fast as they are answered
//
// Options (--name value): sockets, seconds, warmup, window, writers, latency-n,
// body (bytes of the message body), topic, pid (the server's, for its CPU
// time), clk-tck.  TOKEN: the token every socket connects with; PG*: the
// database the writers broadcast in (fanout).
//
// fanout: first a light-load latency run (latency-n broadcasts one after the
// other, each once every socket has the previous one, after 20 that are not
// counted), then a throughput run (writers connections commit broadcasts, at
// most window of them not yet received by every socket), measured for
// seconds after warmup.  Each
// broadcast is BEGIN; SELECT pgapp.broadcast('<topic>', 'msg',
// {"seq": n, "body": ...}); COMMIT (no write: direct NOTIFY).  The time of a
// broadcast is taken when its COMMIT has returned, the time of a delivery
// when its frame is read, both in this process (performance.now); a
// delivery read before its COMMIT's answer was handled counts as 0 ms.  At
// light load it also reports, per broadcast, COMMIT to the first socket (the
// path through the database and the server) and to the last (plus reading
// the fan-out: one process reads every socket, one after the other).
// Prints one line "RESULT {json}".
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

import { wsConnect } from './wsclient.mjs';

const require = createRequire(import.meta.url);
const pg = require('pg');

const [mode, portArg, ...rest] = process.argv.slice(2);
const PORT = Number(portArg);
const opt = {
  sockets: 1000, seconds: 10, warmup: 2, window: 16, writers: 4, 'latency-n': 200, body: 100,
  topic: 'bench:fanout', pid: 0, 'clk-tck': 100,
};
for (let i = 0; i < rest.length; i += 2) {
  const k = rest[i].replace(/^--/, '');
  opt[k] = k === 'topic' ? rest[i + 1] : Number(rest[i + 1]);
}
const TOKEN = process.env.TOKEN;
const TARGET = `/socket/websocket?token=${encodeURIComponent(TOKEN || '')}&vsn=2.0.0`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- measuring ----

// CPU seconds the process pid has used (user + system).
function cpuOf(pid) {
  if (!pid) return 0;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / opt['clk-tck'];
}
// The machine's busy and total jiffies.
function machine() {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = cpu[3] + cpu[4];
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
// A latency histogram in 10 us buckets up to 10 s.
class Hist {
  constructor() { this.b = new Uint32Array(1_000_001); this.n = 0; this.max = 0; }
  add(ms) {
    const v = ms < 0 ? 0 : ms;
    this.b[Math.min(1_000_000, Math.floor(v * 100))]++;
    this.n++;
    if (v > this.max) this.max = v;
  }
  pct(p) {
    const want = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (let i = 0; i < this.b.length; i++) {
      seen += this.b[i];
      if (seen >= want && seen > 0) return (i + 0.5) / 100;
    }
    return NaN;
  }
  summary() {
    return { n: this.n, p50: +this.pct(50).toFixed(3), p99: +this.pct(99).toFixed(3), max: +this.max.toFixed(3) };
  }
}

// ---- sockets ----

// N sockets, each joined to topic(i) (an ok reply), CONCURRENCY at a time.
// onBroadcast(buf, i) gets the frames that are not replies.
async function openSockets(n, topic, onBroadcast) {
  const socks = new Array(n);
  let next = 0;
  let failed = null;
  const one = async (i) => {
    let joined;
    const ok = new Promise((resolve, reject) => { joined = { resolve, reject }; });
    const conn = await wsConnect(PORT, TARGET, {
      onMessage: (buf) => {
        // [null,null,...] is a broadcast; anything else a reply
        if (buf[1] === 0x6e && buf[6] === 0x6e) { if (onBroadcast) onBroadcast(buf, i); return; }
        if (joined) {
          const m = JSON.parse(buf);
          if (m[1] === 'j1' && m[3] === 'phx_reply') {
            if (m[4].status === 'ok') joined.resolve(); else joined.reject(new Error(`join refused: ${JSON.stringify(m[4])}`));
            joined = null;
          }
        }
      },
      onClose: (code) => { if (!conn.stopping) failed = failed || new Error(`socket ${i} closed (${code})`); },
    });
    conn.send(JSON.stringify(['j1', 'j1', topic(i), 'phx_join', {}]));
    await ok;
    socks[i] = conn;
  };
  const workers = Array.from({ length: Math.min(100, n) }, async () => {
    while (next < n) await one(next++);
  });
  await Promise.all(workers);
  // heartbeats, as the phoenix client sends them
  let hb = 0;
  const timer = setInterval(() => {
    hb++;
    for (const s of socks) s.send(JSON.stringify([null, `h${hb}`, 'phoenix', 'heartbeat', {}]));
  }, 30_000);
  return {
    socks,
    failed: () => failed,
    close: () => {
      clearInterval(timer);
      for (const s of socks) { s.stopping = true; s.destroy(); }
    },
  };
}

// ---- (a) fan-out ----

async function fanout() {
  const N = opt.sockets;
  const MAXSEQ = 4_000_000;
  const commitAt = new Float64Array(MAXSEQ).fill(NaN);
  const got = new Uint32Array(MAXSEQ);
  const firstAt = new Float64Array(MAXSEQ);
  const early = new Map(); // seq -> receive times before its commit time was known
  let delivered = 0;
  let completed = 0;
  let inflight = 0;
  let hist = new Hist();
  let waiters = [];
  let doneWaiter = null;

  const onBroadcast = (buf) => {
    const now = performance.now();
    let k = buf.indexOf('"seq":') + 6;
    while (buf[k] === 0x20) k++;
    let seq = 0;
    while (buf[k] >= 0x30 && buf[k] <= 0x39) seq = seq * 10 + buf[k++] - 0x30;
    delivered++;
    if (got[seq] === 0) firstAt[seq] = now;
    const t0 = commitAt[seq];
    if (Number.isNaN(t0)) {
      let l = early.get(seq);
      if (!l) early.set(seq, (l = []));
      l.push(now);
    } else hist.add(now - t0);
    if (++got[seq] === N) {
      completed++;
      inflight--;
      if (doneWaiter && doneWaiter.seq === seq) { doneWaiter.resolve(now); doneWaiter = null; }
      const w = waiters.shift();
      if (w) w();
    }
  };
  const sockets = await openSockets(N, () => opt.topic, onBroadcast);

  const body = 'x'.repeat(opt.body);
  const writers = [];
  for (let i = 0; i < opt.writers; i++) {
    const c = new pg.Client();
    await c.connect();
    writers.push(c);
  }
  let nextSeq = 1;
  const broadcast = async (c) => {
    const seq = nextSeq++;
    inflight++;
    await c.query('BEGIN');
    await c.query("SELECT pgapp.broadcast($1, 'msg', jsonb_build_object('seq', $2::int, 'body', $3::text))",
      [opt.topic, seq, body]);
    await c.query('COMMIT');
    const t0 = performance.now();
    commitAt[seq] = t0;
    const l = early.get(seq);
    if (l) {
      for (const t of l) hist.add(t - t0);
      early.delete(seq);
    }
    return { seq, t0 };
  };

  // light load: one broadcast at a time
  let all = new Hist();
  let first = new Hist();
  for (let i = -20; i < opt['latency-n']; i++) {
    if (i === 0) { // the first 20 warm the server up (JIT, caches): not counted
      hist = new Hist();
      all = new Hist();
      first = new Hist();
    }
    const whenAll = new Promise((resolve) => { doneWaiter = { seq: nextSeq, resolve }; });
    const { seq, t0 } = await broadcast(writers[0]);
    all.add((await whenAll) - t0);
    first.add(firstAt[seq] - t0);
    if (sockets.failed()) throw sockets.failed();
  }
  const light = hist.summary();
  const lightAll = all.summary();
  const lightFirst = first.summary();

  // throughput: writers in parallel, at most window broadcasts not yet everywhere
  hist = new Hist();
  let running = true;
  const loops = writers.map(async (c) => {
    while (running) {
      while (inflight >= opt.window) await new Promise((r) => waiters.push(r));
      if (!running) break;
      await broadcast(c);
    }
  });
  await sleep(opt.warmup * 1000);
  const d0 = delivered;
  const b0 = completed;
  const cpu0 = cpuOf(opt.pid);
  const me0 = process.cpuUsage();
  const m0 = machine();
  const t0 = performance.now();
  hist = new Hist();
  await sleep(opt.seconds * 1000);
  const t1 = performance.now();
  const d1 = delivered;
  const b1 = completed;
  const cpu1 = cpuOf(opt.pid);
  const me1 = process.cpuUsage(me0);
  const m1 = machine();
  const loaded = hist.summary();
  running = false;
  for (const w of waiters.splice(0)) w();
  await Promise.all(loops);
  // let what was sent arrive, then count what never did
  const drainUntil = performance.now() + 10_000;
  while (inflight > 0 && performance.now() < drainUntil) await sleep(20);
  let missing = 0;
  for (let s = 1; s < nextSeq; s++) missing += N - got[s];
  if (sockets.failed()) throw sockets.failed();
  const secs = (t1 - t0) / 1000;
  const result = {
    sockets: N,
    deliveries_per_s: Math.round((d1 - d0) / secs),
    broadcasts_per_s: Math.round((b1 - b0) / secs),
    server_cpu_s: +(cpu1 - cpu0).toFixed(2),
    server_cpu_us_per_delivery: +(((cpu1 - cpu0) * 1e6) / (d1 - d0)).toFixed(3),
    loadgen_cpu_s: +((me1.user + me1.system) / 1e6).toFixed(2),
    machine_busy: +((m1.busy - m0.busy) / (m1.total - m0.total)).toFixed(3),
    latency_light: light,
    latency_light_first_socket: lightFirst,
    latency_light_all_sockets: lightAll,
    latency_loaded: loaded,
    broadcasts: nextSeq - 1,
    missing,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  sockets.close();
  for (const c of writers) await c.end();
}

// ---- (b) idle sockets ----

async function idle() {
  const sockets = await openSockets(opt.sockets, () => opt.topic, null);
  console.log(`ready ${opt.sockets}`);
  const stop = () => { sockets.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  setInterval(() => { if (sockets.failed()) { console.error(sockets.failed().message); process.exit(1); } }, 500);
}

// ---- (c) join + leave churn ----

async function churn() {
  const N = opt.sockets;
  let pairs = 0;
  let running = true;
  const hist = new Hist();
  let measuring = false;
  const loops = [];
  for (let i = 0; i < N; i++) {
    let waiting = null;
    const conn = await wsConnect(PORT, TARGET, {
      onMessage: (buf) => {
        const m = JSON.parse(buf);
        if (m[3] === 'phx_reply' && waiting && m[1] === waiting.ref) {
          const w = waiting;
          waiting = null;
          if (m[4].status === 'ok') w.resolve(); else w.reject(new Error(`${w.ref}: ${JSON.stringify(m[4])}`));
        }
      },
      onClose: (code) => { if (running && waiting) waiting.reject(new Error(`socket ${i} closed (${code})`)); },
    });
    const ask = (msg) => new Promise((resolve, reject) => {
      waiting = { ref: msg[1], resolve, reject };
      conn.send(JSON.stringify(msg));
    });
    loops.push((async () => {
      let k = 0;
      while (running) {
        k++;
        const t = performance.now();
        await ask([`${k}`, `${k}`, opt.topic, 'phx_join', {}]);
        if (measuring) hist.add(performance.now() - t);
        await ask([`${k}`, `l${k}`, opt.topic, 'phx_leave', {}]);
        if (measuring) pairs++;
      }
      conn.destroy();
    })());
  }
  await sleep(opt.warmup * 1000);
  const cpu0 = cpuOf(opt.pid);
  const t0 = performance.now();
  measuring = true;
  await sleep(opt.seconds * 1000);
  measuring = false;
  const t1 = performance.now();
  const cpu1 = cpuOf(opt.pid);
  running = false;
  await Promise.all(loops);
  const secs = (t1 - t0) / 1000;
  console.log(`RESULT ${JSON.stringify({
    sockets: N,
    pairs_per_s: Math.round(pairs / secs),
    server_cpu_s: +(cpu1 - cpu0).toFixed(2),
    join_latency: hist.summary(),
  })}`);
}

async function waitHealth() {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    try {
      const res = await fetch(`http://127.0.0.1:${PORT}/health`);
      if (res.status === 200) return;
    } catch { /* not listening yet */ }
    await sleep(50);
  }
  throw new Error(`nothing healthy on port ${PORT} after 10 s`);
}

const modes = { fanout, idle, churn, wait: waitHealth };
if (!modes[mode]) {
  console.error('usage: node loadgen.mjs wait|fanout|idle|churn PORT [--option value ...]');
  process.exit(2);
}
modes[mode]().then(() => { if (mode !== 'idle') process.exit(0); }, (e) => { console.error(e.message); process.exit(1); });
