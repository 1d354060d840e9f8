// test/gateway/restart.test.js: the phoenix client and pgapp-gateway through
// restarts.  The gateway restarting: the client reconnects and rejoins by
// itself, and broadcasts reach it again.  The database restarting (pg_ctl
// restart of the suite's cluster, LIVE_DATA): the gateway reconnects,
// reloads its channels and LISTENs again, the joined sockets stay joined and
// get the broadcasts committed after it, and new joins work.  Runs alone:
// the suite runs its files one at a time (--test-concurrency=1).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  BIN, PORT0, closeDb, connect, join, nextClose, nextEvent, phxSocket, sql, startGateway, token,
} from './helpers.js';

const sockets = [];
const gateways = [];

async function gateway(port, flags) {
  const gw = await startGateway(port, flags);
  gateways.push(gw);
  return gw;
}

after(async () => {
  for (const s of sockets) s.disconnect();
  for (const gw of gateways) await gw.stop();
  await closeDb();
});

// Join channel; returns a function giving a promise of the n-th "ok" reply
// of its join (the first join, then each rejoin).
function joins(channel) {
  const oks = [];
  const waiting = new Map();
  channel.join().receive('ok', (response) => {
    oks.push(response);
    waiting.get(oks.length)?.(response);
  });
  return (n) => (oks.length >= n ? Promise.resolve(oks[n - 1])
    : new Promise((resolve) => waiting.set(n, resolve)));
}

test('the gateway restarts: the client reconnects, rejoins and gets broadcasts again', async () => {
  const port = PORT0 + 20;
  let gw = await gateway(port);
  const s = phxSocket(port, { token: await token('alice') },
    { reconnectAfterMs: () => 20, rejoinAfterMs: () => 20 });
  sockets.push(s);
  await connect(s);
  const ch = s.channel('news');
  const joined = joins(ch);
  await joined(1);
  const first = nextEvent(ch, 'before');
  await sql("SELECT pgapp.broadcast('news', 'before', '{\"n\": 1}')");
  assert.deepEqual(await first, { n: 1 });

  const closed = nextClose(s);
  await gw.stop();
  const ev = await closed;
  assert.notEqual(ev.code, 1000, 'the client saw its socket lost, not closed by itself');
  assert.equal(ch.state === 'joined', false, 'the channel is not joined while the gateway is away');

  gw = await gateway(port);
  await joined(2);
  assert.equal(ch.state, 'joined');
  const again = nextEvent(ch, 'after');
  await sql("SELECT pgapp.broadcast('news', 'after', '{\"n\": 2}')");
  assert.deepEqual(await again, { n: 2 });
  await gw.stop();
});

test('the database restarts: the gateway reconnects, LISTENs again, joined sockets keep getting broadcasts', async () => {
  const data = process.env.LIVE_DATA;
  assert.ok(data, 'LIVE_DATA names the suite cluster\'s data directory');
  const port = PORT0 + 21;
  const gw = await gateway(port);
  const s = phxSocket(port, { token: await token('bob') });
  sockets.push(s);
  await connect(s);
  const ch = s.channel('news');
  assert.equal((await join(ch)).status, 'ok');
  // a token signed now: the restart does not change the secret (ALTER SYSTEM)
  const later = await token('alice');

  await closeDb(); // this test's own connection would be terminated
  const relistened = Promise.all([
    gw.waitFor(/LISTEN news done/), gw.waitFor(/channels? loaded/),
    gw.waitFor(/request connection 0 ready/), gw.waitFor(/request connection 1 ready/)]);
  execFileSync(path.join(BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'restart'], { stdio: 'ignore' });
  await relistened;
  assert.equal(ch.state, 'joined', 'the socket stayed joined through the restart');

  const m = nextEvent(ch, 'back');
  await sql("SELECT pgapp.broadcast('news', 'back', '{\"after\": \"restart\"}')");
  assert.deepEqual(await m, { after: 'restart' });

  // requests run again: a new socket joins a members-only room
  const t = phxSocket(port, { token: later });
  sockets.push(t);
  await connect(t);
  assert.equal((await join(t.channel('room:lobby'))).status, 'ok');
});
