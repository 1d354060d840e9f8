// test/gateway/helpers.js: what the gateway tests share.
//
// The suite (scripts/test gateway) gives the database in PGHOST, PGPORT,
// PGDATABASE, PGUSER (a superuser, for setting up and broadcasting), the
// PostgreSQL bindir holding pgapp-gateway in PGAPP_PG_BIN, and the first of
// the ports the tests may use in GATEWAY_PORT (30 in a row: protocol +0,
// broadcast_from +1, limits +2 to +8, presence +9, +10 and +17, chat +18,
// settings +11 to +15, hostile +16, restart +20 and +21, static +22 to +24,
// join_window +25, pending_auth +26; the files run one at a time, so two may
// share one), the suite
// cluster's data directory in LIVE_DATA (restart.test.js).  Every
// gateway runs as a child process connecting as gw_authenticator
// (test/gateway/setup.sql); a test waits for the lines it logs, never for
// time to pass.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';

import { Socket } from 'phoenix';
import WebSocket from 'ws';

const require = createRequire(import.meta.url);
const pg = require('pg');

export const BIN = process.env.PGAPP_PG_BIN || '/usr/lib/postgresql/15/bin';
export const GATEWAY = process.env.GATEWAY_BIN || path.join(BIN, 'pgapp-gateway');

// The environment of a gateway: ours without PGAPP_GATEWAY_* (the suite
// itself is given PGAPP_GATEWAY_PORT), plus extra.
function gatewayEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PGAPP_GATEWAY_')));
  return { ...env, ...extra };
}
export const PORT0 = Number(process.env.GATEWAY_PORT || 24690);
export const CONNINFO = `host=${process.env.PGHOST} port=${process.env.PGPORT} ` +
  `dbname=${process.env.PGDATABASE} user=gw_authenticator`;

let db;
// A superuser connection (PG* environment), opened on first use.
export async function sql(text, params = []) {
  if (!db) {
    db = new pg.Client();
    await db.connect();
  }
  return (await db.query(text, params)).rows;
}
export async function closeDb() {
  if (db) await db.end();
  db = undefined;
}

// A token from pgapp.encode_token, for sub with claims (role gw_user unless given).
export async function token(sub, claims = { role: 'gw_user' }, ttl = '15 minutes') {
  const rows = await sql('SELECT pgapp.encode_token($1, $2::jsonb, $3::interval) AS t',
    [sub, JSON.stringify(claims), ttl]);
  return rows[0].t;
}

// A running pgapp-gateway on port with extra flags; resolves once it has
// loaded the channels (its database connections are up), or once it has
// logged a line matching ready.
// opts.args replaces the usual flags (port, host, db, verbose) by its own;
// opts.env adds environment variables.
export async function startGateway(port, flags = [], ready = /channels? loaded/, opts = {}) {
  const args = opts.args || ['--port', String(port), '--host', '127.0.0.1', '--db', CONNINFO, '--verbose', '4', ...flags];
  // GATEWAY_BIN: another build (one with sanitizers, say)
  const proc = spawn(GATEWAY, args, { stdio: ['ignore', 'ignore', 'pipe'], env: gatewayEnv(opts.env) });
  const gw = { proc, port, lines: [], waiters: [] };
  readline.createInterface({ input: proc.stderr }).on('line', (line) => {
    gw.lines.push(line);
    if (process.env.GATEWAY_TRACE) console.error(`# gw ${port}: ${line}`);
    gw.waiters = gw.waiters.filter((w) => !(w.re.test(line) && (w.resolve(line), true)));
  });
  // the next log line matching re (after now)
  gw.waitFor = (re) => new Promise((resolve) => gw.waiters.push({ re, resolve }));
  // a log line matching re, logged already or to come (the gateway's log and
  // its sockets are read apart: a line logged before a reply was sent may be
  // read after the reply)
  gw.logged = (re) => {
    const line = gw.lines.find((l) => re.test(l));
    return line !== undefined ? Promise.resolve(line) : gw.waitFor(re);
  };
  gw.stop = async () => {
    // (a process killed by a signal has no exitCode, but a signalCode)
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await once(proc, 'exit');
    }
  };
  const exited = once(proc, 'exit').then(([code]) => {
    throw new Error(`pgapp-gateway exited (${code}): ${gw.lines.join('\n')}`);
  });
  await Promise.race([gw.waitFor(ready), exited]);
  exited.catch(() => {});
  return gw;
}

// Run pgapp-gateway with args to its end (for settings it refuses):
// resolves with {code, stderr}.
export async function runGateway(args, env = {}) {
  const proc = spawn(GATEWAY, args, { stdio: ['ignore', 'ignore', 'pipe'], env: gatewayEnv(env) });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d.toString(); });
  const [code] = await once(proc, 'exit');
  return { code, stderr };
}

export async function health(port) {
  const res = await fetch(`http://127.0.0.1:${port}/health`);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.json() };
}

// A phoenix Socket (the official client) with the ws transport.
export function phxSocket(port, params, opts = {}) {
  return new Socket(`ws://127.0.0.1:${port}/socket`, {
    transport: WebSocket, params, reconnectAfterMs: () => 60000, rejoinAfterMs: () => 60000, ...opts,
  });
}

// Connect socket; resolves when it is open.
export function connect(socket) {
  return new Promise((resolve, reject) => {
    const refs = [
      socket.onOpen(() => { socket.off(refs); resolve(); }),
      socket.onError((err) => { socket.off(refs); reject(err); }),
    ];
    socket.connect();
  });
}

// The next close of socket: its CloseEvent (code, reason).
export function nextClose(socket) {
  return new Promise((resolve) => {
    const ref = socket.onClose((ev) => { socket.off([ref]); resolve(ev); });
  });
}

// Join channel; resolves with {status, response} whatever the outcome.
export function join(channel) {
  return new Promise((resolve) => {
    channel.join()
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => {
        channel.leave(); // the client would rejoin a refused channel otherwise
        resolve({ status: 'error', response });
      })
      .receive('timeout', () => resolve({ status: 'timeout' }));
  });
}

// Push event on channel; resolves with {status, response}.
export function push(channel, event, payload) {
  return new Promise((resolve) => {
    channel.push(event, payload)
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => resolve({ status: 'error', response }))
      .receive('timeout', () => resolve({ status: 'timeout' }));
  });
}

// The next message of event on channel.
export function nextEvent(channel, event) {
  return new Promise((resolve) => {
    const ref = channel.on(event, (payload) => { channel.off(event, ref); resolve(payload); });
  });
}

// A raw WebSocket (no phoenix client) to path with query and headers; resolves
// with {ws} once open, or {status} when the upgrade is refused.
export function rawSocket(port, query, headers = {}, pathname = '/socket/websocket') {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${pathname}?${query}`, { headers });
    ws.on('open', () => resolve({ ws }));
    ws.on('unexpected-response', (req, res) => { resolve({ status: res.statusCode }); req.destroy(); });
    ws.on('error', () => {});
  });
}

// The close code and reason of raw ws.
export function rawClose(ws) {
  return new Promise((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

// The next frame of raw ws, decoded.
export function rawFrame(ws) {
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve(JSON.parse(data.toString())));
  });
}
