// test/browser/helpers.js: what the browser tests share.
//
// The suite (scripts/test browser) runs the demo cluster of scripts/run with
// pgapp-gateway serving examples/web/, and gives: the gateway's base URL in
// BROWSER_URL, the demo database in PGHOST, PGPORT, PGDATABASE, PGUSER (a
// superuser: tokens, broadcasts, checks), the Chromium binary in
// CHROMIUM_BIN (Debian's /usr/bin/chromium), the directory for screenshots
// in SCREENSHOTS, and the scripts/run command in DEMO_RUN (to stop and
// start the gateway).  A test waits for what the page shows, never for
// time to pass.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const pg = require('pg');

export const URL_BASE = process.env.BROWSER_URL || 'http://127.0.0.1:4000';
export const SHOTS = process.env.SCREENSHOTS || '';

// How long a page may take to show something it was sent; generous, since
// the CI machine is shared (the suite reports the times it measures).
export const WAIT_MS = Number(process.env.BROWSER_WAIT_MS || 10000);

// Desktop and phone sizes for screenshots.
export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

let db;
// A superuser connection to the demo database, opened on first use.
export async function sql(text, params = []) {
  if (!db) {
    db = new pg.Client();
    await db.connect();
  }
  return (await db.query(text, params)).rows;
}
export async function closeDb() {
  if (db) await db.end();
  db = undefined;
}

// A token from pgapp.encode_token for sub with claims (role app_user unless given).
export async function token(sub, claims = { role: 'app_user' }, ttl = '1 hour') {
  const rows = await sql('SELECT pgapp.encode_token($1, $2::jsonb, $3::interval) AS t',
    [sub, JSON.stringify(claims), ttl]);
  return rows[0].t;
}

let browser;
// The shared headless Chromium.
export async function launch() {
  if (!browser) {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
      headless: true,
      // the suite runs as the postgres user in a container: no user namespaces
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    });
  }
  return browser;
}
export async function closeBrowser() {
  if (browser) await browser.close();
  browser = undefined;
}

// A new page at viewport (a name of VIEWPORTS) that records console errors,
// page errors and failed requests in page.problems: a test ends by asserting
// that list is empty.
export async function newPage(viewport = 'desktop') {
  const b = await launch();
  const context = await b.newContext({ viewport: VIEWPORTS[viewport] });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    // a WebSocket closed on purpose (gateway stopped) is not a failed load
    if (req.resourceType() !== 'websocket') page.problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) page.problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  return page;
}

// Chromium itself logs each refused reconnection while the gateway is down
// ("WebSocket connection to 'ws://.../socket/websocket?...' failed: ...
// ERR_CONNECTION_REFUSED") as a console error, which no page can prevent:
// a test that stops the gateway removes those, and only those, from
// page.problems with this before asserting it is empty.
const REFUSED = /^console: WebSocket connection to 'ws:\/\/[^']+\/socket\/websocket\?[^']*' failed: .*ERR_CONNECTION_REFUSED$/;
export function withoutRefusedReconnects(problems) {
  return problems.filter((p) => !REFUSED.test(p));
}

// Save a screenshot of page as NAME-VIEWPORT.png in SCREENSHOTS (when set).
export async function screenshot(page, name, viewport = 'desktop') {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}-${viewport}.png`), fullPage: true });
}

// Stop or start the demo's gateway (scripts/run gateway-stop / gateway-start).
export function gateway(action) {
  const run = process.env.DEMO_RUN;
  if (!run) throw new Error('DEMO_RUN is not set');
  execFileSync('bash', [run, `gateway-${action}`], { stdio: 'ignore' });
}

// Milliseconds since t0 (performance.now()), rounded.
export function since(t0) {
  return Math.round(performance.now() - t0);
}
