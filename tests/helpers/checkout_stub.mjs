// tests/helpers/checkout_stub.mjs - a local stand-in for the few parts of
// Checkout.com that hostflow's live processor touches, for the test suites
// only. It knows nothing of the real service beyond what the live
// processor relies on; passing against it proves hostflow's side, not
// Checkout.com's.
//
//   POST /instruments   the token exchange: checks "Authorization: Bearer
//                       <secret key>" (else 401, empty body), Content-Type
//                       and the body {"type":"token","token":"tok_…"}, then
//                       answers as its mode says (below)
//   GET  /js/framesv2.min.js, /frames/card.html, /frames/config, POST /tokens
//                       a fake Frames: the script puts an iframe (this
//                       origin) into the page's .card-frame, the card typed
//                       there goes to /tokens here, and the page gets a token
//
// Modes (POST /_stub/mode {"mode": …, "error_codes": […]}):
//   approve   201 with an instrument (src_…, scheme, last4 of the card
//             tokenised here, else VISA/4242); a reused or malformed token
//             gets 422 token_used / token_invalid
//   slow      approve, half a second later (under the specs' 1 s timeout)
//   decline   422 {"request_id","error_type":"request_invalid","error_codes"}
//   fail      500        hang      no answer at all
//   redirect  302 to /instruments-moved here (must not be followed)
//   huge      201 with a 2 MiB body        garbage   201 that is not JSON
// GET /_stub/requests lists every request to /instruments (method, path,
// headers, body); POST /_stub/reset forgets them and goes back to approve.
//
// Run alone: CHECKOUT_STUB_PORT=… CHECKOUT_STUB_SECRET_KEY=sk_…
// CHECKOUT_STUB_PUBLIC_KEY=pk_… node tests/helpers/checkout_stub.mjs
// (tests/helpers/checkout.lua does this), or import startCheckoutStub.
// It prints one line "listening PORT" and never prints a request's headers.
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const id = (prefix) => prefix + Array.from(randomBytes(26), (b) => BASE32[b & 31]).join('');

// The fake Frames script: the subset of Frames' API the live card page
// uses (init, Events, addEventHandler, isCardValid, submitCard,
// enableSubmitForm). It fetches /frames/config (the page's connect-src),
// frames /frames/card.html (frame-src) and is itself a script (script-src).
function framesScript(origin) {
  return `(function () {
  'use strict';
  var origin = ${JSON.stringify(origin)};
  var handlers = {}, frame = null, valid = false, publicKey = null, pending = null;
  function fire(name, data) { (handlers[name] || []).forEach(function (h) { h(data); }); }
  window.addEventListener('message', function (e) {
    if (e.origin !== origin || !frame || e.source !== frame.contentWindow) return;
    var m = e.data || {};
    if (m.type === 'validation') {
      valid = !!m.valid;
      fire('cardValidationChanged', { isValid: valid });
    } else if (m.type === 'tokenized') {
      fire('cardTokenized', m.card);
      if (pending) pending.resolve(m.card);
      pending = null;
    } else if (m.type === 'failed') {
      fire('cardTokenizationFailed', {});
      if (pending) pending.reject(new Error('tokenization failed'));
      pending = null;
    }
  });
  window.Frames = {
    Events: { READY: 'ready', CARD_VALIDATION_CHANGED: 'cardValidationChanged',
      CARD_TOKENIZED: 'cardTokenized', CARD_TOKENIZATION_FAILED: 'cardTokenizationFailed' },
    init: function (config) {
      publicKey = typeof config === 'string' ? config : config.publicKey;
      fetch(origin + '/frames/config?key=' + encodeURIComponent(publicKey)).then(function (r) {
        if (!r.ok) throw new Error('fake Frames: public key refused (' + r.status + ')');
        var holder = document.querySelector('.card-frame');
        frame = document.createElement('iframe');
        frame.src = origin + '/frames/card.html';
        frame.title = 'Card';
        frame.style.border = '0';
        frame.style.width = '100%';
        frame.style.height = '2.4rem';
        frame.addEventListener('load', function () { fire('ready', {}); });
        holder.appendChild(frame);
      }).catch(function (e) { console.error(e.message); });
    },
    addEventHandler: function (name, fn) { (handlers[name] = handlers[name] || []).push(fn); },
    isCardValid: function () { return valid; },
    submitCard: function () {
      return new Promise(function (resolve, reject) {
        pending = { resolve: resolve, reject: reject };
        frame.contentWindow.postMessage({ type: 'tokenize', publicKey: publicKey }, origin);
      });
    },
    enableSubmitForm: function () {}
  };
})();
`;
}

// The fake card field: one input; validity is 12 or more digits.
const CARD_HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Card</title>
<style>body{margin:0}input{font:16px sans-serif;width:100%;border:0;padding:.45rem .2rem}</style>
</head><body><input id="number" inputmode="numeric" autocomplete="cc-number" placeholder="Card number">
<script>
var number = document.getElementById('number');
function digits() { return number.value.replace(/[^0-9]/g, ''); }
number.addEventListener('input', function () {
  parent.postMessage({ type: 'validation', valid: digits().length >= 12 }, '*');
});
window.addEventListener('message', function (e) {
  if (e.source !== parent || !e.data || e.data.type !== 'tokenize') return;
  fetch('/tokens', { method: 'POST',
    headers: { Authorization: e.data.publicKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'card', number: digits(), expiry_month: 12, expiry_year: 2030 }) })
    .then(function (r) { if (!r.ok) throw new Error('tokens ' + r.status); return r.json(); })
    .then(function (card) { e.source.postMessage({ type: 'tokenized', card: card }, e.origin); })
    .catch(function () { e.source.postMessage({ type: 'failed' }, e.origin); });
});
</script></body></html>`;

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
  });
}

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text),
    ...headers });
  res.end(text);
}

function schemeOf(number) {
  if (/^3[47]/.test(number)) return 'American Express';
  if (/^5[1-5]/.test(number)) return 'Mastercard';
  return 'VISA';
}

// Start the stub on 127.0.0.1:port (0 = any free port). Resolves to
// { port, url, setMode(mode, errorCodes), requests(), reset(), close() }.
export function startCheckoutStub({ port = 0, secretKey, publicKey }) {
  if (!secretKey || !publicKey) throw new Error('checkout stub: secretKey and publicKey needed');
  let mode = 'approve';
  let errorCodes = ['token_invalid'];
  let requests = [];
  const cards = new Map();     // token -> { scheme, last4 } (tokens made by /tokens)
  const used = new Set();      // tokens already exchanged
  const hanging = new Set();   // sockets of requests left unanswered

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://stub');
    const body = await readBody(req);
    const origin = `http://${req.headers.host}`;

    if (url.pathname === '/instruments' || url.pathname === '/instruments-moved') {
      requests.push({ method: req.method, path: url.pathname, body,
        headers: { authorization: req.headers.authorization || null,
          'content-type': req.headers['content-type'] || null,
          accept: req.headers.accept || null } });
      if (req.method !== 'POST') return send(res, 405, '');
      if (req.headers.authorization !== `Bearer ${secretKey}`) {
        res.writeHead(401, { 'Content-Length': 0 });
        return res.end();
      }
      const requestId = id('req_');
      if (mode === 'slow') await new Promise((resolve) => setTimeout(resolve, 500));
      if (mode === 'hang') {
        hanging.add(res.socket);
        return undefined;
      }
      if (mode === 'fail') return send(res, 500, 'internal error', { 'Content-Type': 'text/plain' });
      if (mode === 'redirect') {
        res.writeHead(302, { Location: `${origin}/instruments-moved`, 'Content-Length': 0 });
        return res.end();
      }
      if (mode === 'garbage') return send(res, 201, '<html>not json</html>');
      if (mode === 'huge') return send(res, 201, { id: id('src_'), padding: 'x'.repeat(2 << 20) });
      if (mode === 'decline') {
        return send(res, 422, { request_id: requestId, error_type: 'request_invalid', error_codes: errorCodes });
      }
      let parsed;
      try { parsed = JSON.parse(body); } catch { parsed = null; }
      const wellFormed = /^application\/json/.test(req.headers['content-type'] || '') && parsed &&
        Object.keys(parsed).sort().join(',') === 'token,type' && parsed.type === 'token' &&
        typeof parsed.token === 'string' && /^tok_[a-z0-9]{26}$/.test(parsed.token);
      if (!wellFormed) {
        return send(res, 422, { request_id: requestId, error_type: 'request_invalid', error_codes: ['token_invalid'] });
      }
      if (used.has(parsed.token)) {
        return send(res, 422, { request_id: requestId, error_type: 'request_invalid', error_codes: ['token_used'] });
      }
      used.add(parsed.token);
      const card = cards.get(parsed.token) || { scheme: 'VISA', last4: '4242' };
      return send(res, 201, { id: id('src_'), type: 'card', fingerprint: id(''), expiry_month: 12,
        expiry_year: 2030, scheme: card.scheme, last4: card.last4, bin: '424242', card_type: 'CREDIT',
        card_category: 'CONSUMER', issuer_country: 'GB', customer: { id: id('cus_') } });
    }
    if (url.pathname === '/js/framesv2.min.js' && req.method === 'GET') {
      return send(res, 200, framesScript(origin), { 'Content-Type': 'application/javascript' });
    }
    if (url.pathname === '/frames/card.html' && req.method === 'GET') {
      return send(res, 200, CARD_HTML, { 'Content-Type': 'text/html; charset=utf-8' });
    }
    if (url.pathname === '/frames/config' && req.method === 'GET') {
      const ok = url.searchParams.get('key') === publicKey;
      return send(res, ok ? 200 : 401, { ok }, { 'Access-Control-Allow-Origin': '*' });
    }
    if (url.pathname === '/tokens' && req.method === 'POST') {
      if (req.headers.authorization !== publicKey) return send(res, 401, '');
      let card;
      try { card = JSON.parse(body); } catch { card = {}; }
      const number = String(card.number || '');
      if (!/^[0-9]{12,19}$/.test(number)) {
        return send(res, 422, { error_type: 'request_invalid', error_codes: ['card_number_invalid'] });
      }
      const token = id('tok_');
      const made = { scheme: schemeOf(number), last4: number.slice(-4) };
      cards.set(token, made);
      return send(res, 201, { type: 'card', token, expires_on: new Date(Date.now() + 900e3).toISOString(),
        expiry_month: 12, expiry_year: 2030, scheme: made.scheme, last4: made.last4,
        bin: number.slice(0, 6) });
    }
    if (url.pathname === '/_stub/mode' && req.method === 'POST') {
      let m;
      try { m = JSON.parse(body); } catch { m = {}; }
      if (!['approve', 'slow', 'decline', 'fail', 'hang', 'redirect', 'huge', 'garbage'].includes(m.mode)) {
        return send(res, 400, { error: `unknown mode ${m.mode}` });
      }
      mode = m.mode;
      errorCodes = Array.isArray(m.error_codes) ? m.error_codes : ['token_invalid'];
      return send(res, 200, { mode });
    }
    if (url.pathname === '/_stub/requests' && req.method === 'GET') return send(res, 200, requests);
    if (url.pathname === '/_stub/reset' && req.method === 'POST') {
      requests = [];
      mode = 'approve';
      errorCodes = ['token_invalid'];
      for (const s of hanging) s.destroy();
      hanging.clear();
      return send(res, 200, { mode });
    }
    return send(res, 404, { error: 'not found' });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const actual = server.address().port;
      resolve({
        port: actual,
        url: `http://127.0.0.1:${actual}`,
        setMode(m, codes) { mode = m; errorCodes = codes || ['token_invalid']; },
        requests: () => requests.slice(),
        reset() { requests = []; mode = 'approve'; errorCodes = ['token_invalid']; },
        close() {
          for (const s of hanging) s.destroy();
          server.closeAllConnections();
          return new Promise((r) => server.close(r));
        },
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const stub = await startCheckoutStub({ port: Number(process.env.CHECKOUT_STUB_PORT || 0),
    secretKey: process.env.CHECKOUT_STUB_SECRET_KEY, publicKey: process.env.CHECKOUT_STUB_PUBLIC_KEY });
  console.log(`listening ${stub.port}`);
  const stop = () => stub.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
