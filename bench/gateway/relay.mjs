// bench/gateway/relay.mjs: the baseline of bench/gateway, a Node relay
// written the usual way: one process, `ws` for the WebSockets, `pg` for the
// database (one client LISTENs, a pool runs the joins), `jsonwebtoken` for
// the tokens.  It speaks as much of Phoenix Channels V2 JSON as the load
// generator (and the phoenix client) needs, with the care a production relay
// would take:
//
// - the token (params.token, HS256 with pgapp's secret) is verified at the
//   upgrade; a bad one gets 403, as Phoenix's connect/3 refusing;
// - heartbeats on topic "phoenix" are answered; a socket silent for 60 s is
//   closed (as the gateway's --idle-timeout);
// - phx_join runs the channel's join function in the database as the
//   token's role with request.jwt.claims, in one round trip (JOIN=sql, the
//   default: the same work as pgapp-gateway), or checks the topic in-process
//   (JOIN=local: no database call); the ok reply is sent once the topic's
//   LISTEN (pgapp.subscribe) is in place, so no broadcast committed after
//   the reply is missed; a socket's messages are handled in order;
// - phx_leave replies ok; the last socket to leave a topic UNLISTENs;
// - a notification (pgapp's envelope, or a reference to a stored message,
//   fetched with pgapp.message) is encoded once and sent to every joined
//   socket; a socket with more than 1 MB waiting is cut off (the same bound
//   as the gateway's --max-queue), so a slow client cannot grow memory;
// - frames over 64 KB close the socket (ws maxPayload), compression off.
//
// Settings (environment): RELAY_PORT, RELAY_JWT_SECRET, JOIN (sql|local),
// POOL (pool size, 4), PG* for the database (a role like PostgREST's
// authenticator).  SIGUSR2 runs a full garbage collection (node --expose-gc),
// for the memory measurement; SIGTERM stops it.
import http from 'node:http';

import jwt from 'jsonwebtoken';
import pg from 'pg';
import { WebSocketServer } from 'ws';

const PORT = Number(process.env.RELAY_PORT || 4001);
const SECRET = process.env.RELAY_JWT_SECRET;
const JOIN = process.env.JOIN || 'sql';
const MAX_BUFFERED = 1024 * 1024;
const IDLE_MS = 60_000;
const JOIN_FN = 'bench."join"';

const pool = new pg.Pool({ max: Number(process.env.POOL || 4) });
const listener = new pg.Client();
const topics = new Map(); // topic -> { sockets: Set, ready: Promise }
const sockets = new Set();

function frame(joinRef, ref, topic, event, payload) {
  return JSON.stringify([joinRef, ref, topic, event, payload]);
}
function reply(ws, joinRef, ref, topic, status, response) {
  if (ws.readyState === ws.OPEN) ws.send(frame(joinRef, ref, topic, 'phx_reply', { status, response }));
}

// LISTEN for topic once, shared by its sockets.
function subscribe(topic) {
  let t = topics.get(topic);
  if (!t) {
    t = { sockets: new Set(), ready: listener.query('SELECT pgapp.subscribe($1)', [topic]) };
    topics.set(topic, t);
  }
  return t;
}
function unsubscribe(ws, topic) {
  const t = topics.get(topic);
  if (!t) return;
  t.sockets.delete(ws);
  if (t.sockets.size === 0) {
    topics.delete(topic);
    listener.query('SELECT pgapp.unsubscribe($1)', [topic]).catch((e) => console.error('unsubscribe', e.message));
  }
}

// The join function as the token's role, as PostgREST runs a request: one
// transaction (a simple-query string is one), role and claims set locally.
async function authorize(ws, topic, params) {
  if (JOIN === 'local') {
    return topic.startsWith('bench:') && ws.claims.sub ? { ok: {} } : { error: { reason: 'unauthorized' } };
  }
  const c = await pool.connect();
  try {
    const res = await c.query(
      `SELECT pg_catalog.set_config('role', ${c.escapeLiteral(ws.role)}, true), ` +
      `pg_catalog.set_config('request.jwt.claims', ${c.escapeLiteral(ws.claimsText)}, true);` +
      `SELECT ${JOIN_FN}(${c.escapeLiteral(topic)}::text, ${c.escapeLiteral(JSON.stringify(params))}::jsonb)::text AS r`);
    return JSON.parse(res[1].rows[0].r);
  } finally {
    c.release();
  }
}

async function handleJoin(ws, joinRef, ref, topic, payload) {
  if (ws.joins.has(topic)) {
    ws.send(frame(ws.joins.get(topic), null, topic, 'phx_close', {}));
    ws.joins.delete(topic);
    unsubscribe(ws, topic);
  }
  let outcome;
  try {
    outcome = await authorize(ws, topic, payload && typeof payload === 'object' ? payload : {});
  } catch (e) {
    reply(ws, joinRef, ref, topic, 'error', { reason: 'join crashed' });
    return;
  }
  if (!outcome || !('ok' in outcome)) {
    reply(ws, joinRef, ref, topic, 'error', outcome && 'error' in outcome ? outcome.error : { reason: 'join crashed' });
    return;
  }
  if (ws.readyState !== ws.OPEN) return;
  const t = subscribe(topic);
  t.sockets.add(ws);
  ws.joins.set(topic, joinRef);
  try {
    await t.ready;
  } catch (e) {
    ws.joins.delete(topic);
    unsubscribe(ws, topic);
    reply(ws, joinRef, ref, topic, 'error', { reason: 'cannot subscribe to the topic' });
    return;
  }
  reply(ws, joinRef, ref, topic, 'ok', outcome.ok);
}

function handle(ws, msg) {
  const [joinRef, ref, topic, event, payload] = msg;
  if (topic === 'phoenix' && event === 'heartbeat') {
    reply(ws, null, ref, 'phoenix', 'ok', {});
    return null;
  }
  if (event === 'phx_join') return handleJoin(ws, joinRef, ref, topic, payload);
  if (!ws.joins.has(topic)) {
    reply(ws, joinRef, ref, topic, 'error', { reason: 'unmatched topic' });
  } else if (event === 'phx_leave') {
    ws.joins.delete(topic);
    unsubscribe(ws, topic);
    reply(ws, joinRef, ref, topic, 'ok', {});
  } else {
    reply(ws, joinRef, ref, topic, 'error', { reason: 'no handle_in' });
  }
  return null;
}

function onConnection(ws, claims) {
  ws.claims = claims;
  ws.claimsText = JSON.stringify(claims);
  ws.role = claims.role;
  ws.joins = new Map();
  ws.lastRx = Date.now();
  ws.chain = Promise.resolve();
  sockets.add(ws);
  ws.on('message', (data, isBinary) => {
    if (isBinary) { ws.close(1003, 'binary frames are not supported'); return; }
    ws.lastRx = Date.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      ws.close(1007, 'malformed message');
      return;
    }
    if (!Array.isArray(msg) || msg.length !== 5 || typeof msg[2] !== 'string' || typeof msg[3] !== 'string') {
      ws.close(1007, 'malformed message');
      return;
    }
    // one message at a time per socket, in order (as a Phoenix channel)
    ws.chain = ws.chain.then(() => handle(ws, msg)).catch((e) => console.error('handle', e));
  });
  ws.on('close', () => {
    sockets.delete(ws);
    for (const topic of ws.joins.keys()) unsubscribe(ws, topic);
    ws.joins.clear();
  });
  ws.on('error', () => {});
}

function deliver(env) {
  if (typeof env?.topic !== 'string' || typeof env.event !== 'string' || env.event.startsWith('phx_')) return;
  const t = topics.get(env.topic);
  if (!t) return;
  const text = frame(null, null, env.topic, env.event, env.payload ?? {});
  for (const ws of t.sockets) {
    if (ws.readyState !== ws.OPEN) continue;
    if (ws.bufferedAmount + text.length > MAX_BUFFERED) {
      ws.terminate(); // a slow consumer
      continue;
    }
    ws.send(text);
  }
}

listener.on('notification', (n) => {
  let env;
  try {
    env = JSON.parse(n.payload);
  } catch {
    return; // a raw NOTIFY, not pgapp's
  }
  if (env && env.ref === true && typeof env.id === 'string') {
    if (!topics.has(env.topic)) return;
    pool.query('SELECT pgapp.message($1::uuid)::text AS m', [env.id])
      .then((r) => r.rows[0]?.m && deliver(JSON.parse(r.rows[0].m)))
      .catch((e) => console.error('message', e.message));
    return;
  }
  deliver(env);
});
listener.on('error', (e) => { console.error('listener', e.message); process.exit(1); });

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', sockets: sockets.size, topics: topics.size }));
  } else {
    res.writeHead(404).end();
  }
});
const wss = new WebSocketServer({ noServer: true, maxPayload: 65536, perMessageDeflate: false, clientTracking: false });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://relay');
  const refuse = (status) => { socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`); };
  if (url.pathname !== '/socket/websocket') return refuse(404);
  if (!(url.searchParams.get('vsn') || '').startsWith('2.')) return refuse(400);
  let claims;
  try {
    claims = jwt.verify(url.searchParams.get('token') || '', SECRET, { algorithms: ['HS256'] });
  } catch {
    return refuse(403);
  }
  if (typeof claims.role !== 'string' || claims.role === '') return refuse(403);
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, claims));
});

setInterval(() => {
  const now = Date.now();
  for (const ws of sockets) if (now - ws.lastRx > IDLE_MS) ws.close(1001, 'idle timeout');
}, 1000).unref();

process.on('SIGUSR2', () => { if (global.gc) global.gc(); console.log('gc done'); });
process.on('SIGTERM', () => process.exit(0));

await listener.connect();
server.listen(PORT, '127.0.0.1', () => console.log(`relay listening on ${PORT} (join: ${JOIN})`));
