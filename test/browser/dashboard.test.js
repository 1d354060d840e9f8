// test/browser/dashboard.test.js: examples/web/dashboard.html (the live
// dashboard of examples/dashboard.sql) in Chromium, as a person uses it: the
// snapshot on join, orders inserted in SQL appearing (never more than 20
// rows), sorting by each column, the debounced search, users:activity and
// system:health, the gauge, the reconnecting banner across a gateway
// restart, the keyboard, screenshots at desktop and phone widths.
//
// The tests share one page and run in order (each starts from what the one
// before left).  Every wait is for what the page shows, bounded by WAIT_MS.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  URL_BASE, WAIT_MS, closeBrowser, closeDb, gateway, newPage, screenshot, since, sql, token,
  withoutRefusedReconnects,
} from './helpers.js';

let page;

// The rows of the orders table, as shown: id, customer, total, time (ms).
async function rows() {
  return page.locator('#orders tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    id: Number(tr.dataset.id),
    customer: tr.cells[1].textContent.trim(),
    total: Number(tr.cells[2].textContent.replace(/[^0-9.]/g, '')),
    time: Date.parse(tr.querySelector('time').getAttribute('datetime')),
  })));
}

// The ids of the 20 most recent orders (the feed's order), or of those the
// search q finds, from the database.
async function recentIds(q = null) {
  const r = await sql(`SELECT (e ->> 'id')::bigint AS id
                         FROM jsonb_array_elements(dashboard.recent_orders($1)) AS e`, [q]);
  return r.map((x) => Number(x.id));
}

// Wait until the table shows exactly the orders ids (in any order).
async function waitForIds(ids) {
  await page.waitForFunction((want) => {
    const have = [...document.querySelectorAll('#orders tbody tr')].map((tr) => Number(tr.dataset.id));
    return have.length === want.length && want.every((id) => have.includes(id));
  }, ids, { timeout: WAIT_MS });
}

async function insertOrder(customer, total) {
  const r = await sql(`INSERT INTO dashboard."order" (customer_id, total)
                       SELECT id, $2 FROM dashboard.customer WHERE name = $1 RETURNING id`, [customer, total]);
  return Number(r[0].id);
}

const cardValue = (id) => page.locator(`#${id}`).getAttribute('data-value');

async function waitLive(p = page) {
  await p.locator('#live-status[data-state="live"]').waitFor({ timeout: WAIT_MS });
}

before(async () => {
  page = await newPage('desktop');
  page.wsFrames = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => page.wsFrames.push(String(f.payload))));
});

after(async () => {
  if (page) await page.context().close();
  await closeBrowser();
  await closeDb();
});

test('loads with a token and shows the snapshot: orders, active users, health', async () => {
  const t0 = performance.now();
  await page.goto(`${URL_BASE}/dashboard.html#token=${await token('dash-alice')}`);
  assert.equal(await page.title(), 'Live dashboard · pgapp');
  await waitLive();
  console.log(`latency: page load to the three topics joined: ${since(t0)} ms`);
  // the token left the address bar
  assert.equal(new URL(page.url()).hash, '');

  await waitForIds(await recentIds());
  const [snap] = await sql(`SELECT dashboard.active_users() AS users,
      (SELECT count(*) FROM dashboard."order" WHERE created_at >= date_trunc('day', now())) AS today`);
  assert.equal(await cardValue('card-active-users'), String(snap.users));
  assert.equal(await cardValue('card-orders-today'), String(snap.today));
  assert.equal(await page.locator('#health-status').textContent(), 'ok');
  const gauge = Number(await page.locator('#gauge').getAttribute('aria-valuenow'));
  assert.ok(gauge > 0 && gauge <= 100, `gauge ${gauge}`);
  assert.equal(await page.locator('[data-connection-banner]').isHidden(), true);
  // the chart holds the snapshot's orders
  assert.equal(Number(await page.locator('#chart').getAttribute('data-points')), (await recentIds()).length);
  assert.deepEqual(page.problems, []);
});

test('an order inserted in SQL appears at once, and counts', async () => {
  const before = Number(await cardValue('card-orders-today'));
  const t0 = performance.now();
  const id = await insertOrder('Grace', 12.34);
  await page.locator(`#orders tbody tr[data-id="${id}"]`).waitFor({ timeout: WAIT_MS });
  console.log(`latency: INSERT committed to its row shown: ${since(t0)} ms`);
  const first = (await rows())[0];
  assert.deepEqual({ id: first.id, customer: first.customer, total: first.total }, { id, customer: 'Grace', total: 12.34 });
  await page.waitForFunction((n) => document.querySelector('#card-orders-today').dataset.value === String(n),
    before + 1, { timeout: WAIT_MS });
  assert.equal(await page.locator('#card-orders-today .trend').getAttribute('data-trend'), 'up');
  assert.equal(await page.locator('#chart .bar.latest title').textContent(), `#${id}: 12.34`);
});

test('never more than 20 orders: the 21st drops the oldest', async () => {
  // up to 20 orders (the demo has 3, and the test above added one): all shown
  const [{ n }] = await sql('SELECT count(*)::int AS n FROM dashboard."order"');
  for (let i = n; i < 20; i++) await insertOrder(['Ada', 'Grace', 'Edsger', 'Barbara'][i % 4], 10 + i);
  const twenty = await recentIds();
  assert.equal(twenty.length, 20);
  await waitForIds(twenty);
  const oldest = twenty[19];
  // the 21st: in, and the oldest out
  const id = await insertOrder('Barbara', 77.7);
  await waitForIds([id, ...twenty.slice(0, 19)]);
  assert.equal(await page.locator('#orders tbody tr').count(), 20);
  assert.equal(await page.locator(`#orders tbody tr[data-id="${oldest}"]`).count(), 0);
  assert.deepEqual(await recentIds(), [id, ...twenty.slice(0, 19)]);
});

test('sorting by each column header (aria-sort follows)', async () => {
  const cmp = {
    id: (a, b) => a.id - b.id,
    customer: (a, b) => a.customer.localeCompare(b.customer, 'en', { sensitivity: 'base', numeric: true }) || a.id - b.id,
    total: (a, b) => a.total - b.total || a.id - b.id,
    created_at: (a, b) => a.time - b.time || a.id - b.id,
  };
  const names = { id: 'Order', customer: 'Customer', total: 'Total', created_at: 'Time' };
  for (const key of ['id', 'customer', 'total', 'created_at']) {
    const th = page.locator(`#orders th[data-key="${key}"]`);
    const button = th.getByRole('button', { name: names[key] });
    for (let click = 0; click < 2; click++) {
      await button.click();
      const dir = await th.getAttribute('aria-sort');
      assert.ok(dir === 'ascending' || dir === 'descending', `${key}: aria-sort ${dir}`);
      const shown = await rows();
      const want = [...shown].sort(dir === 'ascending' ? cmp[key] : (a, b) => cmp[key](b, a));
      assert.deepEqual(shown.map((r) => r.id), want.map((r) => r.id), `${key} ${dir}`);
      // only the sorted column says so
      assert.equal(await page.locator('#orders th[aria-sort]').count(), 1);
    }
  }
  // back to the newest first
  if (await page.locator('#orders th[data-key="created_at"]').getAttribute('aria-sort') !== 'descending') {
    await page.getByRole('button', { name: 'Time' }).click();
  }
  assert.equal(await page.locator('#orders th[data-key="created_at"]').getAttribute('aria-sort'), 'descending');
  // a new order goes to its place in the sorted table: by total, descending, the largest is first
  await page.getByRole('button', { name: 'Total' }).click();
  assert.equal(await page.locator('#orders th[data-key="total"]').getAttribute('aria-sort'), 'descending');
  const [{ top }] = await sql('SELECT max(total) + 1 AS top FROM dashboard."order"');
  const big = await insertOrder('Ada', top);
  await page.waitForFunction((id) => document.querySelector('#orders tbody tr')?.dataset.id === String(id),
    big, { timeout: WAIT_MS });
  assert.equal(await page.locator('#orders tbody tr').count(), 20);
  await page.getByRole('button', { name: 'Time' }).click();
  if (await page.locator('#orders th[data-key="created_at"]').getAttribute('aria-sort') !== 'descending') {
    await page.getByRole('button', { name: 'Time' }).click();
  }
});

test('the search filters orders (server-side, debounced), follows new orders, and clears', async () => {
  const search = page.getByLabel('Search orders');
  const pushes = () => page.wsFrames.filter((f) => f.includes('"search"')).length;
  const before = pushes();
  await search.pressSequentially('Grace', { delay: 20 });
  await page.locator('#orders[data-query="Grace"]').waitFor({ timeout: WAIT_MS });
  const grace = await recentIds('Grace');
  await waitForIds(grace);
  assert.ok((await rows()).every((r) => r.customer === 'Grace'));
  console.log(`search: ${pushes() - before} push(es) for 5 keystrokes 20 ms apart (debounce 300 ms)`);
  assert.match(await page.locator('#orders-summary').textContent(), /matching “Grace”/);

  // while searching, a new order shows only if it matches (events come in commit order)
  const ada = await insertOrder('Ada', 5);
  const graceNew = await insertOrder('Grace', 6);
  await page.locator(`#orders tbody tr[data-id="${graceNew}"]`).waitFor({ timeout: WAIT_MS });
  assert.equal(await page.locator(`#orders tbody tr[data-id="${ada}"]`).count(), 0);

  // by order number
  await search.fill(`#${ada}`);
  await page.locator(`#orders[data-query="#${ada}"]`).waitFor({ timeout: WAIT_MS });
  await waitForIds([ada]);

  // the text is taken literally: % finds nothing
  await search.fill('%');
  await page.locator('#orders[data-query="%"]').waitFor({ timeout: WAIT_MS });
  assert.equal(await page.locator('#orders tbody tr').count(), 0);
  assert.match(await page.locator('#orders-summary').textContent(), /No orders matching/);

  await search.fill('');
  await page.locator('#orders[data-query=""]').waitFor({ timeout: WAIT_MS });
  await waitForIds(await recentIds());
  assert.equal(await page.locator('#orders tbody tr').count(), 20);
});

test('users:activity: a customer seen joins the active users, one seen 6 minutes ago leaves', async () => {
  const activeUsers = async () => (await sql('SELECT dashboard.active_users()::int AS n'))[0].n;
  const shown = (v) => page.waitForFunction(
    (want) => document.querySelector('#card-active-users').dataset.value === String(want), v, { timeout: WAIT_MS });
  // Grace, then Edsger, seen now (whoever was active before)
  await sql("UPDATE dashboard.customer SET last_seen_at = now() WHERE name = 'Grace'");
  await page.locator('#users li .name', { hasText: 'Grace' }).waitFor({ timeout: WAIT_MS });
  await shown(await activeUsers());
  const before = await activeUsers();
  await sql("UPDATE dashboard.customer SET last_seen_at = now() WHERE name = 'Edsger'");
  let n = await activeUsers();
  await shown(n);
  assert.equal((await page.locator('#users li .name').first().textContent()), 'Edsger');
  if (n > before) assert.equal(await page.locator('#card-active-users .trend').getAttribute('data-trend'), 'up');

  await sql("UPDATE dashboard.customer SET last_seen_at = now() - interval '6 minutes' WHERE name = 'Grace'");
  n = await activeUsers();
  await shown(n);
  assert.equal(await page.locator('#users li .name', { hasText: 'Grace' }).count(), 0);
  assert.equal(await page.locator('#card-active-users .trend').getAttribute('data-trend'), 'down');
});

test('system:health: publish_health() updates the panel; the gauge moves to a new value', async () => {
  const updates = Number(await page.locator('#health').getAttribute('data-updates'));
  await sql('SELECT dashboard.publish_health()');
  await page.waitForFunction((n) => Number(document.querySelector('#health').dataset.updates) > n,
    updates, { timeout: WAIT_MS });
  assert.equal(await page.locator('#health-status').textContent(), 'ok');

  // a health panel with known numbers, as publish_health would send it
  const t0 = performance.now();
  await sql(`SELECT pgapp.broadcast('system:health', 'updated', dashboard.health()
               || '{"blks_hit_ratio": 0.5, "numbackends": 42, "status": "degraded"}')`);
  const gauge = page.locator('#gauge');
  await page.locator('#gauge[aria-valuenow="50.0"]').waitFor({ timeout: WAIT_MS });
  console.log(`latency: system:health broadcast to the gauge's new value: ${since(t0)} ms`);
  assert.equal(await gauge.getAttribute('data-level'), 'poor');
  assert.match(await gauge.getAttribute('aria-valuetext'), /^50\.0% /);
  assert.equal(await page.locator('#health-status').textContent(), 'degraded');
  assert.equal(await cardValue('card-connections'), '42');
  // the number animates to the value (and stays there)
  await page.locator('#gauge .gauge-text', { hasText: '50.0%' }).waitFor({ timeout: WAIT_MS });
  await screenshot(page, 'dashboard-degraded', 'desktop');

  await sql('SELECT dashboard.publish_health()');
  await page.waitForFunction(() => document.querySelector('#gauge').getAttribute('aria-valuenow') !== '50.0',
    null, { timeout: WAIT_MS });
  assert.equal(await page.locator('#health-status').textContent(), 'ok');
});

test('the keyboard reaches the search box and every sort button; Enter sorts', async () => {
  await page.locator('body').focus();
  await page.evaluate(() => document.activeElement?.blur());
  const reached = new Set();
  for (let i = 0; i < 40 && reached.size < 5; i++) {
    await page.keyboard.press('Tab');
    const what = await page.evaluate(() => {
      const el = document.activeElement;
      if (el?.id === 'search') return 'search';
      const th = el?.closest?.('th[data-key]');
      return th && el.tagName === 'BUTTON' ? th.dataset.key : null;
    });
    if (what) reached.add(what);
  }
  assert.deepEqual([...reached].sort(), ['created_at', 'customer', 'id', 'search', 'total']);
  // Enter on a focused sort button sorts
  await page.getByRole('button', { name: 'Customer' }).focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#orders th[data-key="customer"]').getAttribute('aria-sort'), 'ascending');
  await page.getByRole('button', { name: 'Time' }).click();
});

test('the reconnecting banner shows while the gateway is down, and goes when it is back', async () => {
  const banner = page.locator('[data-connection-banner]');
  assert.equal(await banner.isHidden(), true);
  let missed;
  gateway('stop');
  try {
    await banner.waitFor({ state: 'visible', timeout: WAIT_MS });
    assert.match(await banner.textContent(), /Reconnecting/);
    assert.notEqual(await page.locator('#live-status').getAttribute('data-state'), 'live');
    // an order made while the page is cut off
    missed = await insertOrder('Ada', 3.21);
  } finally {
    gateway('start');
  }
  const t0 = performance.now();
  await banner.waitFor({ state: 'hidden', timeout: WAIT_MS });
  await waitLive();
  console.log(`latency: gateway started to the page live again: ${since(t0)} ms`);
  // the rejoin brought a fresh snapshot (with the order made meanwhile) ...
  await page.locator(`#orders tbody tr[data-id="${missed}"]`).waitFor({ timeout: WAIT_MS });
  await waitForIds(await recentIds());
  // ... and broadcasts reach it again
  const id = await insertOrder('Edsger', 4.56);
  await page.locator(`#orders tbody tr[data-id="${id}"]`).waitFor({ timeout: WAIT_MS });
  assert.equal(await page.locator('#orders tbody tr').count(), 20);
  // (Chromium's own console errors for the refused reconnections are not the page's)
  page.problems = withoutRefusedReconnects(page.problems);
  assert.deepEqual(page.problems, []);
});

test('screenshots at desktop and phone widths, with no console error', async () => {
  await screenshot(page, 'dashboard', 'desktop');
  assert.deepEqual(page.problems, []);

  // the phone asks for reduced motion: the gauge and the rows do not animate
  const phone = await newPage('phone');
  await phone.emulateMedia({ reducedMotion: 'reduce' });
  await phone.goto(`${URL_BASE}/dashboard.html#token=${await token('dash-bob', { role: 'anon' })}`);
  await waitLive(phone);
  await phone.locator('#orders tbody tr').nth(19).waitFor({ timeout: WAIT_MS });
  // nothing wider than the phone's screen but the table's own scroller
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  const tableOverflow = await phone.evaluate(() =>
    document.querySelector('#orders').scrollWidth - document.querySelector('.table-wrap').clientWidth);
  assert.ok(tableOverflow <= 0, `the orders table is ${tableOverflow}px wider than the phone`);
  // with reduced motion the gauge shows its value at once
  const now = await phone.locator('#gauge').getAttribute('aria-valuenow');
  assert.equal(await phone.locator('#gauge .gauge-text').textContent(), `${now}%`);
  await screenshot(phone, 'dashboard', 'phone');
  assert.deepEqual(phone.problems, []);
  await phone.context().close();
});

test('a refused token: the page asks for another one', async () => {
  const other = await newPage('desktop');
  await other.goto(`${URL_BASE}/dashboard.html#token=not-a-token`);
  await other.getByRole('alert').filter({ hasText: 'refused this token' }).waitFor({ timeout: WAIT_MS });
  await other.getByLabel(/^Token/).fill(await token('dash-carol'));
  await other.getByRole('button', { name: 'Connect' }).click();
  await waitLive(other);
  await other.locator('#orders tbody tr').first().waitFor({ timeout: WAIT_MS });
  assert.equal(await other.locator('#page-error').isHidden(), true);
  assert.deepEqual(other.problems, []);
  await other.context().close();
});

test('an expired token: the page asks for another one without trying to connect', async () => {
  const other = await newPage('desktop');
  const sockets = [];
  other.on('websocket', (ws) => sockets.push(ws.url()));
  // only the claims matter to the page's early check (the gateway checks the signature)
  const claims = Buffer.from(JSON.stringify({ sub: 'dash-dave', role: 'app_user', exp: 1 })).toString('base64url');
  await other.goto(`${URL_BASE}/dashboard.html#token=e30.${claims}.x`);
  await other.getByRole('alert').filter({ hasText: 'refused this token' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await other.getByLabel(/^Token/).isVisible(), true);
  assert.equal(await other.locator('[data-connection-banner]').first().isHidden(), true);
  assert.deepEqual(sockets, [], 'no WebSocket was opened with the expired token');
  assert.deepEqual(other.problems, []);
  await other.context().close();
});
