// test/gateway/join_window.test.js: nothing falls between a join's data and
// the events after it.  The gateway runs a channel's join function only once
// the topic is LISTENed, and keeps the topic's broadcasts that arrive while
// the function runs for the joining socket, sending them after the ok reply.
// The join function here waits on an advisory lock the test holds, so a
// broadcast is committed while it runs.  Port PORT0 + 25.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import pgPkg from 'pg';

import {
  PORT0, closeDb, connect, phxSocket, push, sql, startGateway, token,
} from './helpers.js';

const PORT = PORT0 + 25;
let gw;
const sockets = [];

before(async () => {
  await sql(`CREATE FUNCTION gw.held_join(topic text, params jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(4242);
        RETURN jsonb_build_object('ok', jsonb_build_object('topic', topic));
    END $$`);
  await sql('GRANT EXECUTE ON FUNCTION gw.held_join(text, jsonb) TO gw_user');
  await sql("SELECT pgapp.define_channel('held:*', 'gw.held_join(text, jsonb)')");
  gw = await startGateway(PORT);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await gw.stop();
  await sql("SELECT pgapp.drop_channel('held:*')");
  await sql('DROP FUNCTION gw.held_join(text, jsonb)');
  await closeDb();
});

test('a broadcast committed while the join function runs comes right after the ok reply', async () => {
  // a session of our own holds the lock the join function waits for
  const holder = new pgPkg.Client();
  await holder.connect();
  await holder.query('BEGIN');
  await holder.query('SELECT pg_advisory_xact_lock(4242)');

  const s = phxSocket(PORT, { token: await token('alice') });
  sockets.push(s);
  await connect(s);
  const ch = s.channel('held:1');
  const seen = [];
  ch.on('during', (p) => seen.push(['during', p]));
  const replied = new Promise((resolve) => {
    ch.join().receive('ok', (r) => { seen.push(['ok', r]); resolve(); });
  });

  // wait until the join function is waiting on the lock (it runs only once
  // the topic is LISTENed), by asking the server, not by waiting for time
  for (;;) {
    const [w] = await sql(`SELECT count(*)::int AS n FROM pg_locks
                            WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted`);
    if (w.n > 0) break;
  }
  await sql("SELECT pgapp.broadcast('held:1', 'during', '{\"n\": 1}')");
  await holder.query('COMMIT');
  await holder.end();
  await replied;
  // a socket's frames come in order: once a later reply is here, anything
  // sent with the join's reply has come too (the channel has no handle_in:
  // the push's reply is an error, which is all this needs)
  assert.equal((await push(ch, 'ping', {})).status, 'error');
  assert.deepEqual(seen, [['ok', { topic: 'held:1' }], ['during', { n: 1 }]],
    'the reply first, then the broadcast made while the join function ran');
});
