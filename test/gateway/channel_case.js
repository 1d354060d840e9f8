// test/gateway/channel_case.js: a ChannelCase for pgapp-gateway, in the
// spirit of Phoenix.ChannelTest (subscribe_and_join, push, assert_reply,
// assert_push, refute_push, presence), for tests of a recipe served through
// the gateway: real users (pgapp.register and pgapp.login), real sockets of
// the official phoenix client, a real gateway.
//
// The database is CHAT_PGDATABASE (default pgapp_chat) on the cluster of
// the PG* environment, where the suite (scripts/test gateway) loaded
// examples/chat.sql and test/gateway/chat_setup.sql.  Every wait is for an
// event (a reply, a broadcast, a presence sync, a log line), never for
// time to pass; each has a deadline so that a missing event fails the test
// with a message instead of hanging it.
import { createRequire } from 'node:module';

import { Presence } from 'phoenix';

import { connect, phxSocket, startGateway } from './helpers.js';

const require = createRequire(import.meta.url);
const pg = require('pg');

export const DATABASE = process.env.CHAT_PGDATABASE || 'pgapp_chat';
export const CONNINFO = `host=${process.env.PGHOST} port=${process.env.PGPORT} ` +
  `dbname=${DATABASE} user=gw_authenticator`;
// how long any awaited event may take before the test fails
export const DEADLINE_MS = Number(process.env.CHANNEL_CASE_DEADLINE_MS || 15000);

let db;
// A superuser connection to the recipe's database, opened on first use.
export async function sql(text, params = []) {
  if (!db) {
    db = new pg.Client({ database: DATABASE });
    await db.connect();
    // cheap password hashes for the accounts the tests make, and the role
    // their tokens carry (docs/auth.md)
    await db.query("SET pgapp.auth_password_memlimit = '8MB'");
    await db.query('SET pgapp.auth_password_opslimit = 1');
    await db.query("SET pgapp.auth_default_role = 'app_user'");
  }
  return (await db.query(text, params)).rows;
}

// Rejects with what after ms unless promise settles first.
export function within(promise, what, ms = DEADLINE_MS) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export class ChannelCase {
  constructor(port, flags = []) {
    this.port = port;
    this.flags = flags;
    this.sockets = [];
    this.n = 0;
  }

  // Start the gateway on the recipe's database.
  async start() {
    this.gw = await startGateway(this.port, ['--db', CONNINFO, ...this.flags]);
    return this;
  }

  async stop() {
    for (const s of this.sockets) s.disconnect();
    if (this.gw) await this.gw.stop();
    if (db) await db.end();
    db = undefined;
  }

  // A registered user (pgapp.register, then pgapp.login): {id, email,
  // name, token}; name is set as the user's chat name unless null.
  async registerUser(name, { chatName = name } = {}) {
    this.n += 1;
    const email = `${name.toLowerCase()}-${process.pid}-${this.n}@example.com`;
    const [u] = await sql('SELECT pgapp.register($1, $2) ->> \'id\' AS id', [email, 'a password of a test']);
    const [s] = await sql('SELECT pgapp.login($1, $2) ->> \'access_token\' AS token', [email, 'a password of a test']);
    if (chatName !== null) {
      await sql('INSERT INTO chat.profile (user_id, name) VALUES ($1, $2)', [u.id, chatName]);
    }
    return { id: u.id, email, name: chatName, token: s.token };
  }

  // A new room (made as an admin would) with these members: {id, topic}.
  // Its id is name with a suffix of this run, so that runs against the
  // same database do not meet.
  async room(name, members = []) {
    const id = `${name}-${process.pid}`;
    await sql('INSERT INTO chat.room (id, name) VALUES ($1, $2)', [id, name]);
    for (const m of members) {
      await sql('INSERT INTO chat.member (room_id, user_id) VALUES ($1, $2)', [id, m.id]);
    }
    return { id, topic: `room:${id}` };
  }

  // A connected phoenix socket with user's token (or these params).
  async connect(user, params = { token: user.token }) {
    const s = phxSocket(this.port, params);
    this.sockets.push(s);
    await within(connect(s), 'socket open');
    return s;
  }

  // Join topic on socket: {channel, status, response}.  A refused join is
  // left at once (the client would retry it).  With presence, a Presence
  // of the channel is made before the join (so that it gets the state the
  // join sends) and returned as presence.
  async join(socket, topic, params = {}, { presence = false } = {}) {
    const channel = socket.channel(topic, params);
    const events = recordEvents(channel);
    const p = presence ? watchPresence(channel) : undefined;
    const result = await within(new Promise((resolve) => {
      channel.join()
        .receive('ok', (response) => resolve({ status: 'ok', response }))
        .receive('error', (response) => { channel.leave(); resolve({ status: 'error', response }); })
        .receive('timeout', () => resolve({ status: 'timeout' }));
    }), `join reply on ${topic}`);
    return { channel, events, presence: p, ...result };
  }

  // subscribe_and_join: the join must succeed; its reply.
  async subscribeAndJoin(socket, topic, params = {}, opts = {}) {
    const j = await this.join(socket, topic, params, opts);
    if (j.status !== 'ok') throw new Error(`join of ${topic} failed: ${JSON.stringify(j)}`);
    return j;
  }
}

// Push event on channel and await its reply: {status, response}.
export function push(channel, event, payload = {}) {
  return within(new Promise((resolve) => {
    channel.push(event, payload)
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => resolve({ status: 'error', response }))
      .receive('timeout', () => resolve({ status: 'timeout' }));
  }), `reply to ${event}`);
}

// Every message a channel receives, in order, with a way to await the next
// one matching (assert_push / assert_broadcast).
function recordEvents(channel) {
  const log = [];
  const waiters = [];
  const onMessage = channel.onMessage;
  channel.onMessage = (event, payload, ...rest) => {
    if (!event.startsWith('phx_') && !event.startsWith('chan_reply_')) {
      log.push({ event, payload });
      for (let i = waiters.length - 1; i >= 0; i -= 1) {
        if (waiters[i].test(event, payload)) waiters.splice(i, 1)[0].resolve(payload);
      }
    }
    return onMessage.call(channel, event, payload, ...rest);
  };
  return {
    log,
    // the payloads of event received so far
    of: (event) => log.filter((m) => m.event === event).map((m) => m.payload),
    // the first event (received so far or later) for which test holds
    next(event, test = () => true, from = 0) {
      const seen = log.slice(from).find((m) => m.event === event && test(m.payload));
      if (seen) return Promise.resolve(seen.payload);
      return within(new Promise((resolve) => {
        waiters.push({ test: (e, p) => e === event && test(p), resolve });
      }), `"${event}" event`);
    },
  };
}

// assert_push: the next event of the channel (from its recorded events) matching.
export function assertPush(joined, event, test) {
  return joined.events.next(event, test);
}

// refute_push, without sleeping: marker is an event the channel receives
// after event would have come (a later broadcast of the same topic, in
// commit order); resolves with the events received before the marker.
export async function eventsBefore(joined, marker, test = () => true) {
  const payload = await joined.events.next(marker, test);
  const at = joined.events.log.findIndex((m) => m.event === marker && m.payload === payload);
  return joined.events.log.slice(0, at);
}

// The phoenix client's Presence on channel, with waitFor(predicate) for the
// first sync after which predicate(list) holds; list is [{id, metas}].
function watchPresence(channel) {
  const presence = new Presence(channel);
  const waiters = [];
  const list = () => presence.list((id, { metas }) => ({ id, metas }));
  presence.onSync(() => {
    const now = list();
    for (const w of waiters.splice(0)) {
      if (w.predicate(now)) w.resolve(now);
      else waiters.push(w);
    }
  });
  return {
    presence,
    list,
    waitFor(predicate, what = 'presence sync') {
      const now = list();
      if (presence.inPendingSyncState() === false && predicate(now)) return Promise.resolve(now);
      return within(new Promise((resolve) => waiters.push({ predicate, resolve })), what);
    },
    onLeave: (fn) => presence.onLeave(fn),
    onJoin: (fn) => presence.onJoin(fn),
  };
}
