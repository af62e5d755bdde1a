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
// Environment and screenshots: see harness.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { startCheckoutStub } from '../helpers/checkout_stub.mjs';
import {
  TEST_TIMEOUT, apiRequest, rememberSecret, request, shot, startHostflow, stopHostflow, tokenOf,
  cliJson as cliJsonOn, withPage as withPageOf,
} from './harness.mjs';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const key = (prefix) => prefix + Array.from(randomBytes(26), (b) => BASE32[b & 31]).join('');

const SECRET_KEY = key('sk_sbox_');
const PUBLIC_KEY = key('pk_sbox_');
const MASTERCARD = '5555 5555 5555 4444';

let env = {};
let db, port, returnOrigin, browser, stub, secret, contractor;
let anyFailed = false;

const cliJson = (...args) => cliJsonOn(db, ...args);
// withPage(fn, expectedConsole): a fresh context; see harness.mjs
const withPage = (fn, expectedConsole) => withPageOf(browser, fn, { expectedConsole });

function sql(query) {
  return execFileSync('sqlite3', ['-cmd', '.timeout 2000', db, query],
    { encoding: 'utf8', timeout: 10_000 }).trim();
}

const api = (method, p, body) => apiRequest(port, secret, method, p, body);

// A new pending live session whose return_url is the tenant's return page.
async function createSession() {
  const r = await api('POST', '/api/v1/payment/sessions',
    { contractor, return_url: `${returnOrigin}/done?order=42` });
  assert.equal(r.status, 201, `create session: ${r.text}`);
  assert.match(r.json.url, /\/payment\/setup\/live_[A-Za-z0-9]{8}[A-Za-z0-9_-]{43}$/);
  rememberSecret(tokenOf(r.json.url));
  return r.json;
}

async function sessionStatus(id) {
  const r = await api('GET', `/api/v1/payment/sessions/${id}`);
  assert.equal(r.status, 200, `GET session: ${r.text}`);
  return r.json.status;
}

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
  rememberSecret(SECRET_KEY);
  rememberSecret(MASTERCARD.replace(/ /g, ''));
  try {
    stub = await startCheckoutStub({ secretKey: SECRET_KEY, publicKey: PUBLIC_KEY });
    env = await startHostflow({ dirPrefix: 'hostflow-browser-live-', tenantName: 'Acme Live',
      serverArgs: ['--checkout-public-key', PUBLIC_KEY, '--checkout-base-url', stub.url,
        '--checkout-frames-url', `${stub.url}/js/framesv2.min.js`, '--checkout-timeout-ms', '3000'],
      serverEnv: { HOSTFLOW_CHECKOUT_SECRET_KEY: SECRET_KEY } });
  } catch (e) {
    anyFailed = true;
    throw e;
  }
  ({ db, port, returnOrigin, browser, secret, contractor } = env);
  assert.match(secret, /^hf_live_/);
});

after(async () => {
  await stopHostflow(env, anyFailed);
  if (stub) {
    for (const r of stub.requests()) {
      try { rememberSecret(JSON.parse(r.body).token); } catch { /* not JSON */ }
    }
    await stub.close();
  }
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
