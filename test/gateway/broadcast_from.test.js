// test/gateway/broadcast_from.test.js: pgapp.broadcast_from (Phoenix's
// broadcast_from) and pgapp.typing through pgapp-gateway: a channel's
// handle_in broadcasts to every socket joined to the topic but the one whose
// push it handles, in direct and outbox mode and for stored messages; outside
// a gateway request it is pgapp.broadcast.  The absence of a message is shown
// by a marker broadcast after it: one socket's frames arrive in commit order.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  PORT0, closeDb, connect, join, nextEvent, phxSocket, push, sql, startGateway, token,
} from './helpers.js';

const PORT = PORT0 + 1;
let gw;
const sockets = [];

async function user(sub) {
  const s = phxSocket(PORT, { token: await token(sub) });
  sockets.push(s);
  await connect(s);
  return s;
}

// sub's socket joined to topic, with the events it receives recorded in order
async function member(sub, topic = 'room:lobby') {
  const s = await user(sub);
  const ch = s.channel(topic);
  const seen = [];
  s.onMessage((m) => {
    if (m.topic === topic && !m.event.startsWith('phx_')) seen.push(m.event);
  });
  assert.equal((await join(ch)).status, 'ok');
  return { s, ch, seen };
}

// wait until each member has the marker broadcast after what came before it
// (a socket's frames go out in the order the gateway queued them)
async function marker(members, mode = 'direct') {
  const got = members.map((m) => nextEvent(m.ch, 'marker'));
  await sql(`SELECT pgapp.broadcast('room:lobby', 'marker', '{}', mode => $1)`, [mode]);
  await Promise.all(got);
}

before(async () => {
  gw = await startGateway(PORT);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await gw.stop();
  await closeDb();
});

test('broadcast_from in handle_in reaches every other socket of the topic, not the sender', async () => {
  const alice = await member('alice');
  const bob = await member('bob');
  const alice2 = await member('alice'); // the same user on another socket gets it
  const atBob = nextEvent(bob.ch, 'shout');
  const atAlice2 = nextEvent(alice2.ch, 'shout');
  assert.deepEqual(await push(alice.ch, 'shout_from', { n: 1 }), { status: 'ok', response: {} });
  assert.deepEqual(await atBob, { n: 1 });
  assert.deepEqual(await atAlice2, { n: 1 });
  await marker([alice, bob, alice2]);
  assert.deepEqual(alice.seen, ['marker'], 'the sender did not get its own broadcast');
  assert.deepEqual(bob.seen, ['shout', 'marker']);
});

test('broadcast_from in a writing handle_in travels through the outbox, still without the sender', async () => {
  const alice = await member('alice');
  const bob = await member('bob');
  const atBob = nextEvent(bob.ch, 'new_msg');
  const r = await push(alice.ch, 'new_msg_from', { body: 'via the outbox' });
  assert.equal(r.status, 'ok');
  assert.deepEqual(await atBob, { id: r.response.id, from: 'alice', body: 'via the outbox' });
  // the marker too goes through the outbox, which keeps commit order
  await marker([alice, bob], 'outbox');
  assert.deepEqual(alice.seen, ['marker']);
  assert.deepEqual(bob.seen, ['new_msg', 'marker']);
});

test('a broadcast_from too large for NOTIFY is fetched, and still skips the sender', async () => {
  const alice = await member('alice');
  const bob = await member('bob');
  const atBob = nextEvent(bob.ch, 'big');
  assert.equal((await push(alice.ch, 'big_from', {})).status, 'ok');
  assert.equal((await atBob).pad.length, 10000);
  // the gateway queues one message on all its sockets at once: had alice's
  // been queued, it would be before the marker
  await marker([alice, bob]);
  assert.deepEqual(alice.seen, ['marker']);
  assert.deepEqual(bob.seen, ['big', 'marker']);
});

test('outside a gateway request broadcast_from is broadcast: every socket gets it', async () => {
  const alice = await member('alice');
  const bob = await member('bob');
  const got = [alice, bob].map((m) => nextEvent(m.ch, 'from_sql'));
  await sql("SELECT pgapp.broadcast_from('room:lobby', 'from_sql', '{\"n\": 2}')");
  assert.deepEqual(await Promise.all(got), [{ n: 2 }, { n: 2 }]);
});

test('pgapp.typing in handle_in: "typing" reaches the others, not the one who types', async () => {
  const alice = await member('alice');
  const bob = await member('bob');
  const typing = nextEvent(bob.ch, 'typing');
  assert.equal((await push(alice.ch, 'type', {})).status, 'ok');
  assert.deepEqual(await typing, { key: 'alice' });
  await marker([alice, bob]);
  assert.deepEqual(alice.seen, ['marker']);
  // typing_stopped (3 s later, from pgapp's worker) goes to everyone
  const stopped = await Promise.all([alice, bob].map((m) => nextEvent(m.ch, 'typing_stopped')));
  assert.deepEqual(stopped, [{ key: 'alice' }, { key: 'alice' }]);
});

test('a forged sender cannot silence anyone: another shape or another gateway reaches every socket', async () => {
  const alice = await member('alice');
  const bob = await member('bob');
  // a raw NOTIFY (which any role may send) naming a sender of another gateway
  // or of no valid shape: delivered to all
  for (const sender of ['0000000000000000:1', 'garbage', '', `${'f'.repeat(16)}:${'9'.repeat(30)}`]) {
    const got = [alice, bob].map((m) => nextEvent(m.ch, 'forged'));
    await sql('SELECT pg_notify($1, $2)', ['room:lobby',
      JSON.stringify({ topic: 'room:lobby', event: 'forged', payload: { sender }, sender })]);
    assert.deepEqual(await Promise.all(got), [{ sender }, { sender }]);
  }
  // and pgapp.broadcast_from refuses a request.gateway.socket not of the gateway's shape
  await assert.rejects(sql(`SELECT set_config('request.gateway.socket', 'x:1', true),
      pgapp.broadcast_from('room:lobby', 'e', '{}')`), /is not a pgapp-gateway socket/);
});
