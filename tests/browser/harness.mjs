// tests/browser/harness.mjs - what the browser tests share: a hostflow
// server with a tenant, key and contractor made through the CLI, the
// tenant's return page, headless Chromium (playwright-core driving the
// system Chromium), and small HTTP and page helpers.
//
// Environment: HOSTFLOW_BIN (default $HOSTFLOW_ROOT/build/hostflow),
// HOSTFLOW_ROOT (default: the checkout this file is in), HOSTFLOW_CHROMIUM
// (default /usr/bin/chromium), HOSTFLOW_TEST_TMP (parent of the temporary
// directory; scripts/run-tests scans the server.log and database under it, and
// every secret a test saw is appended to $HOSTFLOW_TEST_TMP/secrets.txt
// for its leak check). Screenshots go to $HOSTFLOW_ROOT/build/screenshots/.
// The server is started by tests/helpers/start-server, as the busted
// suites start theirs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = process.env.HOSTFLOW_ROOT ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.HOSTFLOW_BIN || path.join(ROOT, 'build', 'hostflow');
const START_SERVER = path.join(ROOT, 'tests', 'helpers', 'start-server');
export const CHROMIUM = process.env.HOSTFLOW_CHROMIUM || '/usr/bin/chromium';
export const SHOTS = path.join(ROOT, 'build', 'screenshots');
export const POLICY = path.join(ROOT, 'tests', 'fixtures', 'policy_browser.lua');
export const STEP_TIMEOUT = 15_000; // every Playwright wait; a page answers in ms
export const TEST_TIMEOUT = 60_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// The secret part of a session URL: what follows "live_" or "test_" (it
// may hold '_' itself).
export function tokenOf(url) {
  return url.match(/\/payment\/setup\/(?:test|live)_(.+)$/)[1];
}

// Note a secret a test has seen (key secret, URL token, cookie, csrf):
// scripts/run-tests checks that none reaches a server log or database file.
export function rememberSecret(value) {
  const dir = process.env.HOSTFLOW_TEST_TMP;
  if (!dir || !value || value.length < 8) return;
  fs.appendFileSync(path.join(dir, 'secrets.txt'), `${value}\n`);
}

// `hostflow ARGS... --db DB`, expecting one JSON line on stdout.
export function cliJson(db, ...args) {
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
export function request(method, url, { headers = {}, body } = {}) {
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

// A JSON API call to the server on port with the key secret: the body, when
// given, is sent as JSON. Resolves like request().
export function apiRequest(port, secret, method, p, body) {
  return request(method, `http://127.0.0.1:${port}${p}`, {
    headers: { Authorization: `Bearer ${secret}`,
      ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

// Run fn(page, context) in a fresh browser context (no cookies; options
// such as a phone viewport in contextOptions), then require that nothing
// went wrong inside the pages: no script error, no console error (a CSP
// violation, e.g. the pages' own policy blocking their stylesheet or a
// form-action refusing the redirect to return_url, is one) other than one
// matching expectedConsole, no failed or 4xx/5xx subresource. Documents
// answering 4xx (the 402, 422 and 404 pages) are what the tests ask for
// and are checked there; a missing /favicon.ico is not a problem.
export async function withPage(browser, fn, { contextOptions = {}, expectedConsole } = {}) {
  const context = await browser.newContext(contextOptions);
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
    // reported a moment after the navigation fails): wait a little for it
    for (const deadline = Date.now() + 1000; !problems.length && Date.now() < deadline;) {
      await sleep(20);
    }
    if (problems.length) e.message += `\nin the browser:\n  ${problems.join('\n  ')}`;
    throw e;
  } finally {
    await context.close();
  }
  assert.deepEqual(problems, [], 'nothing went wrong inside the pages');
}

export const shot = (page, name) =>
  page.screenshot({ path: path.join(SHOTS, name), fullPage: true });

const RETURN_PAGE = '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
  '<meta name="viewport" content="width=device-width, initial-scale=1">' +
  '<title>Tenant</title></head><body><h1>Returned to tenant</h1></body></html>';

// tests/helpers/start-server with args, env added to this process's;
// resolves to its JSON line.
function startServer(args, env = {}) {
  let out;
  try {
    out = execFileSync(START_SERVER, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOSTFLOW_BIN: BIN, HOSTFLOW_ROOT: ROOT, ...env } });
  } catch (e) {
    throw new Error(`start-server ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
  return JSON.parse(out);
}

// Running, and not a zombie (the server is no child of this process).
function running(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()[0] !== 'Z';
  } catch {
    return false;
  }
}

// Everything a browser test runs against, started in this order: a
// temporary directory, the tenant's return page, the tenant (its name
// tenantName, may redirect to 127.0.0.1) with a key (keyArgs, e.g.
// ['--test']) and a contractor, hostflow (serve plus serverArgs, with
// serverEnv added to the environment), Chromium. Resolves to {dir, db,
// serverLog, server (its pid), port, returnServer, returnOrigin, browser,
// tenant, secret, contractor}.
export async function startHostflow({ dirPrefix, tenantName, keyArgs = [], serverArgs = [],
  serverEnv = {} }) {
  assert.ok(fs.existsSync(BIN), `no hostflow binary at ${BIN} (run make)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  fs.mkdirSync(SHOTS, { recursive: true });
  const env = {};
  const base = process.env.HOSTFLOW_TEST_TMP || os.tmpdir();
  env.dir = fs.mkdtempSync(path.join(base, dirPrefix));
  fs.mkdirSync(path.join(env.dir, 'policies'));
  env.db = startServer(['--new-db', '--dir', env.dir]).db;
  env.serverLog = path.join(env.dir, 'server.log');

  env.returnServer = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', Connection: 'close' });
    res.end(RETURN_PAGE);
  });
  await new Promise((r) => env.returnServer.listen(0, '127.0.0.1', r));
  env.returnOrigin = `http://127.0.0.1:${env.returnServer.address().port}`;

  // data through the CLI, before the server opens the database
  env.tenant = cliJson(env.db, 'tenant', 'create', tenantName, '--redirect-host', '127.0.0.1',
    '--json');
  env.secret = cliJson(env.db, 'key', 'create', env.tenant.id, ...keyArgs, '--json').secret;
  rememberSecret(env.secret);
  env.contractor = cliJson(env.db, 'contractor', 'create', env.tenant.id, '--json').id;

  const started = startServer(['--dir', env.dir, '--db', env.db, '--', '--policy', POLICY,
    '--policy-dir', path.join(env.dir, 'policies'), '--threads', '8', ...serverArgs],
  serverEnv);
  env.server = started.pid;
  env.port = Number(started.public.split(':').pop());

  env.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return env;
}

// Undo startHostflow (whatever part of it ran). The server log is shown
// when something failed; under run-tests the directory is kept for its
// scans (and removed by it), alone it is kept only when something failed.
export async function stopHostflow(env, anyFailed) {
  if (env.browser) await env.browser.close().catch(() => {});
  // it ended cleanly when it was still running here, went on SIGTERM,
  // and logged its last line, "stopped"
  let ended = null;
  if (env.server) {
    const wasRunning = running(env.server);
    if (wasRunning) process.kill(env.server, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (running(env.server) && Date.now() < deadline) await sleep(20);
    const hung = running(env.server);
    if (hung) process.kill(env.server, 'SIGKILL');
    const stopped = /\bstopped\s*$/.test(tail(env.serverLog, 2));
    ended = wasRunning && !hung && stopped ? null
      : `hostflow ${!wasRunning ? 'had ended before the stop' : hung ? 'did not stop on SIGTERM'
        : 'did not log "stopped"'}`;
  }
  if (env.returnServer) {
    env.returnServer.closeAllConnections();
    await new Promise((r) => env.returnServer.close(r));
  }
  if (anyFailed && env.serverLog) {
    console.error(`server log (${env.serverLog}), last lines:\n${tail(env.serverLog)}`);
  }
  if (env.dir && !process.env.HOSTFLOW_TEST_TMP && !anyFailed) {
    fs.rmSync(env.dir, { recursive: true, force: true });
  }
  // a server that crashed, or did not stop cleanly on SIGTERM, fails the file
  assert.ok(!ended, `${ended}; log:\n${env.serverLog ? tail(env.serverLog) : ''}`);
}
