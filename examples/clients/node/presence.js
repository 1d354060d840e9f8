// examples/clients/node/presence.js: who is present on a pgapp topic, as
// Phoenix's JavaScript Presence shows it, fed by the pubsub library.
//
//   const pubsub = require('./pubsub');
//   const { Presence } = require('./presence');
//   const sub = await pubsub.connect();
//   const room = new Presence(sub, 'room:lobby');
//   room.onJoin((key, current, joined) => ...);    // as Phoenix's onJoin
//   room.onLeave((key, current, left) => ...);     // as Phoenix's onLeave
//   room.onSync(() => render(room.list()));        // after the state and each diff
//   await room.ready;                              // the initial state is loaded
//   await room.track('alice', { device: 'web' });  // present while this process runs
//   await room.typing('alice');                    // 'typing', then 'typing_stopped'
//
// The server side is SQL: pgapp.presence_list(topic) is the state, shaped
// as Phoenix's presence_state ({"alice": {"metas": [{..., "phx_ref": ref}]}});
// the database's pgapp worker broadcasts the joins and leaves of each topic
// as one "presence_diff" message every 1.5 s ({"joins": {...}, "leaves":
// {...}}), and pgapp.presence_track / presence_untrack / typing change it.
// As in Phoenix, a changed meta is a leave of its old version and a join of
// the new one, which has a new phx_ref (the ref returned by presence_track,
// then "<ref>.1", "<ref>.2" ...) and names the old one in phx_ref_prev; so
// diffs are applied as Phoenix's syncDiff does: joins add metas, replacing
// one of the same phx_ref, and leaves remove metas by phx_ref.
//
// pgapp.presence_list returns the state as the last round announced it
// (what is tracked, changed or untracked since is listed as it was, until
// the next round announces it; phx_ref_prev included), and a round is
// atomic.  So the state read, then every diff that follows, applied in
// order, is exactly the announced state.  Loading the state still races
// with the diffs: a diff can arrive before the state does, or after it
// while the state already includes it.  As Phoenix does, diffs are held
// while the state loads and applied after it, all of them, in order; and
// applying a diff is idempotent (a meta already there with the same phx_ref
// and content does not join again, a meta not there does not leave), so a
// diff already in the state changes nothing and none is lost.  Only a diff
// already in the state whose meta changed again before the state was read
// can show: it joins the old version again for a moment (onJoin, then
// onLeave when the next diff is applied, both before the load's onSync).
// The diffs' "at" cannot tell which ones the state has: it is the time of
// the broadcast, before its round commits, so a state read later may not
// have that round yet.  Who is typing is read (pgapp.typing_list, which
// is live) with the state, and the typing messages that came meanwhile are
// applied after it, in order.
'use strict';

const { EventEmitter } = require('events');
const { isDeepStrictEqual } = require('util');

const noop = () => {};

// Presence states are maps from keys (any string, "__proto__" included) to
// {metas: [...]}: objects without a prototype.
const newMap = () => Object.create(null);
const cloneMap = (map) => {
  const out = newMap();
  for (const [key, value] of Object.entries(map || {})) out[key] = JSON.parse(JSON.stringify(value));
  return out;
};
// The same version of a meta: same phx_ref, phx_ref_prev and content (as a
// diff announced it, and as pgapp.presence_list lists it).
const sameMeta = (a, b) => isDeepStrictEqual(a, b);

const EVENTS = new Set(['presence_diff', 'typing', 'typing_stopped']);

class Presence extends EventEmitter {
  // sub: a pubsub Subscriber; topic: the topic.  opts.db: where to run the
  // SQL (anything with pg's query(text, values)); the subscriber's own pool
  // by default.  Subscribes to the topic, then loads the state: this.ready
  // settles when it is loaded (or could not be).
  constructor(sub, topic, opts = {}) {
    super();
    this.sub = sub;
    this.topic = topic;
    this.db = opts.db || sub.pool;
    this.state = newMap();
    this.pending = []; // messages that came while the state loads
    this.loading = true;
    this.caller = { onJoin: noop, onLeave: noop, onSync: noop };
    this.typists = new Set();
    this.tracked = null; // {key, meta, ttl, ref, timer}
    this.queue = Promise.resolve(); // track, renew and untrack, one at a time
    this.onMessage = (msg) => this.handle(msg);
    sub.on('message', this.onMessage);
    this.ready = this.sub.subscribe(topic).then(() => this.load());
    this.ready.catch(noop); // the caller awaits it; not an unhandled rejection meanwhile
  }

  onJoin(callback) { this.caller.onJoin = callback; }

  onLeave(callback) { this.caller.onLeave = callback; }

  onSync(callback) { this.caller.onSync = callback; }

  // As Phoenix: by(key, presence) for each presence, by default the presence
  // itself ({metas: [...]}, oldest meta first).
  list(by = (key, presence) => presence) {
    return Presence.list(this.state, by);
  }

  // Keys typing now.
  typingKeys() {
    return [...this.typists].sort();
  }

  // Read the state again (for instance after missing messages) and apply
  // the difference as joins and leaves; messages meanwhile wait, as at first.
  resync() {
    this.ready = this.ready.catch(noop).then(() => {
      this.loading = true;
      return this.load();
    });
    this.ready.catch(noop);
    return this.ready;
  }

  // Read the state and who is typing, then apply the messages that waited
  // for them.  On failure messages go on waiting, for a resync().
  async load() {
    const { rows } = await this.db.query(
      'SELECT pgapp.presence_list($1) AS state, pgapp.typing_list($1) AS typing', [this.topic]);
    // From here on synchronous: no message comes in between.
    const { onJoin, onLeave, onSync } = this.callbacks();
    this.state = Presence.syncState(this.state, rows[0].state, onJoin, onLeave);
    const typing = new Set(rows[0].typing);
    for (const key of this.typingKeys()) if (!typing.has(key)) this.setTyping(key, false, null);
    for (const key of typing) this.setTyping(key, true, null);
    const pending = this.pending;
    this.pending = [];
    this.loading = false;
    for (const msg of pending) this.apply(msg);
    onSync();
  }

  callbacks() {
    return {
      onJoin: (key, current, joined) => {
        this.caller.onJoin(key, current, joined);
        this.emit('join', key, current, joined);
      },
      onLeave: (key, current, left) => {
        this.caller.onLeave(key, current, left);
        this.emit('leave', key, current, left);
      },
      onSync: () => {
        this.caller.onSync();
        this.emit('sync');
      },
    };
  }

  handle(msg) {
    if (msg.topic !== this.topic || !EVENTS.has(msg.event)) return;
    if (this.loading) this.pending.push(msg);
    else if (this.apply(msg)) this.callbacks().onSync();
  }

  // Apply a message; true if it was a presence_diff.  Typing messages that
  // came while the state loaded are all applied, in order: their "at"
  // precedes their commit, so it cannot tell whether typing_list saw them,
  // and applying them in order ends with the last one's word.
  apply(msg) {
    const key = msg.payload && msg.payload.key;
    if (msg.event === 'typing') this.setTyping(key, true, msg);
    else if (msg.event === 'typing_stopped') this.setTyping(key, false, msg);
    else if (msg.event === 'presence_diff') {
      const { onJoin, onLeave } = this.callbacks();
      this.state = Presence.syncDiff(this.state, msg.payload, onJoin, onLeave);
      return true;
    }
    return false;
  }

  // Emits 'typing' / 'typing_stopped' (key, msg) when key starts or stops;
  // msg is null when it was seen in pgapp.typing_list (or its absence).
  setTyping(key, on, msg) {
    if (typeof key !== 'string' || this.typists.has(key) === on) return;
    if (on) this.typists.add(key);
    else this.typists.delete(key);
    this.emit(on ? 'typing' : 'typing_stopped', key, msg);
  }

  // Be present as key with meta (an object) for ttl seconds, renewed every
  // ttl/2 with the same ref while this object lives.  Tracking again (the
  // same key) changes the meta (its phx_ref becomes "<ref>.1", ...); another
  // key needs untrack() first.  Returns the ref: the uuid that renews and
  // untracks it, and the phx_ref of its first version.
  track(key, meta = {}, ttl = 30) {
    if (!(typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl))) {
      return Promise.reject(new TypeError(`ttl must be a positive number of seconds, not ${ttl}`));
    }
    return this.enqueue(async () => {
      if (this.tracked && this.tracked.key !== key) {
        throw new Error(`already tracking "${this.tracked.key}" on "${this.topic}": untrack() first`);
      }
      const ref = await this.trackQuery(key, meta, ttl, this.tracked ? this.tracked.ref : null);
      if (this.tracked) clearInterval(this.tracked.timer);
      const timer = setInterval(() => this.renew(), ttl * 500);
      timer.unref(); // the presence does not keep the process alive
      this.tracked = { key, meta, ttl, ref, timer };
      return ref;
    });
  }

  renew() {
    const t = this.tracked;
    this.enqueue(async () => {
      if (this.tracked !== t) return; // untracked or tracked again meanwhile
      await this.trackQuery(t.key, t.meta, t.ttl, t.ref);
    }).catch((err) => {
      err.presence = { topic: this.topic, key: t.key, ref: t.ref, renew: true };
      this.emit('error', err); // the next renewal tries again
    });
  }

  async trackQuery(key, meta, ttl, ref) {
    const { rows } = await this.db.query(
      'SELECT pgapp.presence_track($1, $2, $3, make_interval(secs => $4), $5) AS ref',
      [this.topic, key, meta, ttl, ref]);
    return rows[0].ref;
  }

  // Stop being present (the key tracked by track()); returns how many
  // metas left (0 when nothing was tracked).
  untrack() {
    return this.enqueue(async () => {
      const t = this.tracked;
      if (!t) return 0;
      clearInterval(t.timer);
      this.tracked = null;
      const { rows } = await this.db.query(
        'SELECT pgapp.presence_untrack($1, $2, $3) AS n', [this.topic, t.key, t.ref]);
      return rows[0].n;
    });
  }

  // Say that key (by default the key tracked) is typing on this topic: a
  // 'typing' message now unless it is already typing, 'typing_stopped'
  // 3 s after the last call.
  typing(key = this.tracked && this.tracked.key) {
    if (!key) return Promise.reject(new Error('typing: which key? (nothing tracked)'));
    return typing(this.db, this.topic, key);
  }

  // Untrack, and stop following the topic's messages (the subscriber stays
  // subscribed: it may be shared; unsubscribe it yourself).
  async close() {
    try {
      await this.untrack();
    } finally {
      this.sub.removeListener('message', this.onMessage);
    }
  }

  enqueue(fn) {
    const run = this.queue.then(fn);
    this.queue = run.catch(noop);
    return run;
  }

  // Phoenix's Presence.syncState: the difference between a state and a
  // newer one, applied as a diff (so onJoin and onLeave see it).  A meta
  // whose content differs under the same phx_ref (a ref tracked again after
  // its leave was announced) joins again, replacing it.
  static syncState(currentState, newState, onJoin = noop, onLeave = noop) {
    const state = cloneMap(currentState);
    const fresh = cloneMap(newState);
    const joins = newMap();
    const leaves = newMap();
    for (const [key, presence] of Object.entries(state)) {
      if (!fresh[key]) leaves[key] = presence;
    }
    for (const [key, newPresence] of Object.entries(fresh)) {
      const current = state[key];
      if (!current) {
        joins[key] = newPresence;
        continue;
      }
      const newRefs = new Set(newPresence.metas.map((m) => m.phx_ref));
      const joined = newPresence.metas.filter((m) => !current.metas.some((c) => sameMeta(c, m)));
      const left = current.metas.filter((c) => !newRefs.has(c.phx_ref));
      if (joined.length > 0) joins[key] = { ...newPresence, metas: joined };
      if (left.length > 0) leaves[key] = { ...current, metas: left };
    }
    return Presence.syncDiff(state, { joins, leaves }, onJoin, onLeave);
  }

  // Phoenix's Presence.syncDiff, made idempotent: joins first (a meta
  // replaces the one of the same phx_ref, if any; one already there, same
  // phx_ref and content, is no join), then leaves (by phx_ref; one not
  // there is no leave).  A changed meta, a join of its new phx_ref with
  // phx_ref_prev and a leave of the old one, is an onJoin and an onLeave.
  // onJoin(key, currentPresence or undefined, {metas: joined}) and
  // onLeave(key, currentPresence after the leave, {metas: the metas
  // removed}) are called only for what changed.  Returns the new state; the
  // one given is not modified.
  static syncDiff(currentState, diff, onJoin = noop, onLeave = noop) {
    const state = cloneMap(currentState);
    const joins = cloneMap(diff && diff.joins);
    const leaves = cloneMap(diff && diff.leaves);
    for (const [key, newPresence] of Object.entries(joins)) {
      const current = state[key];
      const currentMetas = current ? current.metas : [];
      const joined = newPresence.metas.filter((m) => !currentMetas.some((c) => sameMeta(c, m)));
      if (joined.length === 0) continue;
      const refs = new Set(joined.map((m) => m.phx_ref));
      state[key] = { ...newPresence, metas: [...currentMetas.filter((c) => !refs.has(c.phx_ref)), ...joined] };
      onJoin(key, current, { ...newPresence, metas: joined });
    }
    for (const [key, leftPresence] of Object.entries(leaves)) {
      const current = state[key];
      if (!current) continue;
      const refs = new Set(leftPresence.metas.map((m) => m.phx_ref));
      const left = current.metas.filter((m) => refs.has(m.phx_ref));
      if (left.length === 0) continue;
      current.metas = current.metas.filter((m) => !refs.has(m.phx_ref));
      if (current.metas.length === 0) delete state[key];
      onLeave(key, current, { ...leftPresence, metas: left });
    }
    return state;
  }

  // Phoenix's Presence.list: chooser(key, presence) for each key.
  static list(presences, chooser = (key, presence) => presence) {
    return Object.keys(presences).map((key) => chooser(key, presences[key]));
  }
}

// Say that key is typing on topic (db: a pg client or pool).
async function typing(db, topic, key) {
  await db.query('SELECT pgapp.typing($1, $2)', [topic, key]);
}

module.exports = { Presence, typing };
