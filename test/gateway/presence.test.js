// test/gateway/presence.test.js (ports +9, +10, +17): presence on a channel defined with
// presence => true (pres:* in setup.sql), through the phoenix client's
// Presence class: a join tracks the token's sub with the meta the join
// function returned under "presence"; presence_state follows the join's
// reply; pgapp's presence_diff events keep every client's list in step;
// leave, rejoin and disconnect untrack; metas are renewed while the socket
// lives; when a gateway dies, their ttl removes them.
//
// This file's main gateway uses a ttl of 600 s: anything that leaves here
// while the gateway runs left because the gateway untracked it, not because
// it expired.  Waits are for events (onSync, log lines), never for time.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { Presence } from 'phoenix';

import {
  CONNINFO, PORT0, closeDb, connect, join, phxSocket, push, rawSocket, sql, startGateway, token,
} from './helpers.js';

const PORT = PORT0 + 9;
const DYING_PORT = PORT0 + 10;
let gw;
const gateways = [];
const sockets = [];

async function user(sub, port = PORT, claims = undefined) {
  const s = phxSocket(port, { token: await token(sub, claims) });
  sockets.push(s);
  await connect(s);
  return s;
}

// sub's socket joined to topic with params, and a Presence on its channel
async function present(sub, topic, params = {}, port = PORT) {
  const s = await user(sub, port);
  const ch = s.channel(topic, params);
  const presence = new Presence(ch);
  const r = await join(ch);
  assert.equal(r.status, 'ok', JSON.stringify(r));
  return { s, ch, presence };
}

// {key: [meta without phx_ref, ...]} of a Presence's list, keys sorted
function view(presence) {
  const out = {};
  for (const { key, metas } of presence.list((k, p) => ({ key: k, metas: p.metas })).sort((a, b) => (a.key < b.key ? -1 : 1))) {
    out[key] = metas.map(({ phx_ref, phx_ref_prev, ...meta }) => meta);
  }
  return out;
}

// resolves once presence's view deep-equals expected (checked on each sync)
function until(presence, expected) {
  return new Promise((resolve) => {
    const check = () => {
      try {
        assert.deepEqual(view(presence), expected);
        resolve();
        return true;
      } catch {
        return false;
      }
    };
    if (check()) return;
    presence.onSync(() => { if (check()) presence.onSync(() => {}); });
  });
}

// live metas of key on topic in pgapp.presence
async function live(topic, key) {
  const rows = await sql(`SELECT meta FROM pgapp.presence
      WHERE topic = $1 AND key = $2 AND left_at IS NULL AND expires_at > clock_timestamp()
      ORDER BY joined_at`, [topic, key]);
  return rows.map((r) => r.meta);
}

before(async () => {
  gw = await startGateway(PORT, ['--presence-ttl', '600']);
  gateways.push(gw);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  for (const g of gateways) await g.stop();
  await closeDb();
});

test('join tracks the sub with the join\'s meta; presence_state then diffs keep every list in step', async () => {
  const alice = await present('alice', 'pres:1', { device: 'phone' });
  await until(alice.presence, { alice: [{ device: 'phone' }] });
  const bob = await present('bob', 'pres:1', { device: 'laptop' });
  await until(bob.presence, { alice: [{ device: 'phone' }], bob: [{ device: 'laptop' }] });
  await until(alice.presence, { alice: [{ device: 'phone' }], bob: [{ device: 'laptop' }] });
  // the same user on a second socket: a second meta under the same key
  const alice2 = await present('alice', 'pres:1', { device: 'tablet' });
  const both = { alice: [{ device: 'phone' }, { device: 'tablet' }], bob: [{ device: 'laptop' }] };
  await until(alice2.presence, both);
  await until(bob.presence, both);
  assert.deepEqual(await live('pres:1', 'alice'), [{ device: 'phone' }, { device: 'tablet' }]);
});

test('leave untracks at once, and the others see the leave', async () => {
  const carol = await present('carol', 'pres:2');
  const dave = await present('dave', 'pres:2');
  await until(dave.presence, { carol: [{ device: 'web' }], dave: [{ device: 'web' }] });
  carol.ch.leave();
  // a socket's requests run in order: once a later push is answered, the
  // leave's untrack has run
  const news = carol.s.channel('news');
  assert.equal((await join(news)).status, 'ok');
  assert.deepEqual(await live('pres:2', 'carol'), []);
  await until(dave.presence, { dave: [{ device: 'web' }] });
});

test('closing the socket untracks its metas; the others see it leave', async () => {
  const erin = await present('erin', 'pres:3');
  const frank = await present('frank', 'pres:3');
  await until(frank.presence, { erin: [{ device: 'web' }], frank: [{ device: 'web' }] });
  erin.s.disconnect();
  await until(frank.presence, { frank: [{ device: 'web' }] });
  assert.deepEqual(await live('pres:3', 'erin'), []);
});

test('a rejoin replaces the meta (the old one untracked before the new join runs)', async () => {
  const { ws } = await rawSocket(PORT, `token=${await token('gina')}&vsn=2.0.0`);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const next = () => new Promise((resolve) => {
    const check = () => (frames.length ? resolve(frames.shift()) : ws.once('message', () => setImmediate(check)));
    check();
  });
  ws.send(JSON.stringify(['1', '1', 'pres:4', 'phx_join', { device: 'first' }]));
  assert.deepEqual(await next(), ['1', '1', 'pres:4', 'phx_reply', { status: 'ok', response: { topic: 'pres:4' } }]);
  // presence_state follows the reply, with the join_ref, as from Phoenix.Presence
  const state = await next();
  assert.deepEqual(state.slice(0, 4), ['1', null, 'pres:4', 'presence_state']);
  assert.equal(typeof state[4], 'object');
  assert.deepEqual(await live('pres:4', 'gina'), [{ device: 'first' }]);
  ws.send(JSON.stringify(['2', '2', 'pres:4', 'phx_join', { device: 'second' }]));
  assert.deepEqual(await next(), ['1', null, 'pres:4', 'phx_close', {}]);
  assert.deepEqual((await next()).slice(0, 4), ['2', '2', 'pres:4', 'phx_reply']);
  assert.deepEqual(await live('pres:4', 'gina'), [{ device: 'second' }]);
  ws.close();
});

test('a refused or crashed join tracks nothing; a token without sub joins untracked and sees the others', async () => {
  const s = await user('hank');
  assert.deepEqual(await join(s.channel('pres:5', { refuse: true })),
    { status: 'error', response: { reason: 'refused' } });
  // a meta over pgapp.pubsub_presence_max_meta: presence_track fails, and the join with it
  assert.deepEqual(await join(s.channel('pres:5', { meta: { pad: 'x'.repeat(10000) } })),
    { status: 'error', response: { reason: 'join crashed' } });
  assert.deepEqual(await live('pres:5', 'hank'), []);
  const ivy = await present('ivy', 'pres:5');
  await until(ivy.presence, { ivy: [{ device: 'web' }] });
  // pgapp.encode_token always sets sub: a token without one is signed by hand
  await sql(readFileSync(new URL('../helpers/token_helpers.sql', import.meta.url), 'utf8'));
  const rows = await sql(`SELECT pg_temp.jwt('{"alg":"HS256","typ":"JWT"}',
      json_build_object('role', 'gw_user', 'iat', pg_temp.now_s(), 'exp', pg_temp.now_s() + 600)::text, $1) AS t`,
  [process.env.GATEWAY_SECRET]);
  const anon = phxSocket(PORT, { token: rows[0].t });
  sockets.push(anon);
  await connect(anon);
  const ch = anon.channel('pres:5');
  const presence = new Presence(ch);
  assert.equal((await join(ch)).status, 'ok');
  await until(presence, { ivy: [{ device: 'web' }] });
  assert.deepEqual(await sql("SELECT key FROM pgapp.presence WHERE topic = 'pres:5' AND left_at IS NULL"), [{ key: 'ivy' }]);
});

test('metas are renewed while the socket lives; when the gateway dies, their ttl removes them', async () => {
  // a gateway with a 4 s ttl (renewed every 2 s), killed without a chance to untrack
  const dying = await startGateway(DYING_PORT, ['--presence-ttl', '4']);
  gateways.push(dying);
  const watcher = await present('judy', 'pres:6');
  // (0.1 has no exact binary form: the renewals send the meta back as the
  // database wrote it, so it never looks changed)
  const meta = { device: 'doomed', load: 0.1 };
  await present('kim', 'pres:6', { meta }, DYING_PORT);
  const renewed = dying.waitFor(/renewing 1 presence meta/);
  await until(watcher.presence, { judy: [{ device: 'web' }], kim: [meta] });
  await renewed;
  await dying.waitFor(/renewing 1 presence meta/);
  await dying.waitFor(/renewing 1 presence meta/);
  // renewals later (past the first ttl), kim is still there, her meta never changed
  assert.deepEqual(await live('pres:6', 'kim'), [meta]);
  assert.deepEqual(await sql("SELECT seq FROM pgapp.presence WHERE topic = 'pres:6' AND key = 'kim'"), [{ seq: 0 }]);
  // killed with kim's socket open: nothing untracks it
  dying.proc.kill('SIGKILL');
  await dying.stop();
  await until(watcher.presence, { judy: [{ device: 'web' }] });
  assert.deepEqual(await live('pres:6', 'kim'), []);
});

test('when the listener comes back after losing the database, joined sockets get a new presence_state', async () => {
  const port = PORT0 + 17;
  const g = await startGateway(port, ['--db', `${CONNINFO} application_name=gw-presence-relisten`]);
  gateways.push(g);
  const mia = await present('mia', 'pres:10', {}, port);
  await until(mia.presence, { mia: [{ device: 'web' }] });
  const states = [];
  mia.s.onMessage((m) => { if (m.event === 'presence_state') states.push(m.payload); });
  const relistened = g.waitFor(/LISTEN pres:10 done/);
  await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = 'gw-presence-relisten'`);
  await relistened;
  // the state after the LISTEN: what the client syncs to (diffs meanwhile were lost)
  await new Promise((resolve) => {
    const check = () => (states.length ? resolve() : mia.s.onMessage(() => setImmediate(check)));
    check();
  });
  assert.deepEqual(Object.keys(states[0]), ['mia']);
  await until(mia.presence, { mia: [{ device: 'web' }] });
});

test('presence channels still answer pushes; a flood of rejoins is bounded and leaves one meta', async () => {
  const s = await user('leo');
  const ch = s.channel('pres:7');
  assert.equal((await join(ch)).status, 'ok');
  assert.deepEqual(await push(ch, 'echo', { n: 1 }),
    { status: 'ok', response: { event: 'echo', payload: { n: 1 }, role: 'gw_user' } });
  const { ws } = await rawSocket(PORT, `token=${await token('leo')}&vsn=2.0.0`);
  const replies = new Map();
  let wake;
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f[3] === 'phx_reply') replies.set(f[1], f[4]);
    if (wake) wake();
  });
  const reply = (ref) => new Promise((resolve) => {
    const check = () => (replies.has(ref) ? resolve(replies.get(ref)) : (wake = check));
    check();
  });
  // another socket holds the topic, so it is LISTENed and each join goes to
  // the database at once (a join of a topic not yet LISTENed waits for it,
  // and one that replaces it before then never runs)
  const keeper = await user('leo-keeper');
  assert.equal((await join(keeper.channel('pres:8'))).status, 'ok');
  // the same topic 100 times without waiting: each join replaces the last
  // (a join replaced while it runs has its meta untracked when it ends);
  // past 16 joins waiting for the database, a join is refused outright
  for (let i = 0; i < 100; i++) ws.send(JSON.stringify([`f${i}`, `f${i}`, 'pres:8', 'phx_join', {}]));
  ws.send(JSON.stringify([null, 'hb', 'phoenix', 'heartbeat', {}]));
  await reply('hb');
  const refused = [...replies.values()].filter((r) => r.response?.reason === 'too many requests');
  assert.ok(refused.length > 0, 'some of the flood was refused');
  // one more join, again while refused (the queue drains meanwhile)
  let n = 0;
  for (;;) {
    ws.send(JSON.stringify(['last', `last${n}`, 'pres:8', 'phx_join', {}]));
    const r = await reply(`last${n++}`);
    if (r.status === 'ok') break;
    assert.deepEqual(r, { status: 'error', response: { reason: 'too many requests' } });
  }
  // the untracks of the replaced joins were queued before this push
  ws.send(JSON.stringify(['last', 'after', 'pres:8', 'echo', {}]));
  assert.equal((await reply('after')).status, 'ok');
  assert.deepEqual(await live('pres:8', 'leo'), [{ device: 'web' }]);
  ws.close();
});
