// test/gateway/settings.test.js: the per-socket rate limit (pgapp's
// limiter), tokens that expire while their socket is open, and the
// configuration: --config FILE, the environment and flags, in that order of
// strength, and the errors (status 2) for what is wrong in them.  Each test
// runs its own gateway.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import {
  CONNINFO, PORT0, closeDb, connect, health, join, nextClose, phxSocket, push, rawSocket, runGateway,
  sql, startGateway, token,
} from './helpers.js';

const gateways = [];
const sockets = [];
const dir = mkdtempSync(path.join(tmpdir(), 'pgapp-gateway-settings-'));

async function gateway(port, flags, ready, opts) {
  const gw = await startGateway(port, flags, ready, opts);
  gateways.push(gw);
  return gw;
}

async function user(port, sub, claims, ttl) {
  const s = phxSocket(port, { token: await token(sub, claims, ttl) });
  sockets.push(s);
  await connect(s);
  return s;
}

function file(name, text) {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

after(async () => {
  for (const s of sockets) s.disconnect();
  for (const gw of gateways) await gw.stop();
  await closeDb();
});

test('--rate-limit: past N joins and pushes a window, the reply is {"reason": "rate limited", "retry_after": s}', async () => {
  const port = PORT0 + 11;
  await gateway(port, ['--rate-limit', '4', '--rate-window', '60']);
  const s = await user(port, 'alice');
  const ch = s.channel('room:lobby');
  assert.equal((await join(ch)).status, 'ok'); // 1
  assert.equal((await push(ch, 'echo', { n: 1 })).status, 'ok'); // 2
  assert.equal((await push(ch, 'echo', { n: 2 })).status, 'ok'); // 3
  assert.equal((await push(ch, 'echo', { n: 3 })).status, 'ok'); // 4
  const r = await push(ch, 'echo', { n: 4 });
  assert.equal(r.status, 'error');
  assert.equal(r.response.reason, 'rate limited');
  assert.ok(Number.isInteger(r.response.retry_after) && r.response.retry_after >= 1 &&
    r.response.retry_after <= 60, JSON.stringify(r.response));
  // a join counts too, and is refused the same way (nothing ran)
  const j = await join(s.channel('news'));
  assert.equal(j.status, 'error');
  assert.equal(j.response.reason, 'rate limited');
  // the limit is the socket's: another socket of the same user is not limited
  const other = await user(port, 'alice');
  const och = other.channel('room:lobby');
  assert.equal((await join(och)).status, 'ok');
  assert.equal((await push(och, 'echo', {})).status, 'ok');
  // counted in pgapp's limiter (the default one), under a key of the gateway's
  const rows = await sql(`SELECT count(*)::int AS n FROM pgapp.rate_buckets
      WHERE key LIKE 'pgapp-gateway:%' AND max_requests = 4 AND window_seconds = 60`);
  assert.ok(rows[0].n >= 2);
});

test('a PT429 raised by the channel\'s own function (pgapp.rate_limit) gets the same reply', async () => {
  const port = PORT0 + 12;
  await gateway(port, ['--rate-limit', '0']);
  const s = await user(port, 'bob');
  const ch = s.channel('room:lobby');
  assert.equal((await join(ch)).status, 'ok');
  const key = `k${process.pid}`;
  assert.deepEqual(await push(ch, 'limited', { key }), { status: 'ok', response: {} });
  const r = await push(ch, 'limited', { key });
  assert.equal(r.status, 'error');
  assert.equal(r.response.reason, 'rate limited');
  // the function's hour-long (sliding) window: up to an hour; right after an
  // hour's boundary the estimate lets the next one in sooner, so no lower bound
  assert.ok(Number.isInteger(r.response.retry_after) && r.response.retry_after >= 1 &&
    r.response.retry_after <= 3600, `retry_after ${r.response.retry_after} is the function's window's`);
  // --rate-limit 0: no limit of the gateway's
  for (let i = 0; i < 20; i++) assert.equal((await push(ch, 'echo', { i })).status, 'ok');
});

test('a token that expires while its socket is open: the socket is closed with 1008 "token expired"', async () => {
  const port = PORT0 + 13;
  // gw_strict's sessions allow no clock skew (pgapp.auth_jwt_leeway = 0)
  const gw = await gateway(port, ['--db', CONNINFO.replace('user=gw_authenticator', 'user=gw_strict')]);
  const s = await user(port, 'alice', { role: 'gw_user' }, '2 seconds');
  const ch = s.channel('room:lobby');
  const closed = nextClose(s);
  assert.equal((await join(ch)).status, 'ok');
  const ev = await closed;
  assert.equal(ev.code, 1008);
  assert.equal(ev.reason, 'token expired');
  await gw.logged(/its token has expired, closing/);
  // and the same token is now refused at the upgrade
  const t = new URL(s.endPointURL()).searchParams.get('token');
  assert.equal((await rawSocket(port, `token=${t}&vsn=2.0.0`)).status, 403);
});

test('--config FILE: key = value lines; the environment overrides the file, flags override both', async () => {
  const port = PORT0 + 14;
  const conf = file('gateway.conf', [
    '# pgapp-gateway settings',
    '',
    `port = ${port + 100}`, // overridden by the flag below
    'host = 127.0.0.1',
    `db = "${CONNINFO}"`,
    'max-connections = 7    ',
    '  max-channels=3',
    'origins = "https://a.example, https://b.example"   # two sites',
    'verbose = 4',
    'idle-timeout = 300',
    'rate-limit = 0',
  ].join('\n'));
  await gateway(port, [], undefined, {
    args: ['--config', conf, '--port', String(port)],
    env: { PGAPP_GATEWAY_MAX_CHANNELS: '2', PGAPP_GATEWAY_IDLE_TIMEOUT: '' },
  });
  const q = `token=${await token('alice')}&vsn=2.0.0`;
  // origins from the file
  assert.equal((await rawSocket(port, q, { Origin: 'https://evil.example' })).status, 403);
  const ok = await rawSocket(port, q, { Origin: 'https://b.example' });
  assert.ok(ok.ws);
  ok.ws.close();
  // max-channels: 3 in the file, 2 in the environment: 2
  const s = await user(port, 'alice');
  assert.equal((await join(s.channel('news'))).status, 'ok');
  assert.equal((await join(s.channel('room:lobby'))).status, 'ok');
  assert.deepEqual(await join(s.channel('pres:9')), { status: 'error', response: { reason: 'too many channels' } });
  // the flag's port won (we are talking to it); max-connections came from the file
  const h = await health(port);
  assert.equal(h.body.status, 'ok');
  const conns = [];
  for (let i = 0; i < 6; i++) conns.push(await rawSocket(port, q));
  assert.equal((await rawSocket(port, q)).status, 503, 'the 8th connection of max-connections = 7');
  for (const c of conns) c.ws?.close();
});

test('PGAPP_GATEWAY_CONFIG names the file when --config is not given', async () => {
  const port = PORT0 + 15;
  const conf = file('env.conf', `port = ${port}\nhost = 127.0.0.1\ndb = ${CONNINFO}\nverbose = 4\n`);
  await gateway(port, [], undefined, { args: [], env: { PGAPP_GATEWAY_CONFIG: conf } });
  assert.equal((await health(port)).status, 200);
});

test('a bad configuration ends the gateway with status 2 and says where', async () => {
  const cases = [
    [file('unknown.conf', 'port = 1\ncolour = blue\n'), /unknown\.conf:2: unknown setting "colour"/],
    [file('int.conf', 'max-queue = lots\n'), /int\.conf:1: max-queue must be an integer from 1024 to 1073741824, not "lots"/],
    [file('range.conf', 'presence-ttl = 1\n'), /range\.conf:1: presence-ttl must be an integer from 2 to 86400, not "1"/],
    [file('noeq.conf', '# fine\nport 4000\n'), /noeq\.conf:2: expected key = value, got "port 4000"/],
    [file('quote.conf', 'origins = "https://a.example\n'), /quote\.conf:1: no closing quote in the value of "origins"/],
    [file('after.conf', 'db = "x" y\n'), /after\.conf:1: text after the closing quote of "db"/],
    [file('flag.conf', 'config = other.conf\n'), /flag\.conf:1: unknown setting "config"/],
    [path.join(dir, 'missing.conf'), /cannot read the configuration file ".*missing\.conf": No such file or directory/],
  ];
  for (const [conf, message] of cases) {
    const r = await runGateway(['--config', conf]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  }
  // the environment and flags are checked the same way
  let r = await runGateway([], { PGAPP_GATEWAY_RATE_LIMIT: '-1' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /PGAPP_GATEWAY_RATE_LIMIT must be an integer from 0 to 1000000, not "-1"/);
  r = await runGateway(['--rate-window', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--rate-window must be an integer from 1 to 86400, not "0"/);
  r = await runGateway(['--rate-limiter', '']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /rate-limiter must name a limiter/);
  r = await runGateway(['--colour', 'blue']);
  assert.equal(r.code, 2);
});
