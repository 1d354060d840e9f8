#!/usr/bin/env node
// examples/clients/node/listen.js: print the messages of pgapp PubSub topics.
//
//   node listen.js topic [topic...]
//
// Connects with the PG* environment variables (PGHOST, PGPORT, PGDATABASE,
// PGUSER, ...), subscribes to each topic and prints one JSON line per
// message on standard output, until interrupted.  Errors go to standard
// error; a lost connection ends the program with status 1.
'use strict';

const pubsub = require('./pubsub');

async function main(topics) {
  if (topics.length === 0) {
    console.error('usage: node listen.js topic [topic...]');
    process.exit(2);
  }
  const sub = await pubsub.connect();
  sub.on('message', (msg) => console.log(JSON.stringify(msg)));
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
  for (const topic of topics) {
    const channel = await pubsub.subscribe(sub, topic);
    console.error(`listening to "${topic}"` + (channel === topic ? '' : ` on channel ${channel}`));
  }
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      sub.listener.removeAllListeners('end');
      pubsub.close(sub).then(() => process.exit(0));
    });
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`listen.js: ${err.message}`);
  process.exit(1);
});
