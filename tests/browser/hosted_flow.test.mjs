// tests/browser/hosted_flow.test.mjs - the hosted payment pages (SPEC §4)
// in a real browser: Playwright (playwright-core, no downloaded browsers)
// driving the system Chromium against the real hostflow binary.
//
//   node --test --test-reporter=tap tests/browser/
//
// Environment: HOSTFLOW_BIN (default $HOSTFLOW_ROOT/build/hostflow),
// HOSTFLOW_ROOT (default: the checkout this file is in), HOSTFLOW_CHROMIUM
// (default /usr/bin/chromium), HOSTFLOW_TEST_TMP (parent of the temporary
// directory; scripts/run-tests scans the server.log and h.db under it, and
// every secret the test saw is appended to $HOSTFLOW_TEST_TMP/secrets.txt
// for its leak check). Screenshots go to $HOSTFLOW_ROOT/build/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const ROOT = process.env.HOSTFLOW_ROOT ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.HOSTFLOW_BIN || path.join(ROOT, 'build', 'hostflow');
const CHROMIUM = process.env.HOSTFLOW_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'build', 'screenshots');
const POLICY = path.join(ROOT, 'tests', 'fixtures', 'policy_browser.lua');
const TENANT_NAME = 'Acme Test';
const STEP_TIMEOUT = 15_000; // every Playwright wait; a page answers in ms
const TEST_TIMEOUT = 60_000;

const good = { card_number: '4242 4242 4242 4242', exp_month: '12',
  exp_year: String(new Date().getFullYear() + 2), cvc: '123' };
const declined = { ...good, card_number: '4000 0000 0000 0002' };

// Shared state, filled by before().
let dir;          // temporary directory: database, policy dir, server.log
let db;           // DIR/h.db
let server;       // hostflow child process
let serverLog;    // path of its stdout+stderr
let port;         // public listener
let returnServer; // the tenant's return page
let returnOrigin; // http://127.0.0.1:RPORT
let browser;
let secret;       // test-mode API key secret
let contractor;   // contractor id
let usedUrl;      // a session URL redeemed by test (a), reused by (e)
let anyFailed = false;

// ---- helpers --------------------------------------------------------------

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port: p } = s.address();
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function canConnect(p) {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port: p });
    const done = (ok) => { c.destroy(); resolve(ok); };
    c.setTimeout(500, () => done(false));
    c.once('connect', () => done(true));
    c.once('error', () => done(false));
  });
}

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// `hostflow ARGS... --db DB`, expecting one JSON line on stdout.
function cliJson(...args) {
  let out;
  try {
    out = execFileSync(BIN, [...args, '--db', db],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (e) {
    throw new Error(`hostflow ${args.join(' ')} failed (${e.status}): ${e.stderr || e.message}`);
  }
  return JSON.parse(out.trim().split('\n').pop());
}

// One HTTP exchange on a fresh connection (no keep-alive: nothing to race
// the server's idle close, nothing left open at exit). Redirects are not
// followed. Resolves to {status, headers, text, json}.
function request(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, timeout: 10_000,
      headers: { Connection: 'close', ...headers,
        ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}) } },
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

function api(method, p, body) {
  return request(method, `http://127.0.0.1:${port}${p}`, {
    headers: { Authorization: `Bearer ${secret}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

// A new pending session whose return_url is the tenant's return page.
async function createSession() {
  const r = await api('POST', '/api/v1/payment/sessions',
    { contractor, return_url: `${returnOrigin}/done?order=42` });
  assert.equal(r.status, 201, `create session: ${r.text}`);
  assert.match(r.json.id, /^hps_/);
  assert.match(r.json.url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/payment/setup/test_[A-Za-z0-9_-]{43}$`));
  rememberSecret(r.json.url.slice(r.json.url.lastIndexOf('_') + 1));
  return r.json;
}

async function sessionStatus(id) {
  const r = await api('GET', `/api/v1/payment/sessions/${id}`);
  assert.equal(r.status, 200, `GET session: ${r.text}`);
  return r.json;
}

// Note a secret the test has seen (key secret, URL token, cookie, csrf):
// scripts/run-tests checks that none reaches a server log or database file.
function rememberSecret(value) {
  const dir = process.env.HOSTFLOW_TEST_TMP;
  if (!dir || !value || value.length < 8) return;
  fs.appendFileSync(path.join(dir, 'secrets.txt'), `${value}\n`);
}

// Run fn(page, context) in a fresh browser context (no cookies), then
// require that nothing went wrong inside the pages: no script error, no
// console error (a CSP violation, e.g. the pages' own policy blocking their
// stylesheet or a form-action refusing the redirect to return_url, is one),
// no failed or 4xx/5xx subresource. Documents answering 4xx (the 402, 422
// and 404 pages) are what the tests ask for and are checked there; a
// missing /favicon.ico is not a problem.
async function withPage(options, fn) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  const problems = [];
  const page = await context.newPage();
  const isFavicon = (u) => new URL(u).pathname === '/favicon.ico';
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error' || /^Failed to load resource/.test(m.text())) return;
    problems.push(`console error: ${m.text()} (${m.location()?.url || ''})`);
  });
  page.on('requestfailed', (r) => {
    // a navigation superseded by the next one is aborted, not failed
    if (r.resourceType() === 'document' && /ERR_ABORTED/.test(r.failure()?.errorText || '')) return;
    if (!isFavicon(r.url())) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => {
    if (r.request().resourceType() !== 'document' && r.status() >= 400 && !isFavicon(r.url())) {
      problems.push(`subresource ${r.url()} answered ${r.status()}`);
    }
  });
  try {
    await fn(page, context);
  } catch (e) {
    // say what the browser saw, often the cause (CSP refusing a redirect is
    // reported a moment after the navigation fails)
    await sleep(300);
    if (problems.length) e.message += `\nin the browser:\n  ${problems.join('\n  ')}`;
    throw e;
  } finally {
    await context.close();
  }
  assert.deepEqual(problems, [], 'nothing went wrong inside the pages');
}

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

// The card page of session id: its URL is /payment/sessions/{id} (or the
// /complete it was re-rendered from) and it has both forms.
async function assertCardPage(page, id) {
  const p = new URL(page.url()).pathname;
  assert.ok(p === `/payment/sessions/${id}` || p === `/payment/sessions/${id}/complete`,
    `expected the card page of ${id}, at ${page.url()}`);
  assert.equal(await page.locator('#card-form').count(), 1, 'one #card-form');
  assert.equal(await page.locator('#cancel-form').count(), 1, 'one #cancel-form');
  for (const f of ['card_number', 'exp_month', 'exp_year', 'cvc']) {
    assert.equal(await page.locator(`#card-form #${f}[name="${f}"]`).count(), 1, `input #${f}`);
  }
  assert.equal(await page.locator('#card-form input[type="hidden"][name="csrf"]').count(), 1,
    'hidden csrf in the card form');
  assert.equal(await page.locator('#cancel-form input[type="hidden"][name="csrf"]').count(), 1,
    'hidden csrf in the cancel form');
}

// Landing page → Continue → card page. Returns the landing response.
async function redeem(page, session, landingShot) {
  const landing = await page.goto(session.url);
  assert.equal(landing.status(), 200, 'landing page status');
  assert.match(await page.locator('body').innerText(), new RegExp(TENANT_NAME));
  if (landingShot) await shot(page, landingShot);
  await Promise.all([
    page.waitForURL((u) => u.pathname === `/payment/sessions/${session.id}`),
    page.click('#continue'),
  ]);
  await assertCardPage(page, session.id);
  for (const c of await page.context().cookies()) rememberSecret(c.value);
  rememberSecret(await page.locator('#card-form input[name="csrf"]').inputValue());
  return landing;
}

async function fillCard(page, card) {
  for (const [k, v] of Object.entries(card)) await page.fill(`#${k}`, v);
}

// Submit the card form and wait for its answer to render (a re-rendered
// page: 402 decline or 422 errors). Returns the POST's response.
async function submitExpectingPage(page) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' &&
      new URL(r.url()).pathname.endsWith('/complete')),
    page.click('#save'),
  ]);
  await page.waitForLoadState('load');
  return res;
}

// Submit (#save or #cancel) and wait for the tenant's return page.
async function submitExpectingReturn(page, button) {
  await Promise.all([
    page.waitForURL((u) => u.origin === returnOrigin && u.pathname === '/done'),
    page.click(button),
  ]);
  await page.waitForLoadState('load');
  const u = new URL(page.url());
  assert.match(await page.locator('body').innerText(), /Returned to tenant/);
  return u;
}

function assertReturnQuery(u, id, status) {
  assert.equal(u.pathname, '/done');
  assert.equal(u.searchParams.get('order'), '42', 'existing query parameter kept');
  assert.equal(u.searchParams.get('hps_id'), id);
  assert.equal(u.searchParams.get('status'), status);
}

// Each test records a failure so after() can show the server log.
function btest(name, fn) {
  test(name, { timeout: TEST_TIMEOUT }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      anyFailed = true;
      throw e;
    }
  });
}

// ---- setup and teardown ---------------------------------------------------

before(async () => {
  try {
    await setUp();
  } catch (e) {
    anyFailed = true;
    throw e;
  }
});

async function setUp() {
  assert.ok(fs.existsSync(BIN), `no hostflow binary at ${BIN} (run make)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  fs.mkdirSync(SHOTS, { recursive: true });
  const base = process.env.HOSTFLOW_TEST_TMP || os.tmpdir();
  dir = fs.mkdtempSync(path.join(base, 'hostflow-browser-'));
  fs.mkdirSync(path.join(dir, 'policies'));
  db = path.join(dir, 'h.db');
  serverLog = path.join(dir, 'server.log');

  // The tenant's return page.
  returnServer = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', Connection: 'close' });
    res.end('<!doctype html><html lang="en"><head><meta charset="utf-8">' +
      '<meta name="viewport" content="width=device-width, initial-scale=1">' +
      '<title>Tenant</title></head><body><h1>Returned to tenant</h1></body></html>');
  });
  await new Promise((r) => returnServer.listen(0, '127.0.0.1', r));
  returnOrigin = `http://127.0.0.1:${returnServer.address().port}`;

  // Data, through the CLI, before the server opens the database.
  const tenant = cliJson('tenant', 'create', TENANT_NAME, '--redirect-host', '127.0.0.1', '--json');
  secret = cliJson('key', 'create', tenant.id, '--test', '--json').secret;
  assert.match(secret, /^hf_test_/);
  rememberSecret(secret);
  contractor = cliJson('contractor', 'create', tenant.id, '--json').id;

  // The server; a port taken between freePort() and bind is retried.
  for (let attempt = 0; attempt < 3 && !server; attempt++) {
    port = await freePort();
    const adminPort = await freePort();
    const logFd = fs.openSync(serverLog, 'a');
    const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`,
      '--admin-listen', `127.0.0.1:${adminPort}`, '--db', db, '--policy', POLICY,
      '--policy-dir', path.join(dir, 'policies'), '--threads', '8'],
    { cwd: dir, stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    let exited = false;
    child.once('exit', () => { exited = true; });
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline) {
      if (await canConnect(port)) { server = child; break; }
      await sleep(50);
    }
    if (!server && !exited) child.kill('SIGKILL');
  }
  assert.ok(server, `hostflow did not start; log:\n${tail(serverLog)}`);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  if (returnServer) {
    returnServer.closeAllConnections();
    await new Promise((r) => returnServer.close(r));
  }
  if (anyFailed && serverLog) {
    console.error(`server log (${serverLog}), last lines:\n${tail(serverLog)}`);
  }
  // Under run-tests the directory is kept for its sanitizer scan (and
  // removed by it); alone, it is kept only when something failed.
  if (dir && !process.env.HOSTFLOW_TEST_TMP && !anyFailed) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- the tests ------------------------------------------------------------

btest('a. happy path: landing, card, saved, back on the return page', async () => {
  const s = await createSession();
  await withPage({}, async (page) => {
    await redeem(page, s, '01-landing.png');
    usedUrl = s.url;
    await shot(page, '02-card.png');
    await fillCard(page, good);
    const back = await submitExpectingReturn(page, '#save');
    assertReturnQuery(back, s.id, 'completed');
    await shot(page, '04-returned.png');
    const got = await sessionStatus(s.id);
    assert.equal(got.status, 'completed');
    assert.equal(typeof got.completed_at, 'number', 'completed_at set');
    // the same browser, cookie and all, cannot open the card page again
    const again = await page.goto(`http://127.0.0.1:${port}/payment/sessions/${s.id}`);
    assert.equal(again.status(), 404, 'card page of a completed session');
  });
});

btest('b. declined card shows the decline, then a good card succeeds', async () => {
  const s = await createSession();
  await withPage({}, async (page) => {
    await redeem(page, s);
    await fillCard(page, declined);
    const res = await submitExpectingPage(page);
    assert.equal(res.status(), 402, 'decline answers 402');
    const decline = page.locator('#decline');
    assert.equal(await decline.count(), 1, 'one #decline element');
    assert.match(await decline.innerText(), /declined/i);
    await shot(page, '03-declined.png');
    await assertCardPage(page, s.id);
    assert.equal((await sessionStatus(s.id)).status, 'pending', 'a decline leaves the session pending');
    await fillCard(page, good);
    const back = await submitExpectingReturn(page, '#save');
    assertReturnQuery(back, s.id, 'completed');
    assert.equal((await sessionStatus(s.id)).status, 'completed');
  });
});

btest('c. invalid card details show errors and stay on the card page', async () => {
  const s = await createSession();
  await withPage({}, async (page) => {
    await redeem(page, s);
    const year = new Date().getFullYear();
    const cases = [
      ['card number failing Luhn', { ...good, card_number: '4242 4242 4242 4241' }],
      ['expiry year in the past', { ...good, exp_year: String(year - 1) }],
      ['2-digit cvc', { ...good, cvc: '12' }],
      ['all three at once', { ...good, card_number: '4242 4242 4242 4241',
        exp_year: String(year - 1), cvc: '12' }],
    ];
    for (const [what, card] of cases) {
      // The server's validation is under test: browser-side constraints
      // (pattern, min, required), if the page adds any, would otherwise
      // stop the submission before it reaches the server.
      await page.$eval('#card-form', (f) => { f.noValidate = true; });
      await fillCard(page, card);
      const res = await submitExpectingPage(page);
      assert.equal(res.status(), 422, `${what}: status`);
      assert.ok(await page.locator('.error').count() >= 1, `${what}: an element with class error`);
      assert.equal(await page.locator('#decline').count(), 0, `${what}: not a decline`);
      await assertCardPage(page, s.id);
    }
    await shot(page, '05-invalid.png');
    assert.equal((await sessionStatus(s.id)).status, 'pending', 'invalid input leaves the session pending');
  });
});

btest('d. cancel returns with status=cancelled', async () => {
  const s = await createSession();
  await withPage({}, async (page) => {
    await redeem(page, s);
    const back = await submitExpectingReturn(page, '#cancel');
    assertReturnQuery(back, s.id, 'cancelled');
    const got = await sessionStatus(s.id);
    assert.equal(got.status, 'cancelled');
    assert.equal(typeof got.cancelled_at, 'number', 'cancelled_at set');
  });
});

btest('e. a used URL gets the 404 page, identical to an unknown token', async () => {
  let url = usedUrl;
  if (!url) { // (a) did not get as far as redeeming: redeem one here
    const s = await createSession();
    await withPage({}, (page) => redeem(page, s));
    url = s.url;
  }
  await withPage({}, async (page) => {
    const res = await page.goto(url);
    assert.equal(res.status(), 404, 'used URL answers 404');
    const usedBody = await res.text();
    await shot(page, '06-used-link.png');
    assert.equal(await page.locator('#continue').count(), 0, 'no Continue button');
    const unknown = url.replace(/_[A-Za-z0-9_-]{43}$/, `_${randomBytes(32).toString('base64url')}`);
    const res2 = await page.goto(unknown);
    assert.equal(res2.status(), 404, 'unknown token answers 404');
    assert.equal(await res2.text(), usedBody, 'the same 404 page for used and unknown tokens');
    const post = await request('POST', url, {
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: '' });
    assert.equal(post.status, 404, 'POST of a used URL answers 404');
    assert.equal(post.text, usedBody, 'the same 404 page for a POST');
  });
});

btest('f. phone viewport (375x667): no horizontal scroll', async () => {
  const s = await createSession();
  const phone = { viewport: { width: 375, height: 667 }, deviceScaleFactor: 2,
    isMobile: true, hasTouch: true };
  await withPage(phone, async (page) => {
    const scrollWidth = () => page.evaluate(() => document.documentElement.scrollWidth);
    await page.goto(s.url);
    const landing = await scrollWidth();
    assert.ok(landing <= 375, `landing page scrollWidth ${landing} > 375`);
    await Promise.all([
      page.waitForURL((u) => u.pathname === `/payment/sessions/${s.id}`),
      page.tap('#continue'),
    ]);
    await assertCardPage(page, s.id);
    const card = await scrollWidth();
    assert.ok(card <= 375, `card page scrollWidth ${card} > 375`);
    await shot(page, '07-phone-card.png');
  });
});

btest('g. landing headers, GET does not redeem, the cookie is HttpOnly and Strict', async () => {
  const s = await createSession();
  // A link scanner's GETs must not burn the URL.
  for (let i = 0; i < 2; i++) {
    const r = await request('GET', s.url);
    assert.equal(r.status, 200, `GET #${i + 1} of a fresh URL`);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    const csp = r.headers['content-security-policy'] || '';
    assert.ok(csp, 'a Content-Security-Policy header');
    const directives = Object.fromEntries(csp.split(';').map((d) => d.trim()).filter(Boolean)
      .map((d) => { const [k, ...v] = d.split(/\s+/); return [k.toLowerCase(), v.join(' ')]; }));
    const scriptSrc = directives['script-src'] ?? directives['default-src'];
    assert.ok(scriptSrc !== undefined, `CSP restricts scripts: ${csp}`);
    assert.doesNotMatch(scriptSrc, /'unsafe-inline'|'unsafe-eval'|\*/, `CSP allows no inline script: ${csp}`);
  }
  await withPage({}, async (page, context) => {
    await redeem(page, s);
    const cookies = await context.cookies(`http://127.0.0.1:${port}/payment/sessions/${s.id}`);
    const c = cookies.find((x) => x.name === 'hf_session');
    assert.ok(c, `an hf_session cookie: ${JSON.stringify(cookies.map((x) => x.name))}`);
    assert.equal(c.httpOnly, true, 'HttpOnly');
    assert.equal(c.sameSite, 'Strict', 'SameSite=Strict');
    assert.equal(c.path, `/payment/sessions/${s.id}`, 'Path bound to the session');
    assert.equal(await page.evaluate(() => document.cookie), '', 'not readable from script');
    assert.equal(await page.locator('script').count(), 0, 'no <script> on the card page');
    // without the cookie the card page is the 404 page
    const bare = await request('GET', `http://127.0.0.1:${port}/payment/sessions/${s.id}`);
    assert.equal(bare.status, 404, 'card page without the cookie');
  });
});

btest('h. arriving from a link on another site (SameSite=Strict cookie still works)', async () => {
  const s = await createSession();
  await withPage({}, async (page) => {
    // "localhost" is another site than "127.0.0.1": a click there is the
    // cross-site navigation an e-mail or the tenant's own site makes.
    const elsewhere = returnOrigin.replace('127.0.0.1', 'localhost');
    await page.goto(`${elsewhere}/mail`);
    await page.evaluate((href) => {
      const a = document.createElement('a');
      a.id = 'pay-link';
      a.href = href;
      a.textContent = 'Save your card';
      document.body.append(a);
    }, s.url);
    await Promise.all([page.waitForURL(s.url), page.click('#pay-link')]);
    assert.match(await page.locator('body').innerText(), new RegExp(TENANT_NAME));
    await Promise.all([
      page.waitForURL((u) => u.pathname === `/payment/sessions/${s.id}`),
      page.click('#continue'),
    ]);
    await assertCardPage(page, s.id);
    await fillCard(page, good);
    const back = await submitExpectingReturn(page, '#save');
    assertReturnQuery(back, s.id, 'completed');
  });
});

btest('i. phone viewport: a long tenant name without spaces wraps', async () => {
  // 45 characters with no break opportunity (names may have up to 200
  // bytes); at 375 px it must wrap, not widen the page.
  const longName = 'AcmeInternationalPaymentsHoldingsGroupLimited';
  const tenant = cliJson('tenant', 'create', longName, '--redirect-host', '127.0.0.1', '--json');
  const key = cliJson('key', 'create', tenant.id, '--test', '--json').secret;
  rememberSecret(key);
  const cn = cliJson('contractor', 'create', tenant.id, '--json').id;
  const r = await request('POST', `http://127.0.0.1:${port}/api/v1/payment/sessions`, {
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ contractor: cn, return_url: `${returnOrigin}/done?order=42` }),
  });
  assert.equal(r.status, 201, `create session: ${r.text}`);
  const s = r.json;
  rememberSecret(s.url.slice(s.url.lastIndexOf('_') + 1));
  const phone = { viewport: { width: 375, height: 667 }, deviceScaleFactor: 2,
    isMobile: true, hasTouch: true };
  await withPage(phone, async (page) => {
    const scrollWidth = () => page.evaluate(() => document.documentElement.scrollWidth);
    await page.goto(s.url);
    assert.match(await page.locator('body').innerText(), new RegExp(longName));
    const landing = await scrollWidth();
    await shot(page, '08-phone-long-name.png');
    assert.ok(landing <= 375, `landing page scrollWidth ${landing} > 375 with tenant name "${longName}"`);
    await Promise.all([
      page.waitForURL((u) => u.pathname === `/payment/sessions/${s.id}`),
      page.tap('#continue'),
    ]);
    const card = await scrollWidth();
    assert.ok(card <= 375, `card page scrollWidth ${card} > 375 with tenant name "${longName}"`);
  });
});
