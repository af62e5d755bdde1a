// tests/browser/live_flow.test.mjs - the live card page (processor
// checkout) in headless Chromium: the page's own script starts "Frames",
// the card is typed into Frames' iframe, the token it makes is posted and
// exchanged for an instrument, under the page's real CSP.
//
// Frames and Checkout.com are the local stand-in tests/helpers/
// checkout_stub.mjs (a fake Frames script and card iframe on the stub's
// origin, and /instruments): this proves hostflow's page, script, CSP and
// token exchange, not the real Frames.
//
//   node --test --test-reporter=tap tests/browser/
//
// Environment as for hosted_flow.test.mjs (HOSTFLOW_BIN, HOSTFLOW_ROOT,
// HOSTFLOW_CHROMIUM, HOSTFLOW_TEST_TMP).
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
import { startCheckoutStub } from '../helpers/checkout_stub.mjs';

const ROOT = process.env.HOSTFLOW_ROOT ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.HOSTFLOW_BIN || path.join(ROOT, 'build', 'hostflow');
const CHROMIUM = process.env.HOSTFLOW_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'build', 'screenshots');
const POLICY = path.join(ROOT, 'tests', 'fixtures', 'policy_browser.lua');
const STEP_TIMEOUT = 15_000;
const TEST_TIMEOUT = 60_000;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const key = (prefix) => prefix + Array.from(randomBytes(26), (b) => BASE32[b & 31]).join('');

const SECRET_KEY = key('sk_sbox_');
const PUBLIC_KEY = key('pk_sbox_');
const MASTERCARD = '5555 5555 5555 4444';

let dir, db, server, serverLog, port, returnServer, returnOrigin, browser, stub;
let secret, contractor;
let anyFailed = false;

function rememberSecret(value) {
  const d = process.env.HOSTFLOW_TEST_TMP;
  if (!d || !value || value.length < 8) return;
  fs.appendFileSync(path.join(d, 'secrets.txt'), `${value}\n`);
}

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

function cliJson(...args) {
  const out = execFileSync(BIN, [...args, '--db', db],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  return JSON.parse(out.trim().split('\n').pop());
}

function sql(query) {
  return execFileSync('sqlite3', ['-cmd', '.timeout 2000', db, query],
    { encoding: 'utf8', timeout: 10_000 }).trim();
}

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

// A new pending live session whose return_url is the tenant's return page.
async function createSession() {
  const r = await api('POST', '/api/v1/payment/sessions',
    { contractor, return_url: `${returnOrigin}/done?order=42` });
  assert.equal(r.status, 201, `create session: ${r.text}`);
  assert.match(r.json.url, /\/payment\/setup\/live_[A-Za-z0-9_-]{43}$/);
  rememberSecret(r.json.url.slice(r.json.url.lastIndexOf('_') + 1));
  return r.json;
}

async function sessionStatus(id) {
  const r = await api('GET', `/api/v1/payment/sessions/${id}`);
  assert.equal(r.status, 200, `GET session: ${r.text}`);
  return r.json.status;
}

// fn(page) in a fresh context; fails on any script error, console error
// (CSP violations land there) other than one matching expectedConsole,
// failed request or 4xx/5xx subresource.
async function withPage(fn, expectedConsole) {
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  const problems = [];
  const page = await context.newPage();
  const isFavicon = (u) => new URL(u).pathname === '/favicon.ico';
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error' || /^Failed to load resource/.test(m.text())) return;
    if (expectedConsole && expectedConsole.test(m.text())) return;
    problems.push(`console error: ${m.text()} (${m.location()?.url || ''})`);
  });
  page.on('requestfailed', (r) => {
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
    await sleep(300);
    if (problems.length) e.message += `\nin the browser:\n  ${problems.join('\n  ')}`;
    throw e;
  } finally {
    await context.close();
  }
  assert.deepEqual(problems, [], 'nothing went wrong inside the pages');
}

const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

// Landing → Continue → the live card page with Frames' field loaded.
async function redeem(page, session) {
  await page.goto(session.url);
  await Promise.all([
    page.waitForURL((u) => u.pathname === `/payment/sessions/${session.id}`),
    page.click('#continue'),
  ]);
  await waitForCardField(page);
  for (const c of await page.context().cookies()) rememberSecret(c.value);
  rememberSecret(await page.locator('#card-form input[name="csrf"]').inputValue());
}

async function waitForCardField(page) {
  await page.locator('.card-frame iframe').waitFor();
  await page.frameLocator('.card-frame iframe').locator('#number').waitFor();
  assert.equal(await page.locator('input[name="card_number"]').count(), 0, 'no card field of ours');
  assert.ok(await page.locator('#save').isDisabled(), 'Save waits for a valid card');
}

// Type the card into Frames' field, press Save; resolves to the POST to
// /complete (its request), once the answer has loaded.
async function saveCard(page, number, waitFor) {
  await page.frameLocator('.card-frame iframe').locator('#number').fill(number);
  await page.waitForFunction(() => !document.getElementById('save').disabled);
  const [post] = await Promise.all([
    page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname.endsWith('/complete')),
    waitFor(),
    page.click('#save'),
  ]);
  return post;
}

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
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}`);
  fs.mkdirSync(SHOTS, { recursive: true });
  rememberSecret(SECRET_KEY);
  rememberSecret(MASTERCARD.replace(/ /g, ''));
  const base = process.env.HOSTFLOW_TEST_TMP || os.tmpdir();
  dir = fs.mkdtempSync(path.join(base, 'hostflow-browser-live-'));
  fs.mkdirSync(path.join(dir, 'policies'));
  db = path.join(dir, 'h.db');
  serverLog = path.join(dir, 'server.log');

  stub = await startCheckoutStub({ secretKey: SECRET_KEY, publicKey: PUBLIC_KEY });

  returnServer = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', Connection: 'close' });
    res.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tenant</title>' +
      '</head><body><h1>Returned to tenant</h1></body></html>');
  });
  await new Promise((r) => returnServer.listen(0, '127.0.0.1', r));
  returnOrigin = `http://127.0.0.1:${returnServer.address().port}`;

  const tenant = cliJson('tenant', 'create', 'Acme Live', '--redirect-host', '127.0.0.1', '--json');
  secret = cliJson('key', 'create', tenant.id, '--json').secret;
  assert.match(secret, /^hf_live_/);
  rememberSecret(secret);
  contractor = cliJson('contractor', 'create', tenant.id, '--json').id;

  for (let attempt = 0; attempt < 3 && !server; attempt++) {
    port = await freePort();
    const adminPort = await freePort();
    const logFd = fs.openSync(serverLog, 'a');
    const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`,
      '--admin-listen', `127.0.0.1:${adminPort}`, '--db', db, '--policy', POLICY,
      '--policy-dir', path.join(dir, 'policies'), '--threads', '8',
      '--checkout-public-key', PUBLIC_KEY, '--checkout-base-url', stub.url,
      '--checkout-frames-url', `${stub.url}/js/framesv2.min.js`, '--checkout-timeout-ms', '3000'],
    { cwd: dir, stdio: ['ignore', logFd, logFd],
      env: { ...process.env, HOSTFLOW_CHECKOUT_SECRET_KEY: SECRET_KEY } });
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
  if (stub) {
    for (const r of stub.requests()) {
      try { rememberSecret(JSON.parse(r.body).token); } catch { /* not JSON */ }
    }
    await stub.close();
  }
  if (returnServer) {
    returnServer.closeAllConnections();
    await new Promise((r) => returnServer.close(r));
  }
  if (anyFailed && serverLog) console.error(`server log (${serverLog}), last lines:\n${tail(serverLog)}`);
  if (dir && !process.env.HOSTFLOW_TEST_TMP && !anyFailed) fs.rmSync(dir, { recursive: true, force: true });
});

btest('live a. the card goes into Frames\' field, only a token reaches hostflow, the card is saved', async () => {
  stub.reset();
  const s = await createSession();
  await withPage(async (page) => {
    await redeem(page, s);
    await shot(page, 'live-01-card.png');
    const post = await saveCard(page, MASTERCARD,
      () => page.waitForURL((u) => u.origin === returnOrigin && u.pathname === '/done'));
    await page.waitForLoadState('load');
    const back = new URL(page.url());
    assert.equal(back.searchParams.get('order'), '42');
    assert.equal(back.searchParams.get('hps_id'), s.id);
    assert.equal(back.searchParams.get('status'), 'completed');

    // what the browser sent hostflow: the token and the csrf value, no card
    const sent = new URLSearchParams(post.postData() || '');
    assert.deepEqual([...sent.keys()].sort(), ['csrf', 'token']);
    assert.match(sent.get('token'), /^tok_[a-z0-9]{26}$/);
    assert.doesNotMatch(post.postData(), /5555|4444/);

    // what hostflow sent Checkout.com: that token, with the secret key
    const reqs = stub.requests();
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].headers.authorization, `Bearer ${SECRET_KEY}`);
    assert.deepEqual(JSON.parse(reqs[0].body), { type: 'token', token: sent.get('token') });
  });
  assert.equal(await sessionStatus(s.id), 'completed');
  assert.match(sql(`select card_brand || '|' || card_last4 || '|' || processor_ref from sessions where id = '${s.id}'`),
    /^mastercard\|4444\|src_[a-z0-9]+$/);
});

btest('live b. a refused token shows the sentence on the live page; the next card goes through', async () => {
  stub.reset();
  const s = await createSession();
  await withPage(async (page) => {
    await redeem(page, s);
    stub.setMode('decline', ['card_number_invalid']);
    const [, res] = await Promise.all([
      saveCard(page, '4242 4242 4242 4242', () => Promise.resolve()),
      page.waitForResponse((r) => r.request().method() === 'POST' &&
        new URL(r.url()).pathname.endsWith('/complete')),
    ]);
    assert.equal(res.status(), 402);
    await page.waitForLoadState('load');
    assert.match(await page.locator('#decline').innerText(), /declined/i);
    await waitForCardField(page); // Frames is back for another card
    await shot(page, 'live-02-declined.png');
    assert.equal(await sessionStatus(s.id), 'pending');

    stub.setMode('approve');
    await saveCard(page, MASTERCARD,
      () => page.waitForURL((u) => u.origin === returnOrigin && u.pathname === '/done'));
    assert.equal(new URL(page.url()).searchParams.get('status'), 'completed');
  });
  assert.equal(await sessionStatus(s.id), 'completed');
  assert.equal(stub.requests().length, 2);
});

btest('live c. the live page\'s CSP names the Frames origin and allows no inline script', async () => {
  const s = await createSession();
  await withPage(async (page, context) => {
    await redeem(page, s);
    const r = await request('GET', `http://127.0.0.1:${port}/payment/sessions/${s.id}`, {
      headers: { Cookie: (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ') } });
    assert.equal(r.status, 200);
    const csp = Object.fromEntries(r.headers['content-security-policy'].split(';')
      .map((d) => d.trim()).filter(Boolean).map((d) => { const [k, ...v] = d.split(/\s+/); return [k, v.join(' ')]; }));
    assert.equal(csp['script-src'], `'self' ${stub.url}`);
    assert.equal(csp['frame-src'], stub.url);
    assert.equal(csp['connect-src'], stub.url);
    assert.equal(csp['default-src'], "'none'");
    // an inline script injected into the page is refused by that CSP
    const ran = await page.evaluate(() => new Promise((resolve) => {
      window.__inline = false;
      document.addEventListener('securitypolicyviolation', () => resolve('blocked'), { once: true });
      const el = document.createElement('script');
      el.textContent = 'window.__inline = true;';
      document.body.append(el);
      setTimeout(() => resolve(window.__inline ? 'ran' : 'blocked'), 500);
    }));
    assert.equal(ran, 'blocked');
  }, /inline script violates the following Content Security Policy/);
});
