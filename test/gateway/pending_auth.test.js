// test/gateway/pending_auth.test.js: at most 256 sockets wait for their
// token check.  A gateway with one request connection, held by a join
// function waiting on an advisory lock the test holds: the token checks of
// the sockets that connect meanwhile queue behind it, and past 256 waiting
// the next upgrade is refused with 503; once the lock goes they are checked
// and new upgrades are let in again.  Port PORT0 + 26.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import pgPkg from 'pg';

import {
  PORT0, closeDb, connect, health, phxSocket, rawSocket, sql, startGateway, token,
} from './helpers.js';

const PORT = PORT0 + 26;
let gw;
const sockets = [];
const raws = [];

before(async () => {
  await sql(`CREATE FUNCTION gw.block_join(topic text, params jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(4343);
        RETURN jsonb_build_object('ok', '{}'::jsonb);
    END $$`);
  await sql('GRANT EXECUTE ON FUNCTION gw.block_join(text, jsonb) TO gw_user');
  await sql("SELECT pgapp.define_channel('block:*', 'gw.block_join(text, jsonb)')");
  gw = await startGateway(PORT, ['--db-pool', '1', '--rate-limit', '0']);
});

after(async () => {
  for (const ws of raws) ws.terminate();
  for (const s of sockets) s.disconnect();
  await gw.stop();
  await sql("SELECT pgapp.drop_channel('block:*')");
  await sql('DROP FUNCTION gw.block_join(text, jsonb)');
  await closeDb();
});

test('past 256 sockets waiting for their token check, an upgrade gets 503', async () => {
  const holder = new pgPkg.Client();
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT pg_advisory_xact_lock(4343)');

  // the one request connection runs a join that waits on the lock
  const s = phxSocket(PORT, { token: await token('alice') });
  sockets.push(s);
  await connect(s);
  s.channel('block:1').join();
  for (;;) {
    const [w] = await sql(`SELECT count(*)::int AS n FROM pg_locks
                            WHERE locktype = 'advisory' AND objid = 4343 AND NOT granted`);
    if (w.n > 0) break;
  }

  // 256 sockets whose token checks queue behind it
  const t = await token('bob');
  for (let i = 0; i < 256; i++) {
    const r = await rawSocket(PORT, `token=${t}&vsn=2.0.0`);
    assert.ok(r.ws, `socket ${i + 1} of 256 is let in (status ${r.status})`);
    raws.push(r.ws);
  }
  const refused = await rawSocket(PORT, `token=${t}&vsn=2.0.0`);
  assert.equal(refused.status, 503, 'the 257th waiting socket is refused');
  assert.equal((await health(PORT)).body.sockets, 257);

  // the lock goes: the checks run, and upgrades are let in again
  await holder.query('COMMIT');
  await holder.end();
  for (;;) {
    const r = await rawSocket(PORT, `token=${t}&vsn=2.0.0`);
    if (r.ws) {
      raws.push(r.ws);
      break;
    }
    assert.equal(r.status, 503);
  }
});
