// test/gateway/limits.test.js: pgapp-gateway's safety settings: the
// largest message, allowed origins, the connection cap and the bounded
// send queue (a slow consumer is cut off).  Each runs its own gateway.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  CONNINFO, PORT0, closeDb, connect, health, join, nextClose, phxSocket, push, rawClose, rawFrame,
  rawSocket, sql, startGateway, token,
} from './helpers.js';

const gateways = [];
async function gateway(port, flags, ready) {
  const gw = await startGateway(port, flags, ready);
  gateways.push(gw);
  return gw;
}

after(async () => {
  for (const gw of gateways) {
    const t0 = Date.now();
    await gw.stop();
    if (process.env.GATEWAY_TRACE) console.error(`# stopped ${gw.port} in ${Date.now() - t0} ms`);
  }
  await closeDb();
});

test('a message over --max-message closes the socket with 1009, before it is buffered', async () => {
  const port = PORT0 + 2;
  await gateway(port, ['--max-message', '1024']);
  const t = await token('alice');
  const { ws } = await rawSocket(port, `token=${t}&vsn=2.0.0`);
  // under the limit: handled
  const reply = rawFrame(ws);
  ws.send(JSON.stringify([null, '1', 'phoenix', 'heartbeat', { pad: 'x'.repeat(900) }]));
  assert.deepEqual(await reply, [null, '1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]);
  const closed = rawClose(ws);
  ws.send(JSON.stringify([null, '2', 'phoenix', 'heartbeat', { pad: 'x'.repeat(2000) }]));
  assert.deepEqual(await closed, { code: 1009, reason: 'message too big' });

  // the phoenix client: a push too large ends its socket the same way
  const s = phxSocket(port, { token: t });
  await connect(s);
  const ch = s.channel('news');
  assert.equal((await join(ch)).status, 'ok');
  const sclosed = nextClose(s);
  ch.push('big', { body: 'y'.repeat(5000) });
  assert.equal((await sclosed).code, 1009);
  s.disconnect();
});

test('--origins: a WebSocket upgrade from another Origin is refused with 403', async () => {
  const port = PORT0 + 3;
  await gateway(port, ['--origins', 'https://app.example, https://admin.example']);
  const q = `token=${await token('alice')}&vsn=2.0.0`;
  assert.equal((await rawSocket(port, q, { Origin: 'https://evil.example' })).status, 403);
  assert.equal((await rawSocket(port, q, { Origin: 'https://app.example.evil.example' })).status, 403);
  const ok1 = await rawSocket(port, q, { Origin: 'https://app.example' });
  const ok2 = await rawSocket(port, q, { Origin: 'https://admin.example' });
  assert.ok(ok1.ws && ok2.ws, 'the listed origins are let in');
  const noOrigin = await rawSocket(port, q);
  assert.ok(noOrigin.ws, 'a client that sends no Origin (not a browser) is let in');
  for (const { ws } of [ok1, ok2, noOrigin]) ws.close();
});

test('without --origins, only the same origin (Origin host = Host) is let in', async () => {
  const port = PORT0 + 2; // the first gateway of this file
  const q = `token=${await token('alice')}&vsn=2.0.0`;
  assert.equal((await rawSocket(port, q, { Origin: 'http://evil.example' })).status, 403);
  const same = await rawSocket(port, q, { Origin: `http://127.0.0.1:${port}` });
  assert.ok(same.ws);
  same.ws.close();
});

test('--max-connections: the next upgrade is refused with 503 until a socket leaves', async () => {
  const port = PORT0 + 4;
  await gateway(port, ['--max-connections', '2']);
  const q = `token=${await token('alice')}&vsn=2.0.0`;
  const a = await rawSocket(port, q);
  const b = await rawSocket(port, q);
  assert.ok(a.ws && b.ws);
  assert.equal((await rawSocket(port, q)).status, 503);
  const h = await health(port);
  assert.equal(h.body.sockets, 2);
  const gone = rawClose(a.ws);
  a.ws.close();
  await gone;
  // the server counts the close once its side has closed too: a heartbeat
  // round trip on b happens after that
  const r = rawFrame(b.ws);
  b.ws.send(JSON.stringify([null, '1', 'phoenix', 'heartbeat', {}]));
  await r;
  const c = await rawSocket(port, q);
  assert.ok(c.ws, 'a place was free again');
  b.ws.close();
  c.ws.close();
});

test('a slow consumer: past --max-queue bytes waiting, its socket is cut off', async () => {
  const port = PORT0 + 5;
  const gw = await gateway(port, ['--max-queue', '4194304']);
  const t = await token('alice');
  const { ws } = await rawSocket(port, `token=${t}&vsn=2.0.0`);
  const r = rawFrame(ws);
  ws.send(JSON.stringify(['1', '1', 'news', 'phx_join', {}]));
  assert.equal((await r)[4].status, 'ok');
  // stop reading: the kernel's buffers fill, then the gateway's queue
  ws._socket.pause();
  const closed = rawClose(ws);
  const cut = gw.waitFor(/socket \d+: send queue over 4194304 bytes, closing a slow consumer/);
  await sql(`SELECT pgapp.broadcast('news', 'flood', jsonb_build_object('n', i, 'pad', repeat('z', 100000)))
               FROM generate_series(1, 200) AS i`);
  await cut;
  ws._socket.resume();
  const { code } = await closed;
  assert.equal(code, 1006, 'killed without a close frame');
  const h = await health(port);
  assert.equal(h.body.slow_consumers_closed, 1);
  assert.equal(h.body.sockets, 0);
  // the gateway goes on serving others
  const fast = phxSocket(port, { token: t });
  await connect(fast);
  const fch = fast.channel('news');
  assert.equal((await join(fch)).status, 'ok');
  assert.deepEqual(await push(fch, 'x', {}), { status: 'error', response: { reason: 'no handle_in' } });
  fast.disconnect();
});

test('--idle-timeout: a client that sends nothing is closed with 1001', async () => {
  const gw = await gateway(PORT0 + 6, ['--idle-timeout', '1']);
  const { ws } = await rawSocket(gw.port, `token=${await token('alice')}&vsn=2.0.0`);
  assert.deepEqual(await rawClose(ws), { code: 1001, reason: 'idle timeout' });
});

test('a gateway logged in as a superuser warns that any token role would be accepted', async () => {
  const superuser = CONNINFO.replace('user=gw_authenticator', `user=${process.env.PGUSER}`);
  const gw = await gateway(PORT0 + 7, ['--db', superuser]);
  assert.ok(gw.lines.some((l) => /warning: connected as a superuser/.test(l)), gw.lines.join('\n'));
  const quiet = gateways.find((g) => g.port === PORT0 + 2);
  assert.ok(!quiet.lines.some((l) => /superuser/.test(l)), 'an authenticator role gets no warning');
});

test('/health answers 503 "degraded" while the database cannot be reached, and the gateway keeps trying', async () => {
  const nowhere = CONNINFO.replace(/dbname=\S+/, 'dbname=pgapp_gateway_no_such_database');
  const gw = await gateway(PORT0 + 8, ['--db', nowhere], /database listener connection failed/);
  const h = await health(gw.port);
  assert.equal(h.status, 503);
  assert.equal(h.body.status, 'degraded');
  assert.equal(h.body.database.connected, false);
  await gw.waitFor(/database (listener|request) connection failed/); // and again, later
  // a client is let in (the upgrade needs no database) but its token waits
  const { ws } = await rawSocket(gw.port, `token=${await token('alice')}&vsn=2.0.0`);
  assert.ok(ws);
  const h2 = await health(gw.port);
  assert.equal(h2.body.database.pending, 1, 'the token check waits for a connection');
  ws.close();
});
