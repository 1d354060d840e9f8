// test/browser/index.test.js: examples/web/index.html (the socket page) in
// Chromium: it loads with no error (the phoenix client served from
// examples/web/vendor/), connects with a token, joins a topic and shows a
// broadcast made in SQL.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  URL_BASE, WAIT_MS, closeBrowser, closeDb, newPage, screenshot, since, sql, token,
} from './helpers.js';

before(async () => {
  // a channel anyone with a token may join (the demo database is the suite's own)
  await sql(`CREATE SCHEMA IF NOT EXISTS browser_test;
    CREATE OR REPLACE FUNCTION browser_test.join(topic text, params jsonb) RETURNS jsonb
    LANGUAGE sql AS $$ SELECT jsonb_build_object('ok', jsonb_build_object('topic', topic)) $$;
    GRANT USAGE ON SCHEMA browser_test TO app_user;
    SELECT pgapp.define_channel('browser:*', join => 'browser_test.join(text, jsonb)');`);
});

after(async () => {
  await sql("SELECT pgapp.drop_channel('browser:*'); DROP SCHEMA browser_test CASCADE");
  await closeBrowser();
  await closeDb();
});

for (const viewport of ['desktop', 'phone']) {
  test(`index.html (${viewport}): joins with a token and shows a broadcast from SQL`, async () => {
    const page = await newPage(viewport);
    await page.goto(`${URL_BASE}/`);
    assert.equal(await page.title(), 'pgapp-gateway: examples/web');
    await page.getByLabel('Token').fill(await token('alice'));
    await page.getByLabel('Topic').fill(`browser:${viewport}`);
    await page.getByRole('button', { name: 'Connect and join' }).click();
    const log = page.locator('#log');
    await log.getByText(`joined browser:${viewport}`).waitFor({ timeout: WAIT_MS });

    const t0 = performance.now();
    await sql('SELECT pgapp.broadcast($1, $2, $3)', [`browser:${viewport}`, 'hello', '{"n": 42}']);
    await log.getByText(`browser:${viewport} hello {"n":42}`).waitFor({ timeout: WAIT_MS });
    console.log(`latency: broadcast committed to shown on the page: ${since(t0)} ms (${viewport})`);

    await screenshot(page, 'index', viewport);
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
}
