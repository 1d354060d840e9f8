// test/gateway/frames.test.js: the frames the gateway writes.  A broadcast is
// encoded once as a complete WebSocket frame and the frames queued on a
// socket go out together in one write: every length encoding (7-bit,
// 16-bit, 64-bit) arrives intact, and a burst of broadcasts committed at once
// reaches every socket complete and in commit order.  Port PORT0 + 14.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  PORT0, closeDb, rawFrame, rawSocket, sql, startGateway, token,
} from './helpers.js';

const PORT = PORT0 + 14;
let gw;

before(async () => {
  gw = await startGateway(PORT);
});

after(async () => {
  await gw.stop();
  await closeDb();
});

// A raw socket joined to topic: {ws, got, count(n)}: got fills with the
// broadcasts it receives (decoded), count(n) resolves once it has n.
async function joined(topic) {
  const { ws } = await rawSocket(PORT, `token=${await token('alice')}&vsn=2.0.0`);
  const reply = rawFrame(ws);
  ws.send(JSON.stringify(['1', '1', topic, 'phx_join', {}]));
  assert.equal((await reply)[4].status, 'ok');
  const got = [];
  let waiting = null;
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m[0] === null && m[1] === null) got.push(m);
    if (waiting && got.length >= waiting.n) waiting.resolve();
  });
  const count = (n) => new Promise((resolve) => {
    if (got.length >= n) resolve();
    else waiting = { n, resolve };
  });
  return { ws, got, count };
}

test('every frame length encoding: 7-bit, 16-bit and 64-bit lengths arrive intact', async () => {
  const { ws, got, count } = await joined('news');
  // payload text of about 20 bytes, 1,000 bytes, 70,000 bytes (the last is stored
  // and fetched with pgapp.message, then sent as one frame)
  const sizes = [20, 1000, 70000];
  for (const n of sizes) {
    await sql("SELECT pgapp.broadcast('news', 'sized', jsonb_build_object('body', repeat('x', $1)))", [n]);
  }
  await count(sizes.length);
  assert.deepEqual(got.map((m) => [m[2], m[3], m[4].body.length]), sizes.map((n) => ['news', 'sized', n]));
  ws.close();
});

test('a burst committed at once reaches every socket complete and in order', async () => {
  const socks = [];
  for (let i = 0; i < 5; i++) socks.push(await joined('news'));
  // 200 broadcasts in one transaction: delivered together at its commit, so
  // they are queued together and written in batches
  await sql(`SELECT pgapp.broadcast('news', 'burst', jsonb_build_object('seq', i, 'pad', repeat('p', (i % 7) * 100)), 'direct')
             FROM generate_series(1, 200) AS i`);
  await Promise.all(socks.map((s) => s.count(200)));
  for (const { ws, got } of socks) {
    assert.deepEqual(got.map((m) => m[4].seq), Array.from({ length: 200 }, (_, i) => i + 1));
    assert.ok(got.every((m) => m[3] === 'burst' && m[4].pad.length === (m[4].seq % 7) * 100));
    ws.close();
  }
});
