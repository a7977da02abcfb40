// test_browser.mjs - tlm in a real browser: Debian's chromium driven by playwright-core.
// Normally run by e2e/test_browser.py, which starts the service, serves page.html from two
// other origins and performs the restarts this script asks for.
//
// Env: TLM_API (ingest base URL), TLM_PAGE_URL (allowed origin serving page.html),
//      TLM_BAD_PAGE_URL (an origin allowed for no tenant), TLM_STDOUT (logshipper stdout
//      file), TLM_RESULT (where to write the JSON summary), TLM_TOKEN (dev-token),
//      TLM_CHROMIUM (/usr/bin/chromium), TLM_NO_RESTARTS=1 (run without a wrapper).
// Restarts: prints "TLM_STEP RESTART_LOGSHIPPER" / "TLM_STEP RESTART_INGEST" on stdout and
// waits for "DONE <step>" on stdin. Exit code 0 = every check passed.
import fs from 'node:fs';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const env = process.env;
const API = need('TLM_API');
const PAGE = need('TLM_PAGE_URL');
const BAD_PAGE = need('TLM_BAD_PAGE_URL');
const STDOUT = need('TLM_STDOUT');
const TOKEN = env.TLM_TOKEN || 'dev-token';
const CHROMIUM = env.TLM_CHROMIUM || '/usr/bin/chromium';
const RESTARTS = env.TLM_NO_RESTARTS !== '1';
const T0 = Date.now();
const failures = [];

function need(name) {
  if (!env[name]) {
    console.error(`test_browser: ${name} is required`);
    process.exit(2);
  }
  return env[name].replace(/\/+$/, '');
}

function log(...a) {
  console.error(`[browser ${((Date.now() - T0) / 1000).toFixed(1)}s]`, ...a);
}

function check(cond, what) {
  if (!cond) {
    failures.push(what);
    log('FAIL:', what);
  }
  return cond;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

function uniq(p) {
  return `${p}-${Math.random().toString(16).slice(2, 10)}${Date.now().toString(16)}`;
}

// Complete JSON lines of the logshipper's stdout.
function stdoutLines() {
  const text = fs.existsSync(STDOUT) ? fs.readFileSync(STDOUT, 'utf8') : '';
  const parts = text.split('\n');
  parts.pop();
  const out = [];
  for (const p of parts) {
    if (!p) continue;
    try {
      out.push(JSON.parse(p));
    } catch (e) {
      check(false, `stdout line is not JSON: ${p.slice(0, 200)}`);
    }
  }
  return out;
}

// Wrapper protocol: one request per step, answered on stdin.
const stdinLines = [];
const stdinWaiters = [];
if (RESTARTS) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (l) => {
    const w = stdinWaiters.shift();
    if (w) w(l.trim());
    else stdinLines.push(l.trim());
  });
}
async function askWrapper(step, timeoutMs = 30000) {
  if (!RESTARTS) {
    log(`skipping ${step} (TLM_NO_RESTARTS=1)`);
    return;
  }
  process.stdout.write(`TLM_STEP ${step}\n`);
  const line = stdinLines.length ? stdinLines.shift() : await Promise.race([
    new Promise((r) => stdinWaiters.push(r)),
    sleep(timeoutMs).then(() => null),
  ]);
  if (line !== `DONE ${step}`) throw new Error(`wrapper answered ${JSON.stringify(line)} to ${step}`);
  log(`${step} done`);
}

async function launch() {
  const quiet = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'];
  try {
    return await chromium.launch({ executablePath: CHROMIUM, headless: true, args: quiet, timeout: 20000 });
  } catch (e) {
    log(`chromium refused to start with its sandbox (${String(e.message).split('\n')[0]}); retrying with --no-sandbox`);
    return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', ...quiet], timeout: 20000 });
  }
}

async function openPage(browser, base, consoleSink) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(10000);
  page.on('console', (m) => {
    if (consoleSink) consoleSink.push(m.text());
    if (m.type() === 'error' || m.type() === 'warning') log(`page console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => check(false, `page error: ${e.message}`));
  const url = `${base}/page.html?api=${encodeURIComponent(API)}&token=${encodeURIComponent(TOKEN)}`;
  await page.goto(url, { timeout: 10000 });
  await page.waitForFunction(() => !!window.tlm, null, { timeout: 5000 });
  return page;
}

async function main() {
  const result = { posted: [], acked: [], badMarker: null, closes: [], reconnects: 0, steps: [] };
  const browser = await launch();
  log(`chromium ${browser.version()} up`);
  try {
    // 1. fetch from the allowed origin: JSON and gzip (CompressionStream), 202 = written
    const page = await openPage(browser, PAGE);
    for (const gzip of [false, true]) {
      const m = uniq(gzip ? 'br-gzip' : 'br-json');
      const body = { appName: 'wwe_ui', batchId: m, traces: [{ msg: `${m} r0` }, { msg: `${m} r1` }] };
      const r = await page.evaluate(([b, g]) => window.tlm.post(b, g), [body, gzip]);
      check(r.ok && r.status === 202, `fetch POST (gzip=${gzip}) from the allowed origin: ${JSON.stringify(r)}`);
      check(r.body && r.body.accepted === 2, `fetch POST (gzip=${gzip}) accepted 2: ${JSON.stringify(r)}`);
      const lines = stdoutLines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith(m + ' '));
      check(lines.length === 2, `records of the fetch POST (gzip=${gzip}) on stdout at the 202: found ${lines.length}`);
      result.posted.push({ marker: m, msgs: body.traces.map((t) => t.msg), gzip });
    }
    result.steps.push('fetch');

    // 2. stream over WebSocket; restart the logshipper and then the ingest under it
    const prefix = uniq('br-ws');
    result.prefix = prefix;
    await page.evaluate((p) => window.tlm.startStream({ prefix: p, everyMs: 50, records: 3 }), prefix);
    const acked = () => page.evaluate(() => window.tlmState.acked.length);
    await waitFor(async () => (await acked()) >= 20, 15000, '20 acked batches');
    log(`streaming: ${await acked()} batches acked`);

    let before = await acked();
    await askWrapper('RESTART_LOGSHIPPER');
    await waitFor(async () => (await acked()) >= before + 20, 20000, '20 more acks after the logshipper restart');
    log(`after the logshipper restart: ${await acked()} acked`);
    result.steps.push('logshipper restart');

    before = await acked();
    const connectsBefore = await page.evaluate(() => window.tlmState.connects);
    await askWrapper('RESTART_INGEST');
    if (RESTARTS) {
      await waitFor(() => page.evaluate((c) => window.tlmState.connects > c && window.tlmState.authOk > 1, connectsBefore),
        20000, 'a reconnect after the ingest restart');
    }
    await waitFor(async () => (await acked()) >= before + 20, 20000, '20 more acks after the ingest restart');
    log(`after the ingest restart: ${await acked()} acked`);
    result.steps.push('ingest restart');

    const made = await page.evaluate(() => window.tlm.stopGenerating());
    await waitFor(() => page.evaluate(() => window.tlm.pending() === 0), 20000, 'every batch acked');
    await page.evaluate(() => window.tlm.stopStream());
    const st = await page.evaluate(() => window.tlm.state());
    result.acked = st.acked;
    result.closes = st.closes;
    result.reconnects = st.reconnects;
    log(`stream done: ${made} batches made, ${st.acked.length} acked, ${st.connects} connections, closes ${JSON.stringify(st.closes)}`);
    check(st.acked.length === made && st.created === made, `every batch made was acked (${st.acked.length} of ${made})`);
    check(st.errors.length === 0, `error answers: ${JSON.stringify(st.errors.slice(0, 5))}`);
    check(st.protocolErrors.length === 0, `protocol errors: ${JSON.stringify(st.protocolErrors.slice(0, 5))}`);
    check(st.lastAuth && st.lastAuth.user === 'agent1' && st.lastAuth.tenantName === 'pulse',
      `auth answer: ${JSON.stringify(st.lastAuth)}`);
    if (RESTARTS) check(st.connects >= 2, `the page reconnected after the ingest restart (connections: ${st.connects})`);

    // every acked record is on stdout; a record written twice keeps its rid
    const byMsg = new Map();
    for (const l of stdoutLines()) {
      if (typeof l.msg === 'string' && l.msg.startsWith(prefix)) {
        if (!byMsg.has(l.msg)) byMsg.set(l.msg, new Set());
        byMsg.get(l.msg).add(l.rid);
      }
    }
    let missing = 0, ridChanged = 0;
    for (const a of st.acked) {
      check(a.accepted === a.msgs.length, `seq ${a.seq} accepted ${a.accepted} of ${a.msgs.length}`);
      for (const msg of a.msgs) {
        if (!byMsg.has(msg)) missing++;
        else if (byMsg.get(msg).size !== 1) ridChanged++;
      }
    }
    log(`stdout: ${byMsg.size} distinct streamed records; missing acked ${missing}, rid changed ${ridChanged}`);
    check(missing === 0, `${missing} acked records are not on stdout`);
    check(ridChanged === 0, `${ridChanged} records were written twice with different rids`);
    await page.context().close();

    // 3. an origin allowed for no tenant: fetch is refused by the browser (CORS), the
    //    WebSocket handshake by the server (403)
    const consoleBad = [];
    const bad = await openPage(browser, BAD_PAGE, consoleBad);
    const bm = uniq('br-bad');
    result.badMarker = bm;
    const r = await bad.evaluate((b) => window.tlm.post(b, false), { appName: 'wwe_ui', traces: [{ msg: `${bm} r0` }] });
    check(!r.ok && r.error === 'TypeError', `fetch from a refused origin must fail with TypeError: ${JSON.stringify(r)}`);
    const probe = await bad.evaluate(() => window.tlm.probe(5000));
    check(!probe.opened && probe.closeCode === 1006, `WebSocket from a refused origin must not open: ${JSON.stringify(probe)}`);
    await sleep(200);
    check(consoleBad.some((t) => /WebSocket/.test(t) && /403/.test(t)),
      `chromium should report the handshake's 403; console: ${JSON.stringify(consoleBad)}`);
    check(!stdoutLines().some((l) => typeof l.msg === 'string' && l.msg.startsWith(bm)), 'records of a refused origin were written');
    await bad.context().close();
    result.steps.push('refused origin');
  } finally {
    await browser.close();
  }
  result.failures = failures;
  if (env.TLM_RESULT) fs.writeFileSync(env.TLM_RESULT, JSON.stringify(result));
  log(failures.length ? `${failures.length} check(s) failed` : 'all browser checks passed');
  return failures.length ? 1 : 0;
}

const overall = setTimeout(() => {
  log('overall time limit (55 s) reached');
  process.exit(3);
}, 55000);
main().then((rc) => {
  clearTimeout(overall);
  process.exit(rc);
}, (e) => {
  log(`error: ${e && e.stack ? e.stack : e}`);
  if (env.TLM_RESULT) fs.writeFileSync(env.TLM_RESULT, JSON.stringify({ error: String(e), failures }));
  process.exit(1);
});
