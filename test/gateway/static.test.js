// test/gateway/static.test.js: --static DIR, the gateway serving a
// directory's files at "/" beside the socket: MIME types, GET and HEAD only,
// no way out of DIR (.., encoded .., hidden files, a symbolic link that leads
// out), /health never shadowed, the socket unaffected.  Ports PORT0 + 22,
// PORT0 + 23 and PORT0 + 24 (test/gateway/helpers.js lists every file's).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  BIN, PORT0, closeDb, connect, join, phxSocket, startGateway, token,
} from './helpers.js';

const PORT = PORT0 + 22;
const PLAIN = PORT0 + 23;
const SECRET = 'outside-secret-7f3a';
let tmp;
let gw;
let plain;

before(async () => {
  // tmp/web is served; tmp/secret.txt is beside it, outside
  tmp = mkdtempSync(path.join(os.tmpdir(), 'pgapp-gw-static-'));
  const web = path.join(tmp, 'web');
  mkdirSync(path.join(web, 'sub'), { recursive: true });
  mkdirSync(path.join(web, 'empty'));
  mkdirSync(path.join(web, '.git'));
  writeFileSync(path.join(web, 'index.html'), '<!doctype html><title>home</title>\n');
  writeFileSync(path.join(web, 'app.mjs'), 'export const x = 1;\n');
  writeFileSync(path.join(web, 'style.css'), 'body { color: black; }\n');
  writeFileSync(path.join(web, 'data.json'), '{"a": 1}\n');
  writeFileSync(path.join(web, 'sub', 'index.html'), '<p>sub</p>\n');
  writeFileSync(path.join(web, 'health'), 'a file named health\n');
  writeFileSync(path.join(web, 'notes.sql'), 'SELECT 1;\n');
  writeFileSync(path.join(web, '.env'), `TOKEN=${SECRET}\n`);
  writeFileSync(path.join(web, '.git', 'config'), `${SECRET}\n`);
  writeFileSync(path.join(tmp, 'secret.txt'), `${SECRET}\n`);
  symlinkSync(path.join(tmp, 'secret.txt'), path.join(web, 'out.txt'));
  symlinkSync(path.join(web, 'app.mjs'), path.join(web, 'in.mjs'));
  gw = await startGateway(PORT, ['--static', web]);
  plain = await startGateway(PLAIN);
});

after(async () => {
  await gw.stop();
  await plain.stop();
  await closeDb();
  rmSync(tmp, { recursive: true, force: true });
});

// One raw HTTP/1.0 request, the path sent exactly as given (fetch would
// normalise "..").  Resolves with {status, headers, body}.
function raw(port, method, target) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    sock.on('connect', () => sock.write(`${method} ${target} HTTP/1.0\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString();
      const [head, ...rest] = text.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(lines[0].split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
  });
}

test('--static serves the directory at / with its MIME types, index.html for a directory', async () => {
  const cases = [
    ['/', 'text/html; charset=utf-8', '<!doctype html><title>home</title>\n'],
    ['/index.html', 'text/html; charset=utf-8', '<!doctype html><title>home</title>\n'],
    ['/app.mjs', 'text/javascript; charset=utf-8', 'export const x = 1;\n'],
    ['/style.css', 'text/css; charset=utf-8', 'body { color: black; }\n'],
    ['/data.json', 'application/json', '{"a": 1}\n'],
    ['/sub/', 'text/html; charset=utf-8', '<p>sub</p>\n'],
    ['/sub', 'text/html; charset=utf-8', '<p>sub</p>\n'],
    ['/in.mjs', 'text/javascript; charset=utf-8', 'export const x = 1;\n'], // a link inside
  ];
  for (const [p, type, body] of cases) {
    const res = await fetch(`http://127.0.0.1:${PORT}${p}`);
    assert.equal(res.status, 200, p);
    assert.equal(res.headers.get('content-type'), type, p);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', p);
    assert.equal(await res.text(), body, p);
  }
  // an extension that is not a web page's: refused
  assert.equal((await fetch(`http://127.0.0.1:${PORT}/notes.sql`)).status, 415);
  // missing, and a directory without index.html: 404, no listing
  assert.equal((await fetch(`http://127.0.0.1:${PORT}/missing.html`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${PORT}/empty/`)).status, 404);
});

test('no way out of the directory: .., encoded .., hidden files, a symbolic link leading out', async () => {
  const attempts = [
    '/../secret.txt',
    '/../../../../../../etc/passwd',
    '/sub/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E%2Fsecret.txt',
    '/..%2fsecret.txt',
    '/sub/%2e%2e/%2e%2e/secret.txt',
    '/....//secret.txt',
    '/.env',
    '/.git/config',
    '/sub/../.env',
    '/out.txt',
    `/${'a/'.repeat(150)}x.html`,
  ];
  for (const target of attempts) {
    const res = await raw(PORT, 'GET', target);
    assert.ok(res.status === 404 || res.status === 403 || res.status === 400, `${target}: ${res.status}`);
    assert.ok(!res.body.includes(SECRET), `${target} leaked the file`);
    assert.ok(!res.body.includes('root:'), `${target} leaked /etc/passwd`);
  }
});

test('GET and HEAD only: other methods get 405 with Allow', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const res = await raw(PORT, method, '/index.html');
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.allow, 'GET, HEAD', method);
  }
  const head = await raw(PORT, 'HEAD', '/index.html');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(head.body, '');
  // without --static as well
  assert.equal((await raw(PLAIN, 'POST', '/health')).status, 405);
});

test('/health is the gateway\'s even when the directory has a file named health', async () => {
  const res = await fetch(`http://127.0.0.1:${PORT}/health`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json');
  assert.equal((await res.json()).status, 'ok');
});

test('the socket works beside the files', async () => {
  const s = phxSocket(PORT, { token: await token('alice') });
  await connect(s);
  const ch = s.channel('news');
  assert.equal((await join(ch)).status, 'ok');
  s.disconnect();
});

test('without --static nothing but /health is served', async () => {
  assert.equal((await fetch(`http://127.0.0.1:${PLAIN}/`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${PLAIN}/index.html`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${PLAIN}/health`)).status, 200);
});

test('--static with a path that is not a directory: the gateway does not start', async () => {
  const proc = spawn(process.env.GATEWAY_BIN || path.join(BIN, 'pgapp-gateway'),
    ['--port', String(PORT0 + 24), '--static', path.join(tmp, 'secret.txt')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const [code] = await once(proc, 'exit');
  assert.equal(code, 2);
  assert.match(err, /--static: ".*secret\.txt" is not a directory/);
});
