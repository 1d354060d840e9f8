// test/clients/sessions.test.js: register, login, refresh and reuse
// detection through the request path PostgREST takes (as
// test/security/postgrest_request.sql replays it), printing TAP.
//
// Each HTTP request is replayed as PostgREST runs it: one transaction, the
// bearer token verified here (Node's node:crypto, as PostgREST would) and its
// role taken with SET LOCAL ROLE (anon without a token), request.jwt.claims,
// request.method, request.path and request.headers set, the RPC called by
// argument name, response.status read back, COMMIT; an error rolls back and
// maps to the status PostgREST gives it (PTnnn -> nnn, PGRST -> its DETAIL's
// status).  The secret is written into the data directory as a key file by
// the superuser connection (PG*) for the test's duration and removed at the
// end.  Run by "bash scripts/test clients".
'use strict';

const assert = require('assert/strict');
const crypto = require('node:crypto');
const path = require('path');
const { createRequire } = require('module');

const LIB = path.join(__dirname, '..', '..', 'examples', 'clients', 'node', 'jobs_worker.js');
const pg = createRequire(LIB)('pg');

const KEY_FILE = 'clients_sessions_key';
const SECRET = crypto.randomBytes(33).toString('base64url');
const EMAIL = `ada-${crypto.randomBytes(6).toString('hex')}@example.com`;
const PASSWORD = 'correct horse battery';

let admin = null;
let db = null;
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

// PostgREST's verification of a bearer token (HS256, exp with 30 s leeway).
function verify(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not three segments');
  const expected = crypto.createHmac('sha256', SECRET).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  if (Math.floor(Date.now() / 1000) >= claims.exp + 30) throw new Error('expired');
  return claims;
}

// One request: POST /rpc/<fn> with a JSON body of named arguments.
async function rpc(fn, args, bearer = null) {
  const claims = bearer ? verify(bearer) : { role: 'anon' };
  const role = claims.role || 'anon';
  const names = Object.keys(args);
  const call = `SELECT pgapp.${fn}(${names.map((n, i) => `${n} := $${i + 1}`).join(', ')}) AS body`;
  await db.query('BEGIN');
  try {
    await db.query(`SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true),
                           set_config('request.method', 'POST', true), set_config('request.path', $3, true),
                           set_config('request.headers', $4, true)`,
      [role, JSON.stringify(claims), `/rpc/${fn}`, JSON.stringify({ 'content-type': 'application/json' })]);
    const { rows } = await db.query(call, names.map((n) => args[n]));
    const st = await db.query("SELECT nullif(current_setting('response.status', true), '') AS s");
    await db.query('COMMIT');
    return { status: Number(st.rows[0].s || 200), body: rows[0].body };
  } catch (err) {
    await db.query('ROLLBACK');
    if (err.code === 'PGRST') {
      return { status: JSON.parse(err.detail).status, body: JSON.parse(err.message), headers: JSON.parse(err.detail).headers };
    }
    if (/^PT\d{3}$/.test(err.code)) return { status: Number(err.code.slice(2)), body: { code: err.code, message: err.message } };
    throw err;
  }
}

let user = null;
let first = null;
let second = null;

test('the key file and the roles are set up', async () => {
  admin = new pg.Client();
  await admin.connect();
  await admin.query(`COPY (SELECT $$${SECRET}$$) TO PROGRAM 'cat > ${KEY_FILE}.new && mv ${KEY_FILE}.new ${KEY_FILE}'`);
  await admin.query(`ALTER SYSTEM SET pgapp.auth_jwt_secret_file = '${KEY_FILE}'`);
  await admin.query('SELECT pg_reload_conf()');
  await admin.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
    END $$`);
  db = new pg.Client();
  await db.connect(); // forked after the reload: it sees the key file
});

test('POST /rpc/register: 201 and the user, without its hash', async () => {
  const r = await rpc('register', { email: EMAIL, password: PASSWORD, profile: { name: 'Ada' } });
  assert.equal(r.status, 201);
  assert.equal(r.body.email, EMAIL);
  assert.equal(r.body.role, 'authenticated');
  assert.deepEqual(r.body.profile, { name: 'Ada' });
  assert.equal('password_hash' in r.body, false);
  user = r.body;
});

test('POST /rpc/register again, or with a short password: 422 with the field errors', async () => {
  const again = await rpc('register', { email: EMAIL.toUpperCase(), password: PASSWORD });
  assert.equal(again.status, 422);
  assert.deepEqual(again.body, { errors: { email: ['has already been taken'] } });
  const short = await rpc('register', { email: `new-${EMAIL}`, password: 'short' });
  assert.equal(short.status, 422);
  assert.deepEqual(short.body, { errors: { password: ['should be at least 8 character(s)'] } });
});

test('POST /rpc/login with a wrong password or an unknown email: 401, the same message', async () => {
  const wrong = await rpc('login', { email: EMAIL, password: 'wrong horse battery' });
  const unknown = await rpc('login', { email: `x${EMAIL}`, password: PASSWORD });
  assert.equal(wrong.status, 401);
  assert.deepEqual(wrong.body, unknown.body);
  assert.equal(wrong.body.message, 'invalid email or password');
});

test('POST /rpc/login: tokens PostgREST accepts, for the user and its role', async () => {
  const r = await rpc('login', { email: EMAIL, password: PASSWORD });
  assert.equal(r.status, 200);
  assert.equal(r.body.token_type, 'Bearer');
  assert.equal(r.body.expires_in, 900);
  assert.match(r.body.refresh_token, /^[A-Za-z0-9_-]{43}$/);
  const claims = verify(r.body.access_token);
  assert.equal(claims.sub, user.id);
  assert.equal(claims.role, 'authenticated');
  assert.equal(claims.exp - claims.iat, 900);
  first = r.body;
});

test('Authorization: Bearer: the request runs as the token\'s role and sees its claims', async () => {
  const r = await rpc('token_claims', {}, first.access_token);
  assert.equal(r.status, 200);
  assert.equal(r.body.sub, user.id);
  const who = await db.query('SELECT current_user AS u');
  assert.notEqual(who.rows[0].u, 'authenticated'); // the role was local to the request
});

test('POST /rpc/refresh: the next tokens of the same session', async () => {
  const r = await rpc('refresh', { refresh_token: first.refresh_token });
  assert.equal(r.status, 200);
  assert.notEqual(r.body.refresh_token, first.refresh_token);
  assert.equal(verify(r.body.access_token).sid, verify(first.access_token).sid);
  second = r.body;
});

test('reuse of the rotated token: 401, and the whole session ends', async () => {
  const reuse = await rpc('refresh', { refresh_token: first.refresh_token });
  assert.equal(reuse.status, 401);
  assert.deepEqual(reuse.body, { errors: { refresh_token: ['is invalid'] } });
  const newest = await rpc('refresh', { refresh_token: second.refresh_token });
  assert.equal(newest.status, 401);
  // the access token issued with the newest refresh token is revoked too
  await assert.rejects(db.query('SELECT pgapp.decode_token($1)', [second.access_token]), (e) => e.code === 'PJ005');
});

test('too many failed logins: 429 with Retry-After', async () => {
  let r = null;
  for (let i = 0; i < 6; i++) r = await rpc('login', { email: EMAIL, password: `guess ${i}` });
  assert.equal(r.status, 429);
  assert.match(r.headers['Retry-After'], /^[0-9]+$/);
  assert.equal(r.body.code, 'PT429');
});

async function cleanup() {
  if (db) await db.end().catch(() => {});
  if (!admin) return;
  await admin.query('DELETE FROM pgapp.auth_user WHERE lower(email) = lower($1)', [EMAIL]).catch(() => {});
  await admin.query('ALTER SYSTEM RESET pgapp.auth_jwt_secret_file').catch(() => {});
  await admin.query('SELECT pg_reload_conf()').catch(() => {});
  await admin.query(`COPY (SELECT 1) TO PROGRAM 'cat >/dev/null; rm -f ${KEY_FILE}'`).catch(() => {});
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
