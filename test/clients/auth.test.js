// test/clients/auth.test.js: pgapp's HS256 tokens against an independent
// implementation (Node's node:crypto, nothing else), printing TAP.
//
// What PostgREST does with a bearer token is done here by hand: split,
// base64url-decode, check the header, HMAC-SHA256 with the shared secret,
// compare, check exp/nbf/iat with 30 s of leeway.  Tokens made by
// pgapp.encode_token must pass it, and tokens made here must pass
// pgapp.decode_token, with the same claims.  The key set (a key "" for
// tokens without kid, and k1) is written into the data directory by the
// superuser connection (PG*), named by pgapp.auth_jwt_secret_file for the
// test's duration and removed at the end.  Run by "bash scripts/test clients".
'use strict';

const assert = require('assert/strict');
const crypto = require('node:crypto');
const path = require('path');
const { createRequire } = require('module');

const LIB = path.join(__dirname, '..', '..', 'examples', 'clients', 'node', 'jobs_worker.js');
const pg = createRequire(LIB)('pg'); // the examples' own pg (their node_modules)

const KEY_FILE = 'clients_jwt_keys';
const ROLE = 'clients_auth_user';
const UNNAMED = crypto.randomBytes(33).toString('base64url');
const K1 = crypto.randomBytes(33).toString('base64url');
const LEEWAY = 30;

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function sign(header, payload, secret, alg = 'sha256') {
  const input = `${b64url(JSON.stringify(header))}.${b64url(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  return `${input}.${b64url(crypto.createHmac(alg, secret).update(input).digest())}`;
}

// A verifier written from RFC 7519 and PostgREST's behaviour, sharing no code with pgapp.
function verify(token, keys) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not three segments');
  for (const p of parts) if (!/^[A-Za-z0-9_-]+$/.test(p)) throw new Error('not base64url');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  if (header.alg !== 'HS256' || header.typ !== 'JWT') throw new Error(`header ${JSON.stringify(header)}`);
  const secret = keys[header.kid ?? ''];
  if (secret === undefined) throw new Error(`no key ${header.kid}`);
  const expected = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  if (typeof claims.exp === 'number' && now() >= claims.exp + LEEWAY) throw new Error('expired');
  if (typeof claims.nbf === 'number' && now() + LEEWAY < claims.nbf) throw new Error('not yet valid');
  if (typeof claims.iat === 'number' && now() + LEEWAY < claims.iat) throw new Error('issued in the future');
  return { header, claims };
}

let admin = null; // the superuser connection that configures the key file
let db = null; // a connection opened after the reload: it sees the key file
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

async function decodeError(token) {
  try {
    await db.query('SELECT pgapp.decode_token($1)', [token]);
    return 'ok';
  } catch (err) {
    return err.code;
  }
}

test('set up: a key set in the data directory, named by pgapp.auth_jwt_secret_file', async () => {
  admin = new pg.Client();
  await admin.connect();
  const keys = JSON.stringify({ current: 'k1', keys: { '': UNNAMED, k1: K1 } });
  await admin.query(`COPY (SELECT $$${keys}$$) TO PROGRAM 'cat > ${KEY_FILE}.new && mv ${KEY_FILE}.new ${KEY_FILE}'`);
  await admin.query(`ALTER SYSTEM SET pgapp.auth_jwt_secret_file = '${KEY_FILE}'`);
  await admin.query('SELECT pg_reload_conf()');
  await admin.query(`DROP ROLE IF EXISTS ${ROLE}`);
  await admin.query(`CREATE ROLE ${ROLE} NOLOGIN`);
  db = new pg.Client();
  await db.connect(); // forked after the postmaster reloaded
  const { rows } = await db.query("SELECT current_setting('pgapp.auth_jwt_secret_file') AS f");
  assert.equal(rows[0].f, KEY_FILE);
});

test('a token of pgapp.encode_token verifies with node:crypto, with the claims pgapp set', async () => {
  const { rows } = await db.query(
    "SELECT pgapp.encode_token('alice', jsonb_build_object('role', $1::text, 'plan', 'pro'), '15 minutes') AS t", [ROLE]);
  const token = rows[0].t;
  assert.doesNotMatch(token, /[=+/\s]/, 'base64url without padding');
  const { header, claims } = verify(token, { '': UNNAMED, k1: K1 });
  assert.deepEqual(header, { alg: 'HS256', typ: 'JWT', kid: 'k1' });
  assert.equal(claims.sub, 'alice');
  assert.equal(claims.role, ROLE);
  assert.equal(claims.plan, 'pro');
  assert.equal(claims.typ, 'access');
  assert.equal(claims.exp - claims.iat, 900);
  assert.ok(Math.abs(claims.iat - now()) <= 5, 'iat is now');
  assert.equal(Buffer.from(claims.jti, 'base64url').length, 16, 'jti: 128 bits');
  assert.throws(() => verify(token, { k1: UNNAMED }), /bad signature/, 'another secret does not verify it');
});

test('tokens signed by node:crypto decode in pgapp with the same claims', async () => {
  const claims = { sub: 'bob', role: ROLE, exp: now() + 600, iat: now(), name: 'Zoë 🎉 "quoted"', n: 12345678901234567890, list: [1, { a: null }] };
  const withKid = sign({ alg: 'HS256', typ: 'JWT', kid: 'k1' }, claims, K1);
  const { rows } = await db.query('SELECT pgapp.decode_token($1) AS c', [withKid]);
  assert.deepEqual(rows[0].c, claims);
  const withoutKid = sign({ typ: 'JWT', alg: 'HS256' }, claims, UNNAMED);
  const again = await db.query('SELECT pgapp.decode_token($1) AS c', [withoutKid]);
  assert.deepEqual(again.rows[0].c, claims, 'no kid: the unnamed key ""');
});

test('pgapp refuses what an HS256 verifier must refuse, with distinct SQLSTATEs', async () => {
  const claims = { sub: 'bob', exp: now() + 600 };
  const header = { alg: 'HS256', typ: 'JWT', kid: 'k1' };
  assert.equal(await decodeError(sign(header, claims, 'guessed-secret-guessed-secret-guessed')), 'PJ002', 'wrong key');
  assert.equal(await decodeError(sign({ ...header, kid: 'k2' }, claims, K1)), 'PJ002', 'unknown kid');
  assert.equal(await decodeError(sign({ ...header, alg: 'HS512' }, claims, K1, 'sha512')), 'PJ001', 'HS512');
  assert.equal(await decodeError(sign(header, { sub: 'bob', exp: now() - 60 }, K1)), 'PJ003', 'expired');
  assert.equal(await decodeError(sign(header, { ...claims, nbf: now() + 300 }, K1)), 'PJ004', 'not yet valid');
  assert.equal(await decodeError(sign(header, '{"sub":"bob","sub":"eve","exp":9999999999}', K1)), 'PJ001', 'duplicate claim');
  const good = sign(header, claims, K1);
  assert.equal(await decodeError(good), 'ok');
  assert.equal(await decodeError(good.replace(/-/g, '+').replace(/_/g, '/') + '='), 'PJ001', 'standard base64 with padding');
});

test('both verifiers agree on the leeway: an exp 10 s ago passes, 60 s ago fails', async () => {
  const header = { alg: 'HS256', typ: 'JWT', kid: 'k1' };
  const recent = sign(header, { sub: 'bob', exp: now() - 10 }, K1);
  const old = sign(header, { sub: 'bob', exp: now() - 60 }, K1);
  assert.doesNotThrow(() => verify(recent, { k1: K1 }));
  assert.equal(await decodeError(recent), 'ok');
  assert.throws(() => verify(old, { k1: K1 }), /expired/);
  assert.equal(await decodeError(old), 'PJ003');
});

async function cleanup() {
  if (db) await db.end().catch(() => {});
  if (!admin) return;
  await admin.query('ALTER SYSTEM RESET pgapp.auth_jwt_secret_file').catch(() => {});
  await admin.query('SELECT pg_reload_conf()').catch(() => {});
  await admin.query(`COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f ${KEY_FILE}'`).catch(() => {});
  await admin.query(`DROP ROLE IF EXISTS ${ROLE}`).catch(() => {});
  await admin.end().catch(() => {});
}

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
        console.log('Bail out! cannot configure the key file');
        break;
      }
    }
  }
  await cleanup();
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.log(`not ok - ${err.message}`);
  process.exitCode = 1;
});
