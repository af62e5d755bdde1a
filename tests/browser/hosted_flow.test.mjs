// tests/browser/hosted_flow.test.mjs - the hosted payment pages (SPEC §4)
// in a real browser: Playwright (playwright-core, no downloaded browsers)
// driving the system Chromium against the real hostflow binary.
//
//   node --test --test-reporter=tap tests/browser/
//
// Environment and screenshots: see harness.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  TEST_TIMEOUT, apiRequest, rememberSecret, request, shot, startHostflow, stopHostflow, tokenOf,
  cliJson as cliJsonOn, withPage as withPageOf,
} from './harness.mjs';

const TENANT_NAME = 'Acme Test';

const good = { card_number: '4242 4242 4242 4242', exp_month: '12',
  exp_year: String(new Date().getFullYear() + 2), cvc: '123' };
const declined = { ...good, card_number: '4000 0000 0000 0002' };

// Shared state, filled by before() (see startHostflow).
let env = {};
let db, port, returnOrigin, browser, secret, contractor;
let usedUrl;      // a session URL redeemed by test (a), reused by (e)
let anyFailed = false;

// ---- helpers --------------------------------------------------------------

const cliJson = (...args) => cliJsonOn(db, ...args);
// withPage(contextOptions, fn): a fresh context; see harness.mjs
const withPage = (contextOptions, fn) => withPageOf(browser, fn, { contextOptions });

const api = (method, p, body) => apiRequest(port, secret, method, p, body);

// A new pending session whose return_url is the tenant's return page.
async function createSession() {
  const r = await api('POST', '/api/v1/payment/sessions',
    { contractor, return_url: `${returnOrigin}/done?order=42` });
  assert.equal(r.status, 201, `create session: ${r.text}`);
  assert.match(r.json.id, /^hps_/);
  assert.match(r.json.url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/payment/setup/test_[A-Za-z0-9]{8}[A-Za-z0-9_-]{43}$`));
  rememberSecret(tokenOf(r.json.url));
  return r.json;
}

async function sessionStatus(id) {
  const r = await api('GET', `/api/v1/payment/sessions/${id}`);
  assert.equal(r.status, 200, `GET session: ${r.text}`);
  return r.json;
}

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
    env = await startHostflow({ dirPrefix: 'hostflow-browser-', tenantName: TENANT_NAME,
      keyArgs: ['--test'] });
  } catch (e) {
    anyFailed = true;
    throw e;
  }
  ({ db, port, returnOrigin, browser, secret, contractor } = env);
  assert.match(secret, /^hf_test_/);
});

after(() => stopHostflow(env, anyFailed));

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
    const unknown = url.replace(/_[A-Za-z0-9]{8}[A-Za-z0-9_-]{43}$/, `_${randomBytes(32).toString('base64url')}`);
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
  rememberSecret(tokenOf(s.url));
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
