// bench/pubsub/drain.js: one listener that drains a topic's channel while
// the writers run, as a dashboard would; prints how many it received.
// Uses npm pg from examples/clients/node (run npm ci there first).
'use strict';
const { Client } = require('../../examples/clients/node/node_modules/pg');

async function main() {
  const client = new Client();
  let received = 0;
  await client.connect();
  client.on('notification', () => { received++; });
  await client.query('SELECT pgapp.subscribe($1)', ['bench_orders']);
  process.on('SIGTERM', async () => {
    console.log(`drained ${received} notification(s)`);
    await client.end();
    process.exit(0);
  });
  console.error('listening');
}
main().catch((e) => { console.error(e); process.exit(1); });
