#!/usr/bin/env node
// url_differential.mjs - hostflow's strict URL parser against WHATWG's.
//
// For every URL that core/lib/url.c ACCEPTS, the WHATWG URL parser (Node's
// built-in `URL`, the one browsers implement) must also accept it and read
// the same scheme, the same host (WHATWG's hostname, lower-cased; IPv6 in
// brackets) and the same effective port. A disagreement means a policy
// could approve one host while a browser goes to another. URLs the C
// parser refuses are only counted: refusing more than a browser is the
// point of a strict parser. URLs the C parser accepts and WHATWG refuses
// (e.g. an xn-- label that is not valid Punycode) are reported but do not
// fail the check: a browser sent there goes nowhere, so no host but the
// approved one can be reached.
//
// Inputs: every file under the directories (or files) given on the command
// line (one URL per file, as libFuzzer corpora are), a built-in list of
// tricky URLs, and random mutations of both. Deterministic for a --seed.
//
//   node tests/fuzz/url_differential.mjs [--cli build-fuzz/url_cli]
//        [--count 20000] [--seed 1] [--show 10] [DIR|FILE]...
//
// Prints a summary; exits 1 on any disagreement, 2 on a usage or I/O error.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = { cli: 'build-fuzz/url_cli', count: 20000, seed: 1, show: 10 };
const sources = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--cli' || a === '--count' || a === '--seed' || a === '--show') {
    if (i + 1 >= args.length) usage(`${a} needs a value`);
    const v = args[++i];
    opt[a.slice(2)] = a === '--cli' ? v : Number(v);
  } else if (a === '--help' || a === '-h') {
    usage();
  } else if (a.startsWith('--')) {
    usage(`unknown option ${a}`);
  } else {
    sources.push(a);
  }
}
if (!Number.isInteger(opt.count) || opt.count < 0) usage('--count must be a whole number');

function usage(why) {
  if (why) console.error(`url_differential: ${why}`);
  console.error('usage: url_differential.mjs [--cli PATH] [--count N] [--seed N] [--show N] [DIR|FILE]...');
  process.exit(2);
}

// ---- deterministic randomness (mulberry32) --------------------------------
let state = (opt.seed >>> 0) || 1;
function rand() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const int = (n) => Math.floor(rand() * n);

// ---- inputs -----------------------------------------------------------------
// Raw byte strings ("binary"/latin1 JS strings), so a corpus file reaches
// the C parser byte for byte. Generated strings are ASCII or turned into
// UTF-8 bytes before joining.
const inputs = [];
const toBytes = (s) => Buffer.from(s, 'utf8').toString('latin1');

let fileCount = 0;
function addPath(p) {
  let st;
  try {
    st = statSync(p);
  } catch (e) {
    console.error(`url_differential: ${p}: ${e.message}`);
    process.exit(2);
  }
  if (st.isDirectory()) {
    for (const name of readdirSync(p).sort()) addPath(join(p, name));
  } else if (st.isFile() && st.size <= 4096) {
    inputs.push(readFileSync(p).toString('latin1'));
    fileCount++;
  }
}
for (const s of sources) addPath(s);

const tricky = [
  'https://a.com', 'https://a.com/', 'https://a.com\\@b.com', 'https://a.com\\@b.com/',
  'https:b.com', 'https:/b.com', 'https:///b.com', 'https:\\\\b.com', 'https://a.com%2eb.com',
  'https://a.com%2Eb.com/', 'https://a.com@b.com', 'https://user:pass@b.com/',
  'https://a.com:b.com@c.com/', 'https://a.com#@b.com', 'https://a.com?@b.com',
  'https://a.com/@b.com', 'https://a.com:443/', 'https://a.com:80/', 'http://a.com:80/',
  'http://a.com:443/', 'https://a.com:0/', 'https://a.com:65535/', 'https://a.com:65536/',
  'https://a.com:08080/', 'https://a.com:/', 'https://a.com:+80/', 'https://a.com:0x50/',
  'https://1.2.3.4/', 'https://127.0.0.1:8443/x', 'https://0x7f.0.0.1/', 'https://0x7f.1/',
  'https://127.1/', 'https://2130706433/', 'https://0177.0.0.1/', 'https://1.2.3.4./',
  'https://1.2.3/', 'https://256.0.0.1/', 'https://1.2.3.04/', 'https://a.1/', 'https://a.0x1/',
  'https://1.a/', 'https://0/', 'https://09/', 'https://a.b.c.d.e/',
  'https://[::1]/', 'https://[::1]:8443/', 'https://[0:0:0:0:0:0:0:1]/', 'https://[0::1]/',
  'https://[::ffff:1.2.3.4]/', 'https://[::1.2.3.4]/', 'https://[1:2:3:4:5:6:7:8]/',
  'https://[1:2:3:4:5:6:1.2.3.4]/', 'https://[::FFFF:7F00:1]/', 'https://[fe80::1%25eth0]/',
  'https://[::1]x/', 'https://[::1', 'https://[]/', 'https://[v1.x]/', 'https://[0:0::]/',
  'https://[::]/', 'https://[2001:db8::]:1/',
  'HTTPS://A.COM/', 'HtTp://ExAmPlE.CoM:8080/P?Q', 'https://xn--nxasmq6b.com/',
  'https://xn--a.com/', 'https://xn--/', 'https://a-.com/', 'https://-a.com/', 'https://a..com/',
  'https://.a.com/', 'https://a.com./', 'https://a_b.com/', 'https://a.com;b/',
  'ws://a.com/', 'wss://a.com:443/', 'ws://a.com:80/', 'ftp://a.com/', 'ftp://a.com:21/',
  'file://a.com/x', 'file://localhost/x', 'file:///etc/passwd', 'foo://A.COM/', 'foo://a.com:1/',
  'javascript://a.com/%0aalert(1)', 'data://a.com/', 'blob://a.com/', 'a+b-c.d://a.com/',
  'https://a.com/./../b', 'https://a.com/%2e%2e/', 'https://a.com/%zz', 'https://a.com/?%',
  'https://a.com/a?b?c', 'https://a.com?x', 'https://a.com/\t', 'https://a.com/ x',
  ' https://a.com/', 'https://a.com/\u00e9', 'https://\u00e9.com/', 'https://\uff41.com/',
  'https://a.com\u3002b.com/', 'https://\u0430.com/', 'https://ß.com/', 'https://a.com/#',
];

// Building blocks for combinations and insertions.
const schemes = ['https', 'http', 'HTTPS', 'hTtP', 'ws', 'wss', 'ftp', 'file', 'foo', 'javascript', 'h', 'https+x'];
const seps = ['://', ':/', ':', ':///', ':\\\\', ':/\\', '://\\'];
const hosts = [
  'a.com', 'A.COM', 'b.example.org', 'x', '1.2.3.4', '255.255.255.255', '0.0.0.0', '127.0.0.1',
  '0x7f.1', '127.1', '2130706433', '017.0.0.1', '1.2.3.4.', 'a.com.', '[::1]', '[::ffff:1.2.3.4]',
  '[0::1]', '[1:2:3:4:5:6:7:8]', '[::a:b]', '[::A:B]', 'xn--bcher-kva.de', 'localhost',
  'a-b.c-d', '9a.com', 'a.9', 'a.09', 'a.0x', 'a.b0x1', '0x', '1e1.com', 'a'.repeat(63) + '.com',
];
const ports = ['', ':1', ':80', ':443', ':8080', ':65535', ':65536', ':0', ':00', ':080', ':', ':99999', ':1a'];
const paths = ['', '/', '/p', '/a/b?c=d', '?q=1', '/%41', '/a@b', '/a:b', '/;x', '/~u', "/!$&'()*+,;=", '/?a?b'];
const tokens = [
  '@', ':', '/', '\\', '?', '#', '%', '%2e', '%2E', '%40', '%00', '.', '..', '[', ']', '::',
  '\t', '\n', '\r', ' ', '\u0000', '\u00a0', '\u3002', '\uff0e', '\uff20', '@b.com', 'a.com',
  '1.2.3.4', '0x', '0', '65536', 'xn--', '-', '_', '~', '!', '$', '&', "'", '(', ')', '*',
  '+', ',', ';', '=', '//', '\\\\', 'user:pw@', '[::1]', 'ß', 'é', 'A', 'Z',
];

for (const s of tricky) inputs.push(toBytes(s));
for (const s of schemes)
  for (const sep of ['://'])
    for (const h of hosts)
      inputs.push(toBytes(s + sep + h + pick(ports) + pick(paths)));

function mutate(s) {
  const edits = 1 + int(4);
  for (let e = 0; e < edits; e++) {
    const pos = int(s.length + 1);
    switch (int(7)) {
      case 0: s = s.slice(0, pos) + pick(tokens) + s.slice(pos); break;
      case 1: s = s.slice(0, pos) + s.slice(pos + 1 + int(3)); break;
      case 2: s = s.slice(0, pos) + String.fromCharCode(0x21 + int(94)) + s.slice(pos + 1); break;
      case 3: { // duplicate a slice
        const n = int(8);
        s = s.slice(0, pos) + s.slice(pos, pos + n) + s.slice(pos);
        break;
      }
      case 4: // flip case of one character
        s = s.slice(0, pos) + (s[pos] === s[pos]?.toUpperCase() ? (s[pos] ?? '').toLowerCase() : (s[pos] ?? '').toUpperCase()) + s.slice(pos + 1);
        break;
      case 5: // percent-encode one character
        if (pos < s.length) s = s.slice(0, pos) + '%' + s.charCodeAt(pos).toString(16).padStart(2, '0') + s.slice(pos + 1);
        break;
      default: // a fresh combination
        s = pick(schemes) + pick(seps) + pick(hosts) + pick(ports) + pick(paths);
    }
  }
  return s;
}

const pool = inputs.slice();
for (let i = 0; i < opt.count; i++) {
  const base = pool.length && rand() < 0.8 ? pick(pool) : pick(schemes) + '://' + pick(hosts) + pick(ports) + pick(paths);
  // mutate() works on JS strings; corpus strings are latin1 bytes, which
  // stay bytes (a non-ASCII byte is refused by the C parser anyway)
  inputs.push(toBytes(mutate(Buffer.from(base, 'latin1').toString('utf8'))));
}

// ---- run the C parser once over everything --------------------------------
const unique = [...new Set(inputs)].filter((s) => !s.includes('\n'));
const stdin = Buffer.from(unique.join('\n') + '\n', 'latin1');
const run = spawnSync(opt.cli, [], { input: stdin, maxBuffer: 1 << 30 });
if (run.error || run.status !== 0) {
  console.error(`url_differential: ${opt.cli} failed: ${run.error ? run.error.message : `exit ${run.status}`}`);
  if (run.stderr && run.stderr.length) console.error(run.stderr.toString());
  process.exit(2);
}
const lines = run.stdout.toString('latin1').split('\n');
lines.pop();
if (lines.length !== unique.length) {
  console.error(`url_differential: ${opt.cli} answered ${lines.length} lines for ${unique.length} URLs`);
  process.exit(2);
}

// ---- compare ------------------------------------------------------------------
const specialPort = { 'http': 80, 'https': 443, 'ws': 80, 'wss': 443, 'ftp': 21 };
const show = (s) => JSON.stringify(Buffer.from(s, 'latin1').toString('latin1'));
const problems = new Map(); // category -> [lines]
let accepted = 0, agreed = 0, whatwgOnly = 0, bothRefuse = 0;
const browserRefuses = []; // accepted by C, refused by WHATWG

// Which known family a disagreement belongs to, so a summary reads as a
// handful of causes rather than a list of strings.
function family(scheme, host) {
  if (scheme === 'file') return 'file: URL (WHATWG: no port; "localhost" is the empty host)';
  if (host.startsWith('[')) return 'IPv6 literal not in WHATWG\'s serialized form';
  if (/(^|\.)xn--/.test(host)) return 'xn-- label that is not valid IDNA/Punycode';
  return 'other';
}

function report(kind, scheme, host, text) {
  const cat = `${kind} / ${family(scheme, host)}`;
  if (!problems.has(cat)) problems.set(cat, []);
  problems.get(cat).push(text);
}

for (let i = 0; i < unique.length; i++) {
  const raw = unique[i];
  const f = lines[i].split(' ');
  let w = null;
  try {
    w = new URL(Buffer.from(raw, 'latin1').toString('utf8'));
  } catch {
    w = null;
  }
  if (f[0] !== 'OK') {
    if (w) whatwgOnly++;
    else bothRefuse++;
    continue;
  }
  accepted++;
  const [, scheme, host, portText] = f;
  const port = Number(portText);
  const c = `C: ${scheme} ${host} ${port}`;
  if (!w) {
    browserRefuses.push(`${show(raw)}  ${c}`);
    continue;
  }
  const wScheme = w.protocol.replace(/:$/, '');
  const wHost = w.hostname.toLowerCase();
  const wPort = w.port === '' ? (specialPort[wScheme] ?? -1) : Number(w.port);
  const ww = `WHATWG: ${wScheme} ${JSON.stringify(w.hostname)} ${w.port === '' ? `'' (${wPort})` : wPort}`;
  if (wScheme !== scheme) report('scheme differs', scheme, host, `${show(raw)}  ${c}  ${ww}`);
  else if (w.username !== '' || w.password !== '') report('WHATWG sees userinfo', scheme, host, `${show(raw)}  ${c}  ${ww}`);
  else if (wHost !== host) report('host differs', scheme, host, `${show(raw)}  ${c}  ${ww}`);
  // C's -1 means "no port given, not http(s)": WHATWG's '' is the same claim
  else if (!(port === wPort || (port === -1 && w.port === ''))) report('port differs', scheme, host, `${show(raw)}  ${c}  ${ww}`);
  else agreed++;
}

const disagreements = [...problems.values()].reduce((n, xs) => n + xs.length, 0);
if (browserRefuses.length) {
  console.log(`  accepted by C, refused by WHATWG (safe: no browser goes anywhere): ${browserRefuses.length}`);
  for (const x of browserRefuses.slice(0, opt.show)) console.log(`    ${x}`);
}
console.log(`url differential: ${unique.length} URLs (${fileCount} from files, seed ${opt.seed}); ` +
  `C accepts ${accepted}: ${agreed} agree with WHATWG, ${disagreements} disagree; ` +
  `C refuses ${unique.length - accepted} (${whatwgOnly} of them WHATWG accepts, ${bothRefuse} both refuse)`);
for (const [cat, xs] of problems) {
  console.log(`  ${cat}: ${xs.length}`);
  for (const x of xs.slice(0, opt.show)) console.log(`    ${x}`);
  if (xs.length > opt.show) console.log(`    ... ${xs.length - opt.show} more`);
}
process.exit(disagreements ? 1 : 0);
