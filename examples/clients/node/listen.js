#!/usr/bin/env node
// examples/clients/node/listen.js: print the messages of pgapp PubSub topics,
// and who is present on some.
//
//   node listen.js topic [topic...]
//   node listen.js --presence room:lobby [--as alice [--meta '{"device":"cli"}'] [--ttl 30]] [topic...]
//
// Connects with the PG* environment variables (PGHOST, PGPORT, PGDATABASE,
// PGUSER, ...), subscribes to each topic and prints one JSON line per
// message on standard output, until interrupted.  With --presence topic
// (repeatable) it also follows who is present there (presence.js) and
// prints it as lines "topic: ..." instead of the topic's presence_diff,
// typing and typing_stopped messages; with --as key it is present there
// itself as key (with --meta, for --ttl seconds, renewed while it runs, and
// untracked when interrupted).  Errors go to standard error; a lost
// connection ends the program with status 1.
'use strict';

const pubsub = require('./pubsub');
const { Presence } = require('./presence');

const USAGE = 'usage: node listen.js [--presence topic]... [--as key [--meta json] [--ttl seconds]] [topic...]';
const PRESENCE_EVENTS = new Set(['presence_diff', 'typing', 'typing_stopped']);

function usage(message) {
  if (message) console.error(`listen.js: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { topics: [], presence: [], as: null, meta: {}, ttl: 30 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--presence') opts.presence.push(value());
    else if (arg === '--as') opts.as = value();
    else if (arg === '--meta') {
      try {
        opts.meta = JSON.parse(value());
      } catch (err) {
        usage(`--meta: ${err.message}`);
      }
      if (opts.meta === null || typeof opts.meta !== 'object' || Array.isArray(opts.meta)) usage('--meta must be a JSON object');
    } else if (arg === '--ttl') {
      opts.ttl = Number(value());
      if (!(opts.ttl > 0)) usage('--ttl must be a positive number of seconds');
    } else if (arg === '--help' || arg === '-h') usage();
    else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
    else opts.topics.push(arg);
  }
  if (opts.topics.length === 0 && opts.presence.length === 0) usage();
  if (opts.as !== null && opts.presence.length === 0) usage('--as needs --presence topic');
  return opts;
}

// A meta as printed: without its phx_ref and phx_ref_prev (empty metas print nothing).
const showMeta = ({ phx_ref: _, phx_ref_prev: __, ...meta }) => (Object.keys(meta).length ? ' ' + JSON.stringify(meta) : '');

// Print what happens on a presence topic: who is there after each change,
// joins, leaves, changed metas and typing.
function show(room, me) {
  const say = (line) => console.log(`${room.topic}: ${line}`);
  let loaded = false; // the first sync prints who is present, not how they joined
  let last = null; // the last "present: ..." line
  room.onJoin((key, current, joined) => {
    if (!loaded) return;
    for (const meta of joined.metas) {
      // a changed meta: a new version (new phx_ref) naming the old in phx_ref_prev
      const before = current && current.metas.find((m) => m.phx_ref === meta.phx_ref_prev);
      if (before) say(`${key} changed${showMeta(meta)}`);
      else if (current) say(`${key} joined again${showMeta(meta)} (${current.metas.length + 1} metas)`);
      else say(`${key} joined${showMeta(meta)}`);
    }
  });
  room.onLeave((key, current, left) => {
    if (!loaded) return;
    const replaced = new Set(current.metas.map((m) => m.phx_ref_prev));
    for (const meta of left.metas) {
      if (replaced.has(meta.phx_ref)) continue; // the old version of a changed meta: printed by onJoin
      const n = current.metas.length;
      say(`${key} left${showMeta(meta)}` + (n ? ` (still there with ${n} meta${n > 1 ? 's' : ''})` : ''));
    }
  });
  room.onSync(() => {
    loaded = true;
    const present = room.list((key, p) => {
      let name = key === me ? `${key} (you)` : key;
      if (p.metas.length > 1) name += ` x${p.metas.length}`;
      return name;
    }).sort();
    const line = present.length ? `present: ${present.join(', ')}` : 'nobody is present';
    if (line !== last) say(line); // not after a change of meta only
    last = line;
  });
  room.on('typing', (key) => say(`${key} is typing`));
  room.on('typing_stopped', (key) => say(`${key} stopped typing`));
}

async function main(argv) {
  const opts = parseArgs(argv);
  const sub = await pubsub.connect();
  const followed = new Set(opts.presence);
  sub.on('message', (msg) => {
    if (followed.has(msg.topic) && PRESENCE_EVENTS.has(msg.event)) return; // shown by show()
    console.log(JSON.stringify(msg));
  });
  sub.on('error', (err) => {
    // a message that could not be had is skipped; a broken connection
    // cannot be used again (no reconnect here)
    if (err.notification) {
      console.error(`listen.js: skipped a notification on "${err.notification.channel}": ${err.message}`);
    } else {
      console.error(`listen.js: ${err.message}`);
      process.exit(1);
    }
  });
  sub.listener.on('end', () => {
    console.error('listen.js: the connection was closed');
    process.exit(1);
  });
  for (const topic of opts.topics) {
    const channel = await pubsub.subscribe(sub, topic);
    console.error(`listening to "${topic}"` + (channel === topic ? '' : ` on channel ${channel}`));
  }
  const rooms = [];
  for (const topic of opts.presence) {
    const room = new Presence(sub, topic);
    room.on('error', (err) => console.error(`listen.js: presence on "${topic}": ${err.message}`));
    show(room, opts.as);
    rooms.push(room);
    await room.ready;
    console.error(`following presence on "${topic}"`);
    if (opts.as !== null) {
      await room.track(opts.as, opts.meta, opts.ttl);
      console.error(`present on "${topic}" as "${opts.as}" (ttl ${opts.ttl} s, renewed every ${opts.ttl / 2} s)`);
    }
  }
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      sub.listener.removeAllListeners('end');
      // leave at once rather than when the ttl lapses
      Promise.allSettled(rooms.map((room) => room.close()))
        .then(() => pubsub.close(sub))
        .then(() => process.exit(0));
    });
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`listen.js: ${err.message}`);
  process.exit(1);
});
