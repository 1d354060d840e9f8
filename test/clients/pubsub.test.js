// test/clients/pubsub.test.js: the Node client of examples/clients/node
// against a live server (PG* environment variables), printing TAP.
//
// One connection subscribes through the library; a second, plain pg
// connection broadcasts with SQL and also LISTENs to clients:test itself, to
// see the raw notifications (so the test knows when a message travelled by
// reference).  Each wait is bounded (WAIT_MS); the absence of a message is
// shown by a marker broadcast after it, since notifications arrive in
// commit order.  Run by "bash scripts/test clients".
'use strict';

const assert = require('assert/strict');
const path = require('path');
const { createRequire } = require('module');

const LIB = path.join(__dirname, '..', '..', 'examples', 'clients', 'node', 'pubsub.js');
const pubsub = require(LIB);
const pg = createRequire(LIB)('pg'); // the library's own pg (its node_modules)

const WAIT_MS = 10000;
const TOPIC = 'clients:test';
const LONG_TOPIC = 'clients:test:a topic too long to be a channel name:'.padEnd(70, '-');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Items pushed by events, taken by tests with a bounded wait.
class Inbox {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.wake = null;
  }

  push(item) {
    this.items.push(item);
    if (this.wake) this.wake();
  }

  // Wait until at least n items are there and take them all (more than n
  // is for the caller's assertions to see).
  async take(n) {
    const deadline = Date.now() + WAIT_MS;
    while (this.items.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`waited ${WAIT_MS / 1000} s for ${n} ${this.what}, got ${this.items.length}: `
          + JSON.stringify(this.items).slice(0, 500));
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = null;
    }
    return this.items.splice(0);
  }
}

const messages = new Inbox('message(s)');
const errors = new Inbox('error(s)');
const raw = new Inbox('raw notification(s)');
let sub;
let sender;

const broadcast = (topic, event, payload, mode = 'auto') =>
  sender.query('SELECT pgapp.broadcast($1, $2, $3, $4)', [topic, event, payload, mode]);

// What every message must look like, whatever its payload.
function assertMessage(msg, topic, event, payload) {
  assert.deepEqual(Object.keys(msg).sort(), ['at', 'event', 'id', 'payload', 'topic']);
  assert.equal(msg.topic, topic);
  assert.equal(msg.event, event);
  assert.deepEqual(msg.payload, payload);
  assert.match(msg.id, UUID);
  const at = Date.parse(msg.at);
  assert.ok(Number.isFinite(at), `"at" is a date: ${msg.at}`);
  assert.ok(Math.abs(at - Date.now()) < 60000, `"at" is within a minute of now: ${msg.at}`);
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('subscribe returns the topic as its channel', async () => {
  sub = await pubsub.connect();
  sub.on('message', (msg) => messages.push(msg));
  sub.on('error', (err) => errors.push(err));
  sender = new pg.Client();
  await sender.connect();
  sender.on('notification', (n) => raw.push(n));
  await sender.query(`LISTEN "${TOPIC}"`);
  assert.equal(await pubsub.subscribe(sub, TOPIC), TOPIC);
});

test('subscribe to a 70-byte topic returns its hashed channel, as pgapp.channel() and channelOf() say', async () => {
  const channel = await pubsub.subscribe(sub, LONG_TOPIC);
  const { rows } = await sender.query('SELECT pgapp.channel($1) AS channel', [LONG_TOPIC]);
  assert.match(channel, /^pgapp:[0-9a-f]{32}$/);
  assert.equal(channel, rows[0].channel);
  assert.equal(channel, pubsub.channelOf(LONG_TOPIC));
});

test('a small message arrives as {topic, event, payload, id, at}', async () => {
  await broadcast(TOPIC, 'created', { order_id: 7, note: 'ünïcode ✓', tags: ['a', 'b'], nested: { x: null } });
  const [msg, ...more] = await messages.take(1);
  assertMessage(msg, TOPIC, 'created', { order_id: 7, note: 'ünïcode ✓', tags: ['a', 'b'], nested: { x: null } });
  assert.deepEqual(more, []);
  const [n] = await raw.take(1);
  assert.deepEqual(JSON.parse(n.payload), msg, 'the raw notification is the message itself');
});

const BIG = { text: 'abcdefghü€'.repeat(2000) }; // 20,000 characters, 26,000 bytes in UTF-8

test('a 20,000-character payload is sent by reference and arrives whole', async () => {
  await broadcast(TOPIC, 'big', BIG);
  const [msg, ...more] = await messages.take(1);
  assertMessage(msg, TOPIC, 'big', BIG);
  assert.equal(msg.payload.text.length, 20000);
  assert.deepEqual(more, []);
  const [n] = await raw.take(1);
  const ref = JSON.parse(n.payload);
  assert.deepEqual(Object.keys(ref).sort(), ['at', 'event', 'id', 'ref', 'size', 'topic']);
  assert.equal(ref.ref, true);
  const { rows } = await sender.query('SELECT octet_length(pgapp.message($1)::text) AS bytes', [ref.id]);
  assert.equal(ref.size, rows[0].bytes, 'size is the byte length of the stored message as text');
  assert.equal(msg.id, ref.id, 'the message fetched is the one referenced');
  assert.equal(msg.at, ref.at);
  assert.equal(msg.event, ref.event);
});

test('a message that needs a fetch is still emitted before the small one sent after it', async () => {
  // Direct mode, so that both notifications come at commit in one packet and
  // the small one is read while the big one is being fetched.  (In auto mode
  // the stored big message makes the transaction a writer, so the small one
  // would go through the outbox and arrive later anyway.)
  await sender.query('BEGIN');
  await broadcast(TOPIC, 'big first', BIG, 'direct');
  await broadcast(TOPIC, 'small second', { n: 2 }, 'direct');
  await sender.query('COMMIT');
  const got = await messages.take(2);
  assert.deepEqual(got.map((m) => m.event), ['big first', 'small second']);
  assertMessage(got[0], TOPIC, 'big first', BIG);
  assertMessage(got[1], TOPIC, 'small second', { n: 2 });
  const notes = (await raw.take(2)).map((n) => JSON.parse(n.payload));
  assert.deepEqual(notes.map((n) => [n.event, n.ref === true]), [['big first', true], ['small second', false]]);
});

test('a message on the 70-byte topic arrives with the full topic', async () => {
  await broadcast(LONG_TOPIC, 'long topic', { long: true });
  const [msg, ...more] = await messages.take(1);
  assertMessage(msg, LONG_TOPIC, 'long topic', { long: true });
  assert.equal(Buffer.byteLength(msg.topic), 70);
  assert.deepEqual(more, []);
});

test('a rolled-back broadcast sends nothing: only the marker after it arrives', async () => {
  await sender.query('BEGIN');
  await broadcast(TOPIC, 'never', {});
  await sender.query('ROLLBACK');
  await broadcast(TOPIC, 'marker', { after: 'rollback' });
  const got = await messages.take(1);
  assert.deepEqual(got.map((m) => m.event), ['marker']);
  assertMessage(got[0], TOPIC, 'marker', { after: 'rollback' });
  await raw.take(1);
});

const outboxDelivered = async () =>
  Number((await sender.query('SELECT coalesce(delivered, 0) AS n FROM pgapp.pubsub_outbox')).rows[0].n);

test('3 outbox broadcasts of one transaction arrive after commit, in order, sent by the worker', async () => {
  const before = await outboxDelivered();
  await sender.query('BEGIN');
  for (const n of [1, 2, 3]) await broadcast(TOPIC, `via outbox ${n}`, { n }, 'outbox');
  await sender.query('COMMIT');
  const got = await messages.take(3);
  assert.deepEqual(got.map((m) => m.event), ['via outbox 1', 'via outbox 2', 'via outbox 3']);
  got.forEach((m, i) => assertMessage(m, TOPIC, `via outbox ${i + 1}`, { n: i + 1 }));
  assert.equal(new Set(got.map((m) => m.id)).size, 3, 'three ids');
  await raw.take(3);
  // the worker counts a batch once it is sent: wait for it, bounded
  const deadline = Date.now() + WAIT_MS;
  let sent = (await outboxDelivered()) - before;
  while (sent < 3 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    sent = (await outboxDelivered()) - before;
  }
  assert.equal(sent, 3, 'pgapp.pubsub_outbox counts 3 more delivered');
});

test('a 20,000-character payload in outbox mode arrives whole', async () => {
  await broadcast(TOPIC, 'big via outbox', BIG, 'outbox');
  const [msg, ...more] = await messages.take(1);
  assertMessage(msg, TOPIC, 'big via outbox', BIG);
  assert.deepEqual(more, []);
  const [n] = await raw.take(1);
  assert.equal(JSON.parse(n.payload).ref, true);
});

test('a notification that is not a pgapp message is an error, and the messages after it still come', async () => {
  await sender.query('SELECT pg_notify($1, $2)', [TOPIC, 'not json']);
  await broadcast(TOPIC, 'after garbage', {});
  const [err, ...moreErrors] = await errors.take(1);
  assert.deepEqual(err.notification, { channel: TOPIC, payload: 'not json' });
  assert.deepEqual(moreErrors, []);
  const got = await messages.take(1);
  assert.deepEqual(got.map((m) => m.event), ['after garbage']);
  await raw.take(2);
});

test('after unsubscribe, nothing more on that topic', async () => {
  await pubsub.unsubscribe(sub, LONG_TOPIC);
  await broadcast(LONG_TOPIC, 'unheard', {});
  await broadcast(TOPIC, 'marker', { after: 'unsubscribe' });
  const got = await messages.take(1);
  assert.deepEqual(got.map((m) => m.event), ['marker']);
  await raw.take(1);
  assert.deepEqual(errors.items, [], 'no other error was emitted');
});

async function main() {
  console.log(`1..${tests.length}`);
  let failed = 0;
  for (const [i, t] of tests.entries()) {
    try {
      await t.fn();
      console.log(`ok ${i + 1} - ${t.name}`);
    } catch (err) {
      failed++;
      console.log(`not ok ${i + 1} - ${t.name}`);
      console.log(`# ${String(err.stack || err).split('\n').slice(0, 12).join('\n# ')}`);
      if (i === 0) {
        console.log('Bail out! cannot connect and subscribe');
        break;
      }
      // what a failed test left behind must not confuse the next one
      messages.items.length = 0;
      raw.items.length = 0;
    }
  }
  if (sub) await pubsub.close(sub);
  if (sender) await sender.end().catch(() => {});
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.log(`not ok - ${err.message}`);
  process.exitCode = 1;
});
