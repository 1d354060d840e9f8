// test/gateway/chat.test.js: the chat recipe (examples/chat.sql) through
// pgapp-gateway with the official phoenix client: joins (members only, the
// last 50 messages), messages (reply, broadcast to the others with author
// and time, validation), typing, the message rate limit, attachments stored
// by the uploads job, and presence.  Helpers: channel_case.js.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { ChannelCase, assertPush, eventsBefore, push, sql } from './channel_case.js';
import { PORT0, connect, phxSocket } from './helpers.js';

// port +18 of the suite (helpers.js); attachments of 256 kB are
// about 350 kB of base64, over the gateway's default --max-message
const cc = new ChannelCase(PORT0 + 18, ['--max-message', '1048576']);
let alice;
let bob;
let carol;

before(async () => {
  await cc.start();
  alice = await cc.registerUser('Alice');
  bob = await cc.registerUser('Bob');
  carol = await cc.registerUser('Carol');
});

after(async () => {
  await cc.stop();
});

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$/;

test('join: a member gets the room, itself and the last 50 messages, oldest first, with author and time', async () => {
  const { id: room, topic } = await cc.room('history', [alice, bob]);
  const ids = await sql(`INSERT INTO chat.message (room_id, author_id, author_name, body)
    SELECT $3, CASE WHEN i % 2 = 0 THEN $1 ELSE $2 END, '', 'message ' || i
      FROM generate_series(1, 60) AS i ORDER BY i RETURNING id`, [alice.id, bob.id, room]);
  const j = await cc.subscribeAndJoin(await cc.connect(alice), topic);
  assert.deepEqual(j.response.room, { id: room, name: 'history' });
  assert.deepEqual(j.response.user, { id: alice.id, name: 'Alice' });
  assert.deepEqual(j.response.typing, []);
  const msgs = j.response.messages;
  assert.equal(msgs.length, 50);
  assert.deepEqual(msgs.map((m) => m.id), ids.slice(10).map((r) => Number(r.id)), 'the last 50, oldest first');
  assert.equal(msgs[0].body, 'message 11');
  assert.equal(msgs[49].body, 'message 60');
  for (const m of msgs) {
    const n = Number(m.body.split(' ')[1]);
    assert.deepEqual(m.author, n % 2 === 0 ? { id: alice.id, name: 'Alice' } : { id: bob.id, name: 'Bob' });
    assert.match(m.inserted_at, TIME);
    assert.equal(m.attachment, null);
  }
});

test('join refused: a non-member, a room that does not exist, a socket without a token', async () => {
  const { topic } = await cc.room('members-only', [alice]);
  const s = await cc.connect(carol);
  const refused = await cc.join(s, topic);
  assert.deepEqual([refused.status, refused.response], ['error', { reason: 'not a member' }]);
  const nowhere = await cc.join(s, `room:no-such-room-${process.pid}`);
  assert.deepEqual([nowhere.status, nowhere.response], ['error', { reason: 'not a member' }],
    'a room that does not exist looks like one of others');
  // no token: the upgrade is refused, so the socket never opens
  const anon = phxSocket(cc.port, {});
  cc.sockets.push(anon);
  await assert.rejects(connect(anon));
});

test('new_msg: the reply carries the message; the others get it with author and time, the sender does not', async () => {
  const { id: room, topic } = await cc.room('talk', [alice, bob]);
  const a = await cc.subscribeAndJoin(await cc.connect(alice), topic);
  const b = await cc.subscribeAndJoin(await cc.connect(bob), topic);
  const r = await push(a.channel, 'new_msg', { body: '  hello, Bob  ' });
  assert.equal(r.status, 'ok');
  assert.deepEqual({ ...r.response, inserted_at: 'T' },
    { id: r.response.id, body: 'hello, Bob', author: { id: alice.id, name: 'Alice' }, inserted_at: 'T', attachment: null });
  assert.match(r.response.inserted_at, TIME);
  const got = await assertPush(b, 'new_msg', (p) => p.id === r.response.id);
  assert.deepEqual(got, r.response, 'the others get the message the sender was answered with');
  // Bob answers: once Alice has his message, hers would have come before it
  const back = await push(b.channel, 'new_msg', { body: 'hi Alice' });
  const before = await eventsBefore(a, 'new_msg', (p) => p.id === back.response.id);
  assert.deepEqual(before.filter((m) => m.event === 'new_msg'), [], 'broadcast_from left the sender out');
  const [row] = await sql('SELECT room_id, author_id, author_name, body FROM chat.message WHERE id = $1', [r.response.id]);
  assert.deepEqual(row, { room_id: room, author_id: alice.id, author_name: 'Alice', body: 'hello, Bob' });
});

test('validation: an empty body, 5,001 characters and a number are refused field by field; 5,000 pass', async () => {
  const val = await cc.registerUser('Val');   // a user of its own: every push counts against its rate
  const { id: room, topic } = await cc.room('checks', [val]);
  const a = await cc.subscribeAndJoin(await cc.connect(val), topic);
  assert.deepEqual(await push(a.channel, 'new_msg', { body: '' }),
    { status: 'error', response: { errors: { body: ["can't be blank"] } } });
  assert.deepEqual(await push(a.channel, 'new_msg', {}),
    { status: 'error', response: { errors: { body: ["can't be blank"] } } });
  assert.deepEqual(await push(a.channel, 'new_msg', { body: 'é'.repeat(5001) }),
    { status: 'error', response: { errors: { body: ['should be at most 5000 character(s)'] } } });
  assert.deepEqual(await push(a.channel, 'new_msg', { body: 42 }),
    { status: 'error', response: { errors: { body: ['is invalid'] } } });
  const [{ n }] = await sql('SELECT count(*)::int AS n FROM chat.message WHERE room_id = $1', [room]);
  assert.equal(n, 0, 'nothing was stored');
  const ok = await push(a.channel, 'new_msg', { body: 'é'.repeat(5000) });
  assert.equal(ok.status, 'ok');
  assert.equal(ok.response.body.length, 5000);
  assert.deepEqual(await push(a.channel, 'shout', {}),
    { status: 'error', response: { reason: 'unknown event', event: 'shout' } });
});

test('typing: the others get "typing", the typist does not, and "typing_stopped" follows by itself', async () => {
  const { topic } = await cc.room('typing', [alice, bob]);
  const a = await cc.subscribeAndJoin(await cc.connect(alice), topic);
  const b = await cc.subscribeAndJoin(await cc.connect(bob), topic);
  assert.deepEqual(await push(a.channel, 'typing', {}), { status: 'ok', response: {} });
  assert.deepEqual(await assertPush(b, 'typing'), { key: alice.id });
  // 3 s after the last push, from the database's pubsub worker, to everyone
  assert.deepEqual(await assertPush(b, 'typing_stopped'), { key: alice.id });
  const before = await eventsBefore(a, 'typing_stopped', (p) => p.key === alice.id);
  assert.deepEqual(before.filter((m) => m.event === 'typing'), [], 'the typist was not told it types');
});

test('rate limit: the 11th message within a second gets {reason: "rate_limited", retry_after}', async () => {
  const dave = await cc.registerUser('Dave');
  const { id: room, topic } = await cc.room('flood', [dave]);
  const d = await cc.subscribeAndJoin(await cc.connect(dave), topic);
  // sent at once; the gateway runs one socket's pushes in order
  const replies = await Promise.all(
    Array.from({ length: 11 }, (_, i) => push(d.channel, 'new_msg', { body: `flood ${i + 1}` })));
  assert.deepEqual(replies.slice(0, 10).map((r) => r.status), Array(10).fill('ok'));
  const last = replies[10];
  assert.equal(last.status, 'error');
  assert.equal(last.response.reason, 'rate_limited');
  assert.equal(last.response.message, 'at most 10 messages per second');
  assert.ok(Number.isInteger(last.response.retry_after) && last.response.retry_after >= 1, JSON.stringify(last));
  const [{ n }] = await sql('SELECT count(*)::int AS n FROM chat.message WHERE room_id = $1', [room]);
  assert.equal(n, 10);
});

test('attachment: a job stores the file, and the room gets an "attachment" event with its URL', async () => {
  const { topic } = await cc.room('files', [alice, bob]);
  const a = await cc.subscribeAndJoin(await cc.connect(alice), topic);
  const b = await cc.subscribeAndJoin(await cc.connect(bob), topic);
  const bytes = randomBytes(3000);
  const r = await push(a.channel, 'attach', {
    name: 'notes v1.txt', content_type: 'Text/Plain', data: bytes.toString('base64'), body: 'the notes',
  });
  assert.equal(r.status, 'ok', JSON.stringify(r));
  const att = r.response.attachment;
  assert.deepEqual({ ...att, id: 0 },
    { id: 0, name: 'notes v1.txt', content_type: 'text/plain', size: 3000, state: 'pending', url: null });
  assert.equal(r.response.body, 'the notes');
  assert.deepEqual(await assertPush(b, 'new_msg', (p) => p.id === r.response.id), r.response);
  const url = `/uploads/${att.id}/notes%20v1.txt`;
  const expected = {
    id: att.id, message_id: r.response.id, url, name: 'notes v1.txt', content_type: 'text/plain', size: 3000,
  };
  // the job broadcasts with pgapp.broadcast: the sender gets it too
  assert.deepEqual(await assertPush(b, 'attachment', (p) => p.id === att.id), expected);
  assert.deepEqual(await assertPush(a, 'attachment', (p) => p.id === att.id), expected);
  const [blob] = await sql('SELECT key, content_type, data FROM chat.blob WHERE attachment_id = $1', [att.id]);
  assert.equal(blob.key, url.slice(1));
  assert.equal(blob.content_type, 'text/plain');
  assert.ok(Buffer.compare(blob.data, bytes) === 0, 'the blob holds the bytes sent');
  const [row] = await sql(`SELECT a.state, a.data IS NULL AS emptied, a.url, m.attachment_id
    FROM chat.attachment AS a JOIN chat.message AS m ON m.attachment_id = a.id WHERE a.id = $1`, [att.id]);
  assert.deepEqual(row, { state: 'stored', emptied: true, url, attachment_id: String(att.id) });
  // a later join shows the message with the stored attachment
  const again = await cc.subscribeAndJoin(await cc.connect(bob), topic);
  const shown = again.response.messages.find((m) => m.id === r.response.id);
  assert.equal(shown.attachment.url, url);
  assert.equal(shown.attachment.state, 'stored');
});

test('attachment refused: over 256 kB, bad base64, no name or type; nothing stored, no job', async () => {
  const erin = await cc.registerUser('Erin');
  const { id: room, topic } = await cc.room('bad-files', [erin]);
  const a = await cc.subscribeAndJoin(await cc.connect(erin), topic);
  const big = randomBytes(262145).toString('base64');
  assert.deepEqual(await push(a.channel, 'attach', { name: 'big.bin', content_type: 'application/octet-stream', data: big }),
    { status: 'error', response: { errors: { data: ['should be at most 262144 byte(s)'] } } });
  for (const data of ['aGVsbG8', 'aGVs bG8=', 'aGVsbG8=\n', 'aGVsbG8*', '====']) {
    assert.deepEqual(await push(a.channel, 'attach', { name: 'x.txt', content_type: 'text/plain', data }),
      { status: 'error', response: { errors: { data: ['is not valid base64'] } } }, JSON.stringify(data));
  }
  const r = await push(a.channel, 'attach', { name: '../etc/passwd', content_type: 'text', data: '' });
  assert.deepEqual(r, { status: 'error', response: { errors: {
    name: ['has invalid format'], content_type: ['has invalid format'], data: ["can't be blank"] } } });
  const [{ n }] = await sql(`SELECT (SELECT count(*) FROM chat.attachment WHERE room_id = $1)
    + (SELECT count(*) FROM chat.message WHERE room_id = $1) AS n`, [room]);
  assert.equal(Number(n), 0);
});

test('a member removed while joined: its next push is refused, and it cannot join again', async () => {
  const { id: room, topic } = await cc.room('kick', [alice, carol]);
  const s = await cc.connect(carol);
  const c = await cc.subscribeAndJoin(s, topic);
  assert.equal((await push(c.channel, 'new_msg', { body: 'before' })).status, 'ok');
  await sql('DELETE FROM chat.member WHERE room_id = $1 AND user_id = $2', [room, carol.id]);
  assert.deepEqual(await push(c.channel, 'new_msg', { body: 'after' }),
    { status: 'error', response: { reason: 'not a member' } });
  const again = await cc.join(await cc.connect(carol), topic);
  assert.deepEqual(again.response, { reason: 'not a member' });
});

test('presence: two users online in the Presence list with their names, and the leave\'s diff', async () => {
  const { topic } = await cc.room('online', [alice, bob]);
  const a = await cc.subscribeAndJoin(await cc.connect(alice), topic, {}, { presence: true });
  await a.presence.waitFor((list) => list.some((p) => p.id === alice.id), 'alice listed');
  const b = await cc.subscribeAndJoin(await cc.connect(bob), topic, {}, { presence: true });
  const names = (list) => list.map((p) => [p.id, p.metas.map((m) => m.name)]).sort();
  const both = [[alice.id, ['Alice']], [bob.id, ['Bob']]].sort();
  const seenByAlice = await a.presence.waitFor((list) => list.length === 2, 'two users for alice');
  assert.deepEqual(names(seenByAlice), both);
  const seenByBob = await b.presence.waitFor((list) => list.length === 2, 'two users for bob');
  assert.deepEqual(names(seenByBob), both);
  // bob leaves: alice gets a presence_diff whose leaves hold him, and her list is herself
  const left = assertPush(a, 'presence_diff', (d) => d.leaves && d.leaves[bob.id]);
  await new Promise((resolve) => { b.channel.leave().receive('ok', resolve); });
  const diff = await left;
  assert.deepEqual(diff.leaves[bob.id].metas.map((m) => m.name), ['Bob']);
  assert.deepEqual(diff.joins, {});
  const after = await a.presence.waitFor((list) => list.length === 1, 'bob gone for alice');
  assert.deepEqual(names(after), [[alice.id, ['Alice']]]);
});
