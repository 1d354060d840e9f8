// examples/clients/node/pubsub.js: receive pgapp PubSub messages in Node.
//
//   const pubsub = require('./pubsub');
//   const sub = await pubsub.connect();          // PG* environment, or a pg config
//   sub.on('message', (msg) => console.log(msg.topic, msg.event, msg.payload));
//   sub.on('error', (err) => console.error(err));
//   await pubsub.subscribe(sub, 'orders:new');
//
// A broadcast arrives as a NOTIFY on the topic's channel whose payload is
// the JSON message {"topic", "event", "payload", "id", "at"}.  A message of
// 8000 bytes or more does not fit in a NOTIFY: the notification then says
// {"topic", "event", "id", "at", "ref": true, "size": n} and the whole
// message is read with pgapp.message(id).  This library does that read on
// a small pool of connections of its own (the listening connection only
// listens), so 'message' always carries the whole message, and it emits
// messages in the order their notifications arrived, however long a read
// takes.  Reconnecting after a lost connection is left to the application.
'use strict';

const crypto = require('crypto');
const { EventEmitter } = require('events');
const pg = require('pg');

// The NOTIFY channel of a topic, as pgapp.channel(topic) computes it: the
// topic itself when it fits in an identifier (63 bytes), else 'pgapp:'
// followed by the md5 of the topic in hex.
function channelOf(topic) {
  if (Buffer.byteLength(topic, 'utf8') <= 63) return topic;
  return 'pgapp:' + crypto.createHash('md5').update(topic, 'utf8').digest('hex');
}

// One listening connection, its topics, and a pool to fetch stored messages.
// Events: 'message' (msg), and 'error' (err) for a lost connection or, with
// err.notification set, for a notification whose message could not be had.
class Subscriber extends EventEmitter {
  constructor(config = {}) {
    super();
    if (typeof config === 'string') config = { connectionString: config };
    this.listener = new pg.Client(config);
    // a stored message is fetched on its own connection, so a slow fetch
    // never holds up the listener (max 2: fetches are rare and short)
    this.pool = new pg.Pool({ ...config, max: 2 });
    this.topics = new Map(); // channel -> topic
    this.tail = Promise.resolve(); // the last message waiting to be emitted
    this.listener.on('notification', (n) => this.onNotification(n));
    this.listener.on('error', (err) => this.emit('error', err));
    this.pool.on('error', (err) => this.emit('error', err));
  }

  async subscribe(topic) {
    // Remember the channel before LISTEN commits: a notification may arrive
    // before the query's own result does.
    const expected = channelOf(topic);
    const known = this.topics.has(expected);
    this.topics.set(expected, topic);
    let channel;
    try {
      const { rows } = await this.listener.query('SELECT pgapp.subscribe($1) AS channel', [topic]);
      channel = rows[0].channel;
    } catch (err) {
      if (!known) this.topics.delete(expected);
      throw err;
    }
    if (channel !== expected) {
      // the server's word wins (a server that hashes topics differently)
      this.topics.delete(expected);
      this.topics.set(channel, topic);
    }
    return channel;
  }

  // Stop listening to a topic (no topic: to every topic).
  async unsubscribe(topic = null) {
    await this.listener.query('SELECT pgapp.unsubscribe($1)', [topic]);
    for (const [channel, t] of this.topics) {
      if (topic === null || t === topic) this.topics.delete(channel);
    }
  }

  async close() {
    await Promise.allSettled([this.listener.end(), this.pool.end()]);
  }

  onNotification({ channel, payload }) {
    // other LISTENs on this connection, or a topic already unsubscribed
    if (!this.topics.has(channel)) return;
    // Start reading at once (fetches may overlap), but emit in arrival
    // order: each message waits for the one before it.
    const ready = this.resolve(channel, payload);
    ready.catch(() => {}); // handled below, in turn; not an unhandled rejection meanwhile
    this.tail = this.tail
      .then(() => ready)
      .then((msg) => this.emit('message', msg), (err) => this.emit('error', err))
      // a listener that throws: fail as a synchronous emit would, and keep
      // the queue going (tail never rejects)
      .catch((err) => process.nextTick(() => { throw err; }));
  }

  // The whole message of a notification: parsed, or fetched by its id.  A
  // failure carries the notification (err.notification), which tells it
  // from a failure of the connection.
  async resolve(channel, payload) {
    try {
      const msg = JSON.parse(payload);
      if (msg.ref !== true) return msg;
      const { rows } = await this.pool.query('SELECT pgapp.message($1) AS msg', [msg.id]);
      return rows[0].msg;
    } catch (err) {
      // not JSON (someone else NOTIFYs on the channel), or a stored message
      // that cannot be read, e.g. 42704: older than pgapp.pubsub_retention
      err.notification = { channel, payload };
      throw err;
    }
  }
}

// Connect a subscriber (config as for pg.Client, an object or a connection
// string; {} uses the PG* environment variables).
async function connect(config = {}) {
  const sub = new Subscriber(config);
  await sub.listener.connect();
  return sub;
}

const subscribe = (sub, topic) => sub.subscribe(topic);
const unsubscribe = (sub, topic) => sub.unsubscribe(topic);
const close = (sub) => sub.close();

module.exports = { connect, subscribe, unsubscribe, close, channelOf, Subscriber };
