// test/browser/chat.test.js: examples/web/chat.html (the chat of
// examples/chat.sql) in Chromium, as two people would use it: Alice and Bob,
// each in a page of their own, in the room "browser-chat" (Eve, whose name
// is HTML, wrote in its history).  They join and see the last 50 messages;
// Alice sends with Enter and Bob sees it; Bob sees "Alice is typing…" until
// typing_stopped; both are listed online (Presence) and Alice drops out when
// her page closes; the 11th quick message gets the rate limit's reply; a
// message that is too long gets the changeset's error; a file too large is
// refused in the page, a small one appears as a link once the uploads job
// has stored it, and the link downloads the stored blob; the reconnecting
// banner comes and goes with the gateway.  Waits are for what the pages
// show, never for time to pass.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';

import {
  URL_BASE, WAIT_MS, closeBrowser, closeDb, gateway, newPage, screenshot, since, sql,
} from './helpers.js';

const ROOM = 'browser-chat';
const EVIL = '<img src=x onerror="window.__pwned=1">';
let alice;
let bob;
let tokens;

// A page of the chat for token, in room ROOM, once its history is shown.
async function open(token, viewport = 'desktop') {
  const page = await newPage(viewport);
  await page.goto(`${URL_BASE}/chat.html#token=${token}&room=${ROOM}`);
  await page.getByRole('heading', { name: 'Browser test room' }).waitFor({ timeout: WAIT_MS });
  await messages(page).getByText('history 55', { exact: true }).waitFor({ timeout: WAIT_MS });
  return page;
}

const messages = (page) => page.locator('#messages');
const online = (page) => page.locator('#online');
const problem = (page) => page.locator('#composer-error');

// Resolves once the page's element matching selector has exactly text.
async function textIs(page, selector, text) {
  await page.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent.trim() === want,
    [selector, text], { timeout: WAIT_MS });
}

// The names in the page's online list, sorted.
async function onlineNames(page) {
  return (await online(page).locator('li').allTextContents()).map((s) => s.replace(/\s+/g, ' ').trim()).sort();
}

before(async () => {
  // the room and its people (chat.demo_token adds them and returns a token), and 55 messages of history
  await sql(`INSERT INTO chat.room (id, name) VALUES ($1, 'Browser test room') ON CONFLICT DO NOTHING`, [ROOM]);
  tokens = {};
  for (const [sub, name] of [['web_alice', 'Alice'], ['web_bob', 'Bob'], ['web_eve', '<b>Eve</b>']]) {
    tokens[sub] = (await sql('SELECT chat.demo_token($1, $2, $3) AS t', [sub, name, ROOM]))[0].t;
  }
  await sql(`INSERT INTO chat.message (room_id, author_id, author_name, body)
             SELECT $1, 'web_bob', '', 'history ' || n FROM generate_series(1, 54) AS n`, [ROOM]);
  await sql(`INSERT INTO chat.message (room_id, author_id, author_name, body) VALUES ($1, 'web_eve', '', $2)`,
    [ROOM, EVIL]);
  await sql(`INSERT INTO chat.message (room_id, author_id, author_name, body) VALUES ($1, 'web_bob', '', 'history 55')`,
    [ROOM]);
});

after(async () => {
  await closeBrowser();
  await closeDb();
});

test('chat.html: two users join the room and see its last 50 messages, escaped', async () => {
  alice = await open(tokens.web_alice);
  bob = await open(tokens.web_bob);
  for (const page of [alice, bob]) {
    // the last 50 of 56: history 7 .. 54, Eve's, history 55
    assert.equal(await messages(page).locator('li').count(), 50);
    assert.equal(await messages(page).getByText('history 6', { exact: true }).count(), 0);
    await messages(page).getByText('history 7', { exact: true }).waitFor();
    // what the database sent is text, never markup
    await messages(page).getByText(EVIL, { exact: true }).waitFor();
    await messages(page).getByText('<b>Eve</b>', { exact: true }).waitFor();
    assert.equal(await messages(page).locator('img, b').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    // the room list: this room, current
    const button = page.getByRole('button', { name: 'Browser test room' });
    assert.equal(await button.getAttribute('aria-current'), 'true');
  }
  assert.match(await alice.locator('#whoami').textContent(), /Signed in as Alice/);
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});

test('chat.html: a room Bob is added to appears in his list; he opens it with the keyboard and comes back', async () => {
  await sql(`INSERT INTO chat.room (id, name) VALUES ('browser-second', 'Second room') ON CONFLICT DO NOTHING`);
  await sql(`INSERT INTO chat.member (room_id, user_id) VALUES ('browser-second', 'web_bob')`);
  const second = bob.getByRole('button', { name: 'Second room' });
  await second.waitFor({ timeout: WAIT_MS });
  // keyboard only: the room's button, Enter, and the message box has the focus
  await second.focus();
  await bob.keyboard.press('Enter');
  await bob.getByRole('heading', { name: 'Second room' }).waitFor({ timeout: WAIT_MS });
  await bob.waitForFunction(() => document.activeElement?.id === 'body' && !document.activeElement.disabled,
    null, { timeout: WAIT_MS });
  assert.equal(await second.getAttribute('aria-current'), 'true');
  assert.equal(await messages(bob).locator('li').count(), 0);
  await bob.keyboard.type('first in the second room');
  await bob.keyboard.press('Enter');
  await bob.locator('#messages li.mine').getByText('first in the second room').waitFor({ timeout: WAIT_MS });
  // Tab from the box reaches the Send button, then the file input
  await bob.keyboard.press('Tab');
  assert.equal(await bob.evaluate(() => document.activeElement?.id), 'send');
  await bob.keyboard.press('Tab');
  assert.equal(await bob.evaluate(() => document.activeElement?.id), 'file');
  // removed from it: the page says so and the room leaves the list
  await sql(`DELETE FROM chat.member WHERE room_id = 'browser-second' AND user_id = 'web_bob'`);
  await bob.locator('#page-error').getByText('You were removed from the room browser-second.').waitFor({ timeout: WAIT_MS });
  await second.waitFor({ state: 'detached', timeout: WAIT_MS });
  await bob.getByRole('button', { name: 'Browser test room' }).click();
  await messages(bob).getByText('history 55', { exact: true }).waitFor({ timeout: WAIT_MS });
  assert.equal((await bob.locator('#page-error').textContent()).trim(), '');
  assert.deepEqual(bob.problems, []);
});

test('chat.html: presence lists both users on both pages', async () => {
  await textIs(alice, '#online-count', '(2)');
  await textIs(bob, '#online-count', '(2)');
  assert.deepEqual(await onlineNames(alice), ['Alice (you)', 'Bob']);
  assert.deepEqual(await onlineNames(bob), ['Alice', 'Bob (you)']);
});

test('chat.html: Alice sends with Enter (Shift+Enter is a new line) and Bob sees it', async () => {
  const box = alice.getByLabel('Message', { exact: true });
  await box.fill('hello from Alice');
  const t0 = performance.now();
  await box.press('Enter');
  await messages(bob).getByText('hello from Alice', { exact: true }).waitFor({ timeout: WAIT_MS });
  console.log(`latency: Enter in one page to the message shown in the other: ${since(t0)} ms`);
  // the sender's copy is the reply, shown as its own
  await alice.locator('#messages li.mine').getByText('hello from Alice').waitFor({ timeout: WAIT_MS });
  assert.equal(await box.inputValue(), '');

  await box.pressSequentially('line one');
  await box.press('Shift+Enter');
  await box.pressSequentially('line two');
  assert.equal(await box.inputValue(), 'line one\nline two');
  await box.press('Enter');
  const two = messages(bob).locator('li .body').filter({ hasText: 'line one' });
  await two.waitFor({ timeout: WAIT_MS });
  assert.equal(await two.textContent(), 'line one\nline two');
  const stored = await sql(`SELECT author_name, body FROM chat.message WHERE room_id = $1 ORDER BY id DESC LIMIT 2`, [ROOM]);
  assert.deepEqual(stored, [
    { author_name: 'Alice', body: 'line one\nline two' },
    { author_name: 'Alice', body: 'hello from Alice' },
  ]);
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});

test('chat.html: Bob sees "Alice is typing…", gone after typing_stopped', async () => {
  const box = alice.getByLabel('Message', { exact: true });
  const t0 = performance.now();
  await box.pressSequentially('abc');
  await textIs(bob, '#typing', 'Alice is typing…');
  console.log(`latency: a key pressed to "is typing" in the other page: ${since(t0)} ms`);
  // Alice's own page does not say that she types
  assert.equal((await alice.locator('#typing').textContent()).trim(), '');
  // typing_stopped comes 3 s after the last push; the line goes with it
  await textIs(bob, '#typing', '');
  await box.fill('');
});

test('chat.html: a message that is too long shows the changeset error and stays in the box', async () => {
  const box = alice.getByLabel('Message', { exact: true });
  const long = 'x'.repeat(5001);
  await box.fill(long);
  await box.press('Enter');
  await textIs(alice, '#composer-error', 'Message should be at most 5000 character(s).');
  assert.equal((await box.inputValue()).length, 5001);
  await box.fill('');
  assert.deepEqual(alice.problems, []); // a refused push is not a console error
});

test('chat.html: the 11th quick message gets the rate limit reply', async () => {
  // Bob's ten messages of this second are spent in SQL (the limiter's own
  // call, the one key chat.handle_in uses), then the page sends the 11th.
  // Ten typed into the page could spread over more than the one-second
  // window on a loaded machine, so the spending is done at once; should the
  // page's send still fall into the next second, it is spent and sent again.
  const box = bob.getByLabel('Message', { exact: true });
  let body;
  for (let attempt = 1; ; attempt++) {
    body = `quick ${attempt}`;
    await sql(`SELECT pgapp.check_rate('chat:messages:web_bob', 10, 1, 'sliding')
                 FROM generate_series(1, 10)`);
    await box.fill(body);
    await box.press('Enter');
    const refused = problem(bob).getByText('Too fast: at most 10 messages per second. Try again in 1 s.');
    const sent = messages(alice).getByText(body, { exact: true });
    await Promise.race([refused.waitFor({ timeout: WAIT_MS }), sent.waitFor({ timeout: WAIT_MS })]);
    if (await refused.isVisible()) break;
    assert.ok(attempt < 5, 'the 11th message of a second is refused');
  }
  // the refused message is back in the box, for sending again, and was not stored
  assert.equal(await box.inputValue(), body);
  const [{ n }] = await sql('SELECT count(*)::int AS n FROM chat.message WHERE room_id = $1 AND body = $2', [ROOM, body]);
  assert.equal(n, 0);
  await box.fill('');
  assert.deepEqual(bob.problems, []);
});

test('chat.html: a file over the cap is refused in the page; a small one becomes a link when stored', async () => {
  const file = alice.getByLabel(/Attach a file/);
  await textIs(alice, '#file-cap', '(at most 256 kB)');
  await file.setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(300 * 1024, 1) });
  await textIs(alice, '#composer-error', 'big.bin is 300 kB: files of at most 256 kB can be attached.');

  const content = Buffer.from('1. fuel\n2. go <now>\n');
  const t0 = performance.now();
  await file.setInputFiles({ name: 'launch plan.txt', mimeType: 'text/plain', buffer: content });
  const link = (page) => messages(page).getByRole('link', { name: /launch plan\.txt/ });
  await link(bob).waitFor({ timeout: WAIT_MS });
  await link(alice).waitFor({ timeout: WAIT_MS });
  console.log(`latency: file chosen to its link shown in the other page (push, job, broadcast): ${since(t0)} ms`);
  assert.equal((await alice.locator('#composer-error').textContent()).trim(), '');

  // the link names the blob as the recipe does: /uploads/<id>/<name>, the key in chat.blob
  const href = await link(bob).getAttribute('href');
  const [blob] = await sql(`SELECT b.key, b.content_type, b.data FROM chat.blob AS b
                            JOIN chat.attachment AS a ON a.id = b.attachment_id WHERE a.room_id = $1`, [ROOM]);
  assert.match(href, /^\/uploads\/\d+\/launch%20plan\.txt$/);
  assert.equal(blob.key, href.slice(1));
  assert.equal(blob.content_type, 'text/plain');
  assert.deepEqual(blob.data, content);

  // and serves it: following it downloads the stored bytes (over the socket)
  const [download] = await Promise.all([bob.waitForEvent('download', { timeout: WAIT_MS }), link(bob).click()]);
  assert.equal(download.suggestedFilename(), 'launch plan.txt');
  assert.deepEqual(readFileSync(await download.path()), content);

  await screenshot(bob, 'chat', 'desktop');
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});

test('chat.html: Alice drops out of the online list when her page closes', async () => {
  assert.deepEqual(alice.problems, []);
  const t0 = performance.now();
  await alice.context().close();
  alice = undefined;
  await textIs(bob, '#online-count', '(1)');
  console.log(`latency: a page closed to its user gone from the other's online list: ${since(t0)} ms`);
  assert.deepEqual(await onlineNames(bob), ['Bob (you)']);
});

test('chat.html on a phone: the token typed into the form; the room, the people and the box fit', async () => {
  const page = await newPage('phone');
  await page.goto(`${URL_BASE}/chat.html#room=${ROOM}`);
  await page.getByLabel(/^Token/).fill(tokens.web_eve);
  await page.getByLabel(/^Token/).press('Enter');
  await page.getByRole('heading', { name: 'Browser test room' }).waitFor({ timeout: WAIT_MS });
  await messages(page).getByText('history 55', { exact: true }).waitFor({ timeout: WAIT_MS });
  // Bob is there too (names from the database, escaped here as everywhere)
  await textIs(page, '#online-count', '(2)');
  assert.deepEqual(await onlineNames(page), ['<b>Eve</b> (you)', 'Bob']);
  await page.getByLabel('Message', { exact: true }).fill('from a phone');
  await page.getByLabel('Message', { exact: true }).press('Enter');
  await page.locator('#messages li.mine').getByText('from a phone').waitFor({ timeout: WAIT_MS });
  // nothing wider than the screen
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);
  await screenshot(page, 'chat', 'phone');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('chat.html: the reconnecting banner shows while the gateway is down, and the room works after', async () => {
  const banner = bob.locator('[data-connection-banner]');
  assert.equal(await banner.isHidden(), true);
  // the browser reports the refused connections while the gateway is down as console errors:
  // expected here, and only here
  const before = bob.problems.length;
  const joined = (value) => bob.waitForFunction((v) => document.getElementById('messages').dataset.joined === v,
    value, { timeout: WAIT_MS });
  await joined('true');
  gateway('stop');
  await banner.waitFor({ state: 'visible', timeout: WAIT_MS });
  await joined('false');
  gateway('start');
  await banner.waitFor({ state: 'hidden', timeout: WAIT_MS });
  await joined('true');
  const during = bob.problems.splice(before);
  for (const p of during) assert.match(p, /^console: WebSocket connection to 'ws:\/\/[^']*\/socket\/websocket\?[^']*' failed: /);

  // rejoined: a message broadcast from SQL is shown, and Bob's own message goes through
  await sql(`SELECT pgapp.broadcast($1, 'new_msg', jsonb_build_object('id', 1000000, 'body', 'from SQL',
             'author', jsonb_build_object('id', 'web_eve', 'name', 'Eve'), 'inserted_at', now(), 'attachment', null))`,
    [`room:${ROOM}`]);
  await messages(bob).getByText('from SQL', { exact: true }).waitFor({ timeout: WAIT_MS });
  // an "attachment" event whose URL is not the recipe's path gets no link
  await sql(`SELECT pgapp.broadcast($1, 'attachment', jsonb_build_object('id', 999, 'message_id', 1000000,
             'url', 'javascript:window.__pwned=1', 'name', 'evil.txt', 'content_type', 'text/plain', 'size', 5))`,
    [`room:${ROOM}`]);
  await messages(bob).getByText('File: evil.txt (5 bytes), uploading…').waitFor({ timeout: WAIT_MS });
  assert.equal(await messages(bob).locator('a[href^="javascript"]').count(), 0);
  const box = bob.getByLabel('Message', { exact: true });
  await box.fill('back again');
  await box.press('Enter');
  await bob.locator('#messages li.mine').getByText('back again').waitFor({ timeout: WAIT_MS });
  assert.deepEqual(bob.problems, []);
  await bob.context().close();
});

