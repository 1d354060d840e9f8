// test/gateway/hostile.test.js: what an attacker's client can send, frame by
// frame: nothing it sends crashes the gateway or grows it without bound, and
// each socket gets the answer the protocol gives (a close code, an error
// reply).  After every barrage the gateway still serves others.  (Run with
// GATEWAY_BIN set to a -fsanitize=address,undefined build to check memory
// errors as well.)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  PORT0, closeDb, health, rawClose, rawFrame, rawSocket, startGateway, token,
} from './helpers.js';

const PORT = PORT0 + 16;
let gw;
let q;

before(async () => {
  gw = await startGateway(PORT, ['--max-channels', '5']);
  q = `token=${await token('mallory')}&vsn=2.0.0`;
});

after(async () => {
  await gw.stop();
  await closeDb();
});

async function alive() {
  const { ws } = await rawSocket(PORT, q);
  const r = rawFrame(ws);
  ws.send(JSON.stringify([null, 'alive', 'phoenix', 'heartbeat', {}]));
  assert.deepEqual(await r, [null, 'alive', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
  ws.close();
  assert.equal((await health(PORT)).body.status, 'ok');
}

// the frames a socket gets after sending text, until it closes
async function sendAndClose(text) {
  const { ws } = await rawSocket(PORT, q);
  const closed = rawClose(ws);
  ws.send(text);
  return closed;
}

test('frames that are not V2 messages close the socket (1007), whatever they hold', async () => {
  const bad = [
    'not json', '{}', '[]', '[1,2,3,4,5]', 'null', '"text"',
    JSON.stringify([1, '1', 'news', 'phx_join', {}]), // join_ref a number
    JSON.stringify([null, { ref: 1 }, 'news', 'phx_join', {}]), // ref an object
    JSON.stringify([null, '1', ['news'], 'phx_join', {}]), // topic an array
    JSON.stringify([null, '1', 'news', 7, {}]), // event a number
    JSON.stringify([null, '1', 'news', 'phx_join', {}, 'extra']),
    '[null, "1", "news", "phx_join", {"a": 1, "a": 2}]', // duplicate keys
    '[null, "1", "news\\u0000x", "phx_join", {}]', // NUL in a string
    '['.repeat(5000) + ']'.repeat(5000), // deep nesting
    `[null, "1", "news", "echo", ${'['.repeat(3000)}${']'.repeat(3000)}]`,
  ];
  for (const text of bad) {
    const { code } = await sendAndClose(text);
    assert.equal(code, 1007, text.slice(0, 60));
  }
  await alive();
});

test('text that is not UTF-8, and binary frames, close the socket', async () => {
  const { ws } = await rawSocket(PORT, q);
  const closed = rawClose(ws);
  ws.send(Buffer.from([0x5b, 0xff, 0xfe, 0x5d]), { binary: false });
  assert.equal((await closed).code, 1007);
  const b = await rawSocket(PORT, q);
  const bclosed = rawClose(b.ws);
  b.ws.send(Buffer.from('[null,"1","phoenix","heartbeat",{}]'), { binary: true });
  assert.equal((await bclosed).code, 1003);
  await alive();
});

test('odd but well-formed messages get error replies and change nothing', async () => {
  const { ws } = await rawSocket(PORT, q);
  const replies = [];
  let wake;
  ws.on('message', (d) => { replies.push(JSON.parse(d.toString())); if (wake) wake(); });
  const until = (n) => new Promise((resolve) => {
    const check = () => (replies.length >= n ? resolve() : (wake = check));
    check();
  });
  const sent = [
    ['1', '1', 'x'.repeat(300), 'phx_join', {}], // a topic over 255 bytes
    ['2', '2', 'phoenix', 'phx_join', {}], // the heartbeat topic
    ['3', '3', '', 'phx_join', {}],
    ['7', '7', 'room:nowhere', 'phx_leave', {}], // leave of a topic not joined
    ['4', '4', 'news', 'phx_join', 'not an object'], // params not an object: {}
    ['9', '9', 'phoenix', 'phx_close', {}], // topic phoenix: heartbeats only
  ];
  for (const f of sent) ws.send(JSON.stringify(f));
  await until(sent.length);
  const byRef = () => Object.fromEntries(replies.filter((r) => r[3] === 'phx_reply').map((r) => [r[1], r[4]]));
  assert.deepEqual(byRef()['1'], { status: 'error', response: { reason: 'unmatched topic' } });
  assert.deepEqual(byRef()['2'], { status: 'error', response: { reason: 'unmatched topic' } });
  assert.deepEqual(byRef()['3'], { status: 'error', response: { reason: 'unmatched topic' } });
  assert.deepEqual(byRef()['7'], { status: 'error', response: { reason: 'unmatched topic' } });
  assert.deepEqual(byRef()['9'], { status: 'error', response: { reason: 'unmatched topic' } });
  assert.deepEqual(byRef()['4'], { status: 'ok', response: {} });
  // joined: a long event (no handle_in here), a server event sent by a
  // client, and a leave naming an earlier join_ref (dropped, as Phoenix does)
  const more = [
    ['4', '5', 'news', 'e'.repeat(1000), {}],
    ['4', '8', 'news', 'phx_reply', {}],
    ['old', '6', 'news', 'phx_leave', {}],
    ['4', '10', 'news', 'still_joined', {}],
  ];
  for (const f of more) ws.send(JSON.stringify(f));
  await until(sent.length + 3);
  assert.deepEqual(byRef()['5'], { status: 'error', response: { reason: 'no handle_in' } });
  assert.deepEqual(byRef()['8'], { status: 'error', response: { reason: 'no handle_in' } });
  assert.equal(byRef()['6'], undefined, 'the stale leave got no reply');
  assert.deepEqual(byRef()['10'], { status: 'error', response: { reason: 'no handle_in' } },
    'and the channel is still joined (not "unmatched topic")');
  ws.close();
  await alive();
});

test('many joins: past --max-channels each gets "too many channels"; churn leaves nothing behind', async () => {
  const { ws } = await rawSocket(PORT, q);
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
  for (let i = 0; i < 12; i++) {
    ws.send(JSON.stringify([`j${i}`, `j${i}`, `room:x${i}`, 'phx_join', {}]));
    await reply(`j${i}`);
  }
  const reasons = [...replies.values()].map((r) => r.response.reason);
  // room:x* joins are refused by the function (not a member), so none is kept:
  // each gets the function's error
  assert.ok(reasons.every((r) => r === 'not a member'), JSON.stringify(reasons));
  // topics that let anyone in: 5 kept, the next refused
  const topics = ['news', 'pres:h1', 'pres:h2', 'pres:h3', 'pres:h4', 'pres:h5', 'pres:h6'];
  for (const [i, t] of topics.entries()) ws.send(JSON.stringify([`k${i}`, `k${i}`, t, 'phx_join', {}]));
  const last = await reply(`k${topics.length - 1}`);
  assert.deepEqual(last, { status: 'error', response: { reason: 'too many channels' } });
  const h = await health(PORT);
  assert.ok(h.body.topics >= 5);
  const gone = rawClose(ws);
  ws.close();
  await gone;
  // a heartbeat round trip on another socket: the close has been handled
  await alive();
  assert.equal((await health(PORT)).body.topics, 0, 'every topic of the closed socket is gone');
});

test('a storm of sockets that connect and drop at once leaves no socket behind', async () => {
  const all = [];
  for (let i = 0; i < 50; i++) {
    all.push(rawSocket(PORT, q).then(({ ws }) => {
      ws.send(JSON.stringify(['1', '1', 'pres:storm', 'phx_join', {}]));
      ws.terminate();
    }));
  }
  await Promise.all(all);
  await alive();
  // the storm's sockets go as the gateway sees them close; health counts them out
  for (;;) {
    const h = await health(PORT);
    if (h.body.sockets === 0) break;
    await alive();
  }
});
