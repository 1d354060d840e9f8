// test/gateway/protocol.test.js: pgapp-gateway with the official phoenix
// client: connect and heartbeat, tokens, joins, pushes and replies,
// broadcasts from SQL, /health, and re-LISTENing after the database
// connections are lost.  Channels and roles: test/gateway/setup.sql.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';

import {
  PORT0, closeDb, connect, health, join, nextClose, nextEvent, phxSocket, push, rawClose,
  rawFrame, rawSocket, sql, startGateway, token,
} from './helpers.js';

const PORT = PORT0;
let gw;
const sockets = [];

// A connected phoenix socket for sub (a token of role gw_user).
async function user(sub, claims) {
  const s = phxSocket(PORT, { token: await token(sub, claims) });
  sockets.push(s);
  await connect(s);
  return s;
}

before(async () => {
  gw = await startGateway(PORT);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await gw.stop();
  await closeDb();
});

test('/health says the database is connected, as JSON', async () => {
  const h = await health(PORT);
  assert.equal(h.status, 200);
  assert.equal(h.type, 'application/json');
  assert.equal(h.body.status, 'ok');
  assert.deepEqual(h.body.database, { connected: true, pending: 0 });
  assert.equal(h.body.channels, 3);
  assert.equal(typeof h.body.sockets, 'number');
});

test('connect with a valid token, and heartbeats get phx_reply ok on topic phoenix', async () => {
  const s = phxSocket(PORT, { token: await token('alice') }, { heartbeatIntervalMs: 50 });
  sockets.push(s);
  const replies = [];
  const two = new Promise((resolve) => {
    s.onMessage((m) => {
      if (m.topic === 'phoenix') replies.push(m);
      if (replies.length === 2) resolve();
    });
  });
  await connect(s);
  await two;
  for (const m of replies) {
    assert.equal(m.event, 'phx_reply');
    assert.deepEqual(m.payload, { status: 'ok', response: {} });
    assert.equal(m.join_ref, null);
    assert.match(m.ref, /^\d+$/);
  }
  assert.notEqual(replies[0].ref, replies[1].ref, 'each heartbeat is answered with its own ref');
  s.disconnect();
});

test('a bad token is refused: the socket is closed with 1008 before any message is handled', async () => {
  const good = await token('alice');
  const bad = good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA');
  const { ws } = await rawSocket(PORT, `token=${encodeURIComponent(bad)}&vsn=2.0.0`);
  assert.ok(ws, 'the upgrade itself succeeds (the database answers after it)');
  const closed = rawClose(ws);
  const frames = [];
  ws.on('message', (d) => frames.push(d.toString()));
  ws.send(JSON.stringify(['1', '1', 'room:lobby', 'phx_join', {}]));
  const { code, reason } = await closed;
  assert.equal(code, 1008);
  assert.equal(reason, 'invalid token');
  assert.deepEqual(frames, [], 'the join sent before the answer was never handled');
});

test('an expired or malformed token is refused at the upgrade (HTTP 403), before any socket exists', async () => {
  // signed with the suite's secret by test/helpers/token_helpers.sql, expired an hour ago
  await sql(readFileSync(new URL('../helpers/token_helpers.sql', import.meta.url), 'utf8'));
  const rows = await sql(`SELECT t, pg_temp.token_error(t) AS e FROM (SELECT pg_temp.jwt(
      '{"alg":"HS256","typ":"JWT"}',
      json_build_object('sub', 'alice', 'role', 'gw_user', 'iat', pg_temp.now_s() - 7200,
                        'exp', pg_temp.now_s() - 3600)::text, $1) AS t) AS s`, [process.env.GATEWAY_SECRET]);
  assert.match(rows[0].e, /^PJ003/, 'pgapp.decode_token calls it expired');
  assert.equal((await rawSocket(PORT, `token=${rows[0].t}&vsn=2.0.0`)).status, 403);
  // not three segments, a payload that is not base64url, no numeric exp
  const noExp = `e30.${Buffer.from('{"sub":"a","role":"gw_user"}').toString('base64url')}.c2ln`;
  for (const t of ['x', 'a.b', 'a.b.c.d', 'e30.*.c2ln', noExp]) {
    assert.equal((await rawSocket(PORT, `token=${encodeURIComponent(t)}&vsn=2.0.0`)).status, 403, t);
  }
  // the phoenix client sees a socket that never opens, and retries with its backoff
  const s = phxSocket(PORT, { token: rows[0].t });
  sockets.push(s);
  let opened = false;
  s.onOpen(() => { opened = true; });
  const closed = nextClose(s);
  s.connect();
  const ev = await closed;
  assert.equal(opened, false);
  assert.equal(ev.code, 1006);
  await gw.logged(/upgrade refused \(403\): token expired/); // the gateway logged why
  s.disconnect();
});

test('no token, or another serializer: the upgrade is refused with an HTTP status', async () => {
  assert.equal((await rawSocket(PORT, 'vsn=2.0.0')).status, 403);
  assert.equal((await rawSocket(PORT, 'token=x&vsn=1.0.0')).status, 400);
  assert.equal((await rawSocket(PORT, 'token=x&vsn=2.0.0', {}, '/elsewhere/websocket')).status, 404);
});

test('a token without a role claim is refused (no --anon-role)', async () => {
  const t = await token('alice', { plan: 'pro' });
  const { ws } = await rawSocket(PORT, `token=${t}&vsn=2.0.0`);
  const { code } = await rawClose(ws);
  assert.equal(code, 1008);
});

test('join allowed: the join function ran as the token role with request.jwt.claims', async () => {
  const s = await user('alice');
  const ch = s.channel('room:lobby', { hello: 'world' });
  const r = await join(ch);
  assert.equal(r.status, 'ok');
  assert.deepEqual(r.response, {
    topic: 'room:lobby', role: 'gw_user', sub: 'alice', params: { hello: 'world' },
  });
  assert.equal(ch.state, 'joined');
});

test('join refused by the function ({"error": ...}); row-level security decided it', async () => {
  const s = await user('bob');
  const r = await join(s.channel('room:secret'));
  assert.deepEqual(r, { status: 'error', response: { reason: 'not a member' } });
});

test('join of a topic no channel matches: {"reason": "unmatched topic"}', async () => {
  const s = await user('alice');
  assert.deepEqual(await join(s.channel('nowhere:1')), { status: 'error', response: { reason: 'unmatched topic' } });
  // 'news' is an exact pattern: 'news:1' does not match it
  assert.deepEqual(await join(s.channel('news:1')), { status: 'error', response: { reason: 'unmatched topic' } });
});

test('a join function that raises: {"reason": "join crashed"}, and the transaction rolled back', async () => {
  const s = await user('alice');
  assert.deepEqual(await join(s.channel('room:lobby', { crash: true })),
    { status: 'error', response: { reason: 'join crashed' } });
});

test('a token whose role the gateway may not become: the join fails (SET ROLE refused)', async () => {
  const s = await user('alice', { role: 'gw_other' });
  assert.deepEqual(await join(s.channel('news')), { status: 'error', response: { reason: 'join crashed' } });
  await gw.logged(/permission denied to set role "gw_other"/); // the gateway logged why
});

test('push and reply: handle_in runs as the token role; ok, error and crash replies', async () => {
  const s = await user('alice');
  const ch = s.channel('room:lobby');
  assert.equal((await join(ch)).status, 'ok');
  assert.deepEqual(await push(ch, 'echo', { n: 1 }),
    { status: 'ok', response: { event: 'echo', payload: { n: 1 }, role: 'gw_user' } });
  assert.deepEqual(await push(ch, 'refuse', {}), { status: 'error', response: { reason: 'refused' } });
  assert.deepEqual(await push(ch, 'fail', {}), { status: 'error', response: { reason: 'handle_in crashed' } });
  // replies come in the order of the pushes, as from a Phoenix channel
  const order = await Promise.all([1, 2, 3, 4, 5].map((n) => push(ch, 'echo', { n })));
  assert.deepEqual(order.map((r) => r.response.payload.n), [1, 2, 3, 4, 5]);
  // a channel without handle_in
  const news = s.channel('news');
  assert.equal((await join(news)).status, 'ok');
  assert.deepEqual(await push(news, 'anything', {}), { status: 'error', response: { reason: 'no handle_in' } });
});

test('a push that broadcasts: the reply to the sender, the message to every member joined', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const a = alice.channel('room:lobby');
  const b = bob.channel('room:lobby');
  assert.equal((await join(a)).status, 'ok');
  assert.equal((await join(b)).status, 'ok');
  const atBob = nextEvent(b, 'new_msg');
  const atAlice = nextEvent(a, 'new_msg');
  const r = await push(a, 'new_msg', { body: 'hello' });
  assert.equal(r.status, 'ok');
  const m = await atBob;
  assert.deepEqual(m, { id: r.response.id, from: 'alice', body: 'hello' });
  assert.deepEqual(await atAlice, m);
  const rows = await sql('SELECT sub, body FROM gw.message WHERE id = $1', [r.response.id]);
  assert.deepEqual(rows, [{ sub: 'alice', body: 'hello' }]);
});

test('broadcast from SQL reaches the sockets joined to the topic, and only them', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const carol = await user('carol');
  const a = alice.channel('room:lobby');
  const bn = bob.channel('news');
  assert.equal((await join(a)).status, 'ok');
  assert.equal((await join(bn)).status, 'ok');
  const got = { alice: [], bob: [], carol: [] };
  alice.onMessage((m) => m.event === 'shout' && got.alice.push(m));
  bob.onMessage((m) => m.event === 'shout' && got.bob.push(m));
  carol.onMessage((m) => m.event === 'shout' && got.carol.push(m));
  const lobby = nextEvent(a, 'shout');
  const news = nextEvent(bn, 'shout');
  await sql("SELECT pgapp.broadcast('room:lobby', 'shout', '{\"n\": 1}')");
  await sql("SELECT pgapp.broadcast('news', 'shout', '{\"n\": 2}')");
  assert.deepEqual(await lobby, { n: 1 });
  assert.deepEqual(await news, { n: 2 });
  // delivered in commit order: had bob or carol got the lobby's, it would be here by now
  assert.deepEqual(got.alice.map((m) => [m.join_ref, m.ref, m.topic, m.payload]),
    [[null, null, 'room:lobby', { n: 1 }]]);
  assert.deepEqual(got.bob.map((m) => m.payload), [{ n: 2 }]);
  assert.deepEqual(got.carol, []);
});

test('a broadcast too large for NOTIFY is fetched with pgapp.message and delivered whole', async () => {
  const s = await user('alice');
  const ch = s.channel('news');
  assert.equal((await join(ch)).status, 'ok');
  const big = nextEvent(ch, 'big');
  await sql("SELECT pgapp.broadcast('news', 'big', jsonb_build_object('pdf', repeat('A', 20000)))");
  const m = await big;
  assert.equal(m.pdf.length, 20000);
});

test('after phx_leave the socket gets no more broadcasts of the topic', async () => {
  const s = await user('alice');
  const lobby = s.channel('room:lobby');
  const news = s.channel('news');
  assert.equal((await join(lobby)).status, 'ok');
  assert.equal((await join(news)).status, 'ok');
  lobby.leave(); // the client closes its channel at once, without waiting for the reply
  // the gateway handles a socket's messages in order: once a later push is
  // answered, the leave has been handled
  const leaveReply = new Promise((resolve) => s.onMessage((m) => {
    if (m.topic === 'room:lobby' && m.event === 'phx_reply') resolve(m.payload);
  }));
  assert.equal((await push(news, 'after', {})).status, 'error');
  assert.deepEqual(await leaveReply, { status: 'ok', response: {} });
  const seen = [];
  s.onMessage((m) => m.event === 'after_leave' && seen.push(m.topic));
  const last = nextEvent(news, 'after_leave');
  await sql("SELECT pgapp.broadcast('room:lobby', 'after_leave', '{}')");
  await sql("SELECT pgapp.broadcast('news', 'after_leave', '{}')");
  await last;
  assert.deepEqual(seen, ['news']);
});

test('a message to a topic the socket has not joined: {"reason": "unmatched topic"}', async () => {
  const t = await token('alice');
  const { ws } = await rawSocket(PORT, `token=${t}&vsn=2.0.0`);
  const reply = rawFrame(ws);
  ws.send(JSON.stringify([null, '7', 'room:lobby', 'echo', {}]));
  assert.deepEqual(await reply,
    [null, '7', 'room:lobby', 'phx_reply', { status: 'error', response: { reason: 'unmatched topic' } }]);
  // a second join of the same topic closes the first (phx_close with its join_ref)
  const r1 = rawFrame(ws);
  ws.send(JSON.stringify(['1', '1', 'news', 'phx_join', {}]));
  assert.deepEqual(await r1, ['1', '1', 'news', 'phx_reply', { status: 'ok', response: {} }]);
  const frames = [];
  const two = new Promise((resolve) => ws.on('message', (d) => {
    frames.push(JSON.parse(d.toString()));
    if (frames.length === 2) resolve();
  }));
  ws.send(JSON.stringify(['2', '2', 'news', 'phx_join', {}]));
  await two;
  assert.deepEqual(frames, [
    ['1', null, 'news', 'phx_close', {}],
    ['2', '2', 'news', 'phx_reply', { status: 'ok', response: {} }],
  ]);
  // a message that is not a V2 frame closes the socket (1007)
  const closed = rawClose(ws);
  ws.send('{"topic": "news"}');
  assert.equal((await closed).code, 1007);
});

test('a raw NOTIFY forging a phx_ event on a topic is not relayed', async () => {
  const s = await user('alice');
  const ch = s.channel('news');
  assert.equal((await join(ch)).status, 'ok');
  const seen = [];
  s.onMessage((m) => m.topic === 'news' && seen.push(m.event));
  const legit = nextEvent(ch, 'legit');
  await sql(`NOTIFY news, '{"topic": "news", "event": "phx_close", "payload": {}}'`);
  await sql("SELECT pgapp.broadcast('news', 'legit', '{}')");
  await legit;
  assert.deepEqual(seen, ['legit']);
  assert.equal(ch.state, 'joined');
});

test('define_channel while the gateway runs: it reloads the channels and the new one can be joined', async () => {
  const s = await user('alice');
  assert.deepEqual(await join(s.channel('extra:1')), { status: 'error', response: { reason: 'unmatched topic' } });
  const reloaded = gw.waitFor(/4 channels loaded/);
  await sql("SELECT pgapp.define_channel('extra:*', 'gw.public_join(text, jsonb)')");
  await reloaded;
  assert.equal((await join(s.channel('extra:1'))).status, 'ok');
  const dropped = gw.waitFor(/3 channels loaded/);
  await sql("SELECT pgapp.drop_channel('extra:*')");
  await dropped;
  assert.deepEqual(await join(s.channel('extra:2')), { status: 'error', response: { reason: 'unmatched topic' } });
});

test('the gateway LISTENs again after losing its database connections', async () => {
  const s = await user('alice');
  const ch = s.channel('news');
  assert.equal((await join(ch)).status, 'ok');
  const relistened = Promise.all([gw.waitFor(/LISTEN news done/),
    gw.waitFor(/request connection 0 ready/), gw.waitFor(/request connection 1 ready/)]);
  const killed = await sql(
    "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE usename = 'gw_authenticator'");
  assert.ok(killed[0].n >= 2, 'the listener and the request connections were terminated');
  await relistened;
  const h = await health(PORT);
  assert.equal(h.body.database.connected, true);
  const m = nextEvent(ch, 'back');
  await sql("SELECT pgapp.broadcast('news', 'back', '{\"ok\": true}')");
  assert.deepEqual(await m, { ok: true });
  // and requests work again
  const again = await user('alice');
  assert.equal((await join(again.channel('room:lobby'))).status, 'ok');
});
