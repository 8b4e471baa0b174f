// Browser tests of the web console: Debian's Chromium (headless, driven by
// playwright-core) against a real canaryd on a loopback port. The tests
// run in order and share one server and one signed-in tab, as an analyst's
// session would: sign in, filter, watch, reload, lose the connection,
// replay, switch language, look at the charts.
//
// Run: CANARY_BIN_DIR=build node --test tests/console/
// Set CANARY_SCREENSHOT_DIR=/some/dir to save a screenshot of each view.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, symlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Canaryd, CONSOLE_DIR, launchBrowser, newPage, ingest, makeSignal, signIn,
  rowSeqs, waitFor, sleep, screenshot, unexpectedProblems,
} from './harness.mjs';

let server;
let key;
let browser;
let page;

// Every signal this test file ingested, by seq, to compute expectations.
const stored = new Map();

async function ingestAll(signals) {
  const res = await ingest(server, key, signals);
  signals.forEach((s, i) => stored.set(res.first_seq + i, s));
  return res;
}

// The filter the tests set, and the same rules in plain code.
const FILTER = { domains: '*.bank.example, shop.example', min_confidence: 'medium', stage: 'ATTACK' };

function matchesFilter(s) {
  const domainOk = s.related_domain === 'shop.example' || s.related_domain.endsWith('.bank.example');
  const confOk = s.confidence === 'medium' || s.confidence === 'high';
  return domainOk && confOk && s.threat_stage === 'ATTACK';
}

function expectedSeqs(fromSeq, toSeq, pred = matchesFilter) {
  const out = [];
  for (const [seq, s] of stored) {
    if (seq > fromSeq && seq <= toSeq && pred(s)) out.push(seq);
  }
  return out.sort((a, b) => b - a);
}

function assertNoDuplicates(seqs) {
  assert.equal(new Set(seqs).size, seqs.length, `duplicate rows: ${seqs.join(',')}`);
}

// A raw GET whose path is sent exactly as written (no URL normalising).
function rawGet(path) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

before(async () => {
  server = await new Canaryd().start();
  key = server.key();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    await server.stop();
    server.cleanup();
  }
});

test('console page has strict security headers', async () => {
  const res = await rawGet('/');
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/html; charset=utf-8/);
  const csp = res.headers['content-security-policy'];
  assert.ok(csp, 'Content-Security-Policy header present');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /style-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  assert.equal(res.headers['x-content-type-options'], 'nosniff');
  assert.equal(res.headers['x-frame-options'], 'DENY');
  assert.equal(res.headers['referrer-policy'], 'no-referrer');
});

test('console assets have their MIME types', async () => {
  const cases = [['/app.js', /^text\/javascript/], ['/app.css', /^text\/css/],
    ['/favicon.svg', /^image\/svg\+xml/], ['/index.html', /^text\/html/]];
  for (const [path, type] of cases) {
    const res = await rawGet(path);
    assert.equal(res.status, 200, path);
    assert.match(res.headers['content-type'], type, path);
    assert.match(res.headers['content-security-policy'], /default-src 'none'/, path);
  }
});

test('console serves nothing outside its directory', async () => {
  const paths = ['/../CMakeLists.txt', '/%2e%2e/%2e%2e/CMakeLists.txt', '/..%2f..%2fCMakeLists.txt',
    '/.gitignore', '/app.js/', '//etc/passwd', '/../../../../etc/passwd', '/nope.js',
    '/app.exe', '/app.js%00.css', '/index.html.bak'];
  for (const path of paths) {
    // libwebsockets drops a connection whose URI contains %00 before routing.
    const res = await rawGet(path).catch((err) => ({ status: err.code, body: '' }));
    assert.ok(res.status === 404 || (path.includes('%00') && res.status === 'ECONNRESET'),
      `${path} answered ${res.status}`);
    assert.doesNotMatch(res.body, /root:|cmake_minimum_required/, path);
  }
  const api = await rawGet('/v1/canary/nothing');
  assert.equal(api.status, 404);
  assert.match(api.headers['content-type'], /problem\+json/);
});

test('console loads nothing from other hosts', () => {
  const html = readFileSync(join(CONSOLE_DIR, 'index.html'), 'utf8');
  for (const m of html.matchAll(/(?:src|href)="([^"]*)"/g)) {
    assert.match(m[1], /^\/[^/]/, `index.html references ${m[1]}`);
  }
  const css = readFileSync(join(CONSOLE_DIR, 'app.css'), 'utf8');
  assert.doesNotMatch(css, /@import|url\(\s*["']?(https?:)?\/\//);
  const js = readFileSync(join(CONSOLE_DIR, 'app.js'), 'utf8');
  assert.doesNotMatch(js, /https?:\/\/(?!www\.w3\.org\/)/, 'app.js names no remote address');
});

test('console disabled by an empty console_dir', async () => {
  const off = await new Canaryd({ settings: { console_dir: '' } }).start();
  try {
    const res = await fetch(`${off.url}/`);
    assert.equal(res.status, 404);
    const health = await fetch(`${off.url}/healthz`);
    assert.equal(health.status, 200);
  } finally {
    await off.stop();
    off.cleanup();
  }
});

test('console directory guards', async () => {
  // A console directory with a subdirectory, a link to a file outside,
  // and a link to a directory outside; no index.html.
  const dir = mkdtempSync(join(tmpdir(), 'canary-console-dir-'));
  const outside = mkdtempSync(join(tmpdir(), 'canary-outside-'));
  writeFileSync(join(outside, 'secret.txt'), 'outside the console');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'assets', 'ok.txt'), 'inside');
  symlinkSync(join(outside, 'secret.txt'), join(dir, 'linked.txt'));
  symlinkSync(outside, join(dir, 'out'));
  const srv = await new Canaryd({ settings: { console_dir: dir } }).start();
  try {
    const get = async (path) => {
      const res = await fetch(`${srv.url}${path}`);
      return { status: res.status, body: await res.text() };
    };
    const ok = await get('/assets/ok.txt');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'inside');
    for (const path of ['/linked.txt', '/out/secret.txt']) {
      const res = await get(path);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(res.body, /outside the console/, path);
    }
    const index = await get('/');
    assert.equal(index.status, 503, 'missing index.html');
    assert.match(index.body, /npm run build/);
  } finally {
    await srv.stop();
    srv.cleanup();
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});

test('sign-in rejects an unknown key', async () => {
  const p = await newPage(browser);
  try {
    await p.goto(`${server.url}/`);
    await screenshot(p, 'signin');
    const wrong = `ck_0000000000000000_${'0'.repeat(64)}`;
    await p.fill('#key', wrong);
    await p.click('#signin-form button[type="submit"]');
    await waitFor(() => p.isVisible('#signin-error'), 'sign-in error shown');
    assert.match(await p.textContent('#signin-error'), /rejected/);
    assert.ok(await p.isVisible('#signin-form'));
    assert.equal(await p.evaluate(() => sessionStorage.getItem('canary.key')), null);
    assert.ok(!p.url().includes(wrong));
  } finally {
    await p.context().close();
  }
});

test('sign-in keeps the key in this tab only', async () => {
  page = await newPage(browser);
  await signIn(page, server, key);
  assert.ok(!page.url().includes(key), 'key not in the URL');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('canary.key')), key);
  const local = await page.evaluate(() => JSON.stringify({ ...localStorage }));
  assert.ok(!local.includes(key), 'key not in localStorage');
  assert.ok(await page.isVisible('#live-empty'));
});

test('live view shows exactly the signals matching the filter', async () => {
  await page.fill('#f-domains', FILTER.domains);
  await page.selectOption('#f-min', FILTER.min_confidence);
  await page.check(`input[name="stage"][value="${FILTER.stage}"]`);
  await page.click('#filter-apply');
  await waitFor(() => page.evaluate(() => document.getElementById('status').dataset.status === 'live'), 'live after filter');
  assert.match(await page.textContent('#live-filter'), /\*\.bank\.example/);

  const res = await ingestAll(Array.from({ length: 60 }, (_, i) => makeSignal(i)));
  const want = expectedSeqs(0, res.last_seq);
  assert.ok(want.length > 5, 'the batch has matching signals');
  assert.ok(want.length < 60, 'the batch has signals that do not match');
  await waitFor(async () => (await rowSeqs(page)).length >= want.length, `${want.length} rows`);
  await sleep(300);
  assert.deepEqual(await rowSeqs(page), want, 'exactly the matching signals, newest on top');

  const firstRow = await page.$$eval('#live-rows > .sig:first-child > div', (tds) => tds.map((td) => td.textContent));
  const sig = stored.get(want[0]);
  assert.equal(firstRow[1], String(want[0]));
  assert.equal(firstRow[7], sig.related_domain);
  assert.match(firstRow[0], /GMT\+9$/, 'time shown with the viewer offset');
  await screenshot(page, 'live');
});

test('pause holds new rows until resume', async () => {
  const before = await rowSeqs(page);
  await page.click('#pause');
  const res = await ingestAll(Array.from({ length: 12 }, (_, i) => makeSignal(i, { threat_stage: 'ATTACK', confidence: 'high', related_domain: 'shop.example' })));
  await waitFor(() => page.isVisible('#live-pending'), 'pending count shown while paused');
  assert.match(await page.textContent('#live-pending'), /12/);
  assert.deepEqual(await rowSeqs(page), before, 'table frozen while paused');
  await page.click('#pause');
  const want = expectedSeqs(0, res.last_seq);
  await waitFor(async () => (await rowSeqs(page)).length === want.length, 'rows after resume');
  assert.deepEqual(await rowSeqs(page), want);
});

test('reload resumes after the last seq without duplicates', async () => {
  const shown = await rowSeqs(page);
  await page.reload();
  await waitFor(() => page.evaluate(() => document.getElementById('status').dataset.status === 'live'), 'live after reload');
  await sleep(300);
  assert.deepEqual(await rowSeqs(page), shown, 'the same rows after reload');
  assert.equal(await page.locator('#live-rows > .mark-restored').count(), 1);

  // Signals that arrive while the tab shows another page are not missed.
  await page.goto('about:blank');
  const missed = await ingestAll(Array.from({ length: 20 }, (_, i) => makeSignal(i + 100)));
  await page.goto(`${server.url}/`);
  await waitFor(() => page.evaluate(() => document.getElementById('status').dataset.status === 'live'), 'live after return');
  const want = expectedSeqs(0, missed.last_seq);
  await waitFor(async () => (await rowSeqs(page)).length >= want.length, 'missed signals shown');
  await sleep(300);
  const seqs = await rowSeqs(page);
  assertNoDuplicates(seqs);
  assert.deepEqual(seqs, want);
});

test('reconnection is marked and loses nothing', async () => {
  const port = server.port;
  await server.stop();
  await waitFor(() => page.evaluate(() => document.getElementById('status').dataset.status === 'reconnecting'), 'reconnecting status');
  server.port = port;
  await server.start();
  const res = await ingestAll(Array.from({ length: 30 }, (_, i) => makeSignal(i + 200)));
  await waitFor(() => page.locator('#live-rows > .mark-reconnect').count(), 'reconnect mark', 20000);
  const want = expectedSeqs(0, res.last_seq);
  await waitFor(async () => (await rowSeqs(page)).length >= want.length, 'rows after reconnect');
  await sleep(300);
  const seqs = await rowSeqs(page);
  assertNoDuplicates(seqs);
  assert.deepEqual(seqs, want);
  assert.match(await page.textContent('#live-rows > .mark-reconnect'), /Reconnected/);
});

test('retention gap is marked', async () => {
  // A server of its own with 2 s retention: signals ingested while the
  // tab is away are deleted before it returns, and the stream sends a gap.
  const short = await new Canaryd({ settings: { retention_s: 2, retention_check_s: 1 } }).start();
  const shortKey = short.key();
  const p = await newPage(browser);
  try {
    await signIn(p, short, shortKey);
    await ingest(short, shortKey, [makeSignal(0)]);
    await waitFor(async () => (await rowSeqs(p)).length === 1, 'first row');
    await p.goto('about:blank');
    const res = await ingest(short, shortKey, Array.from({ length: 6 }, (_, i) => makeSignal(i + 1)));
    await waitFor(async () => {
      const r = await fetch(`${short.url}/v1/canary/signals?limit=1&since_hours=1`, { headers: { Authorization: `Bearer ${shortKey}` } });
      return (await r.json()).total_count === 0;
    }, 'retention to delete the signals', 20000);
    await p.goto(`${short.url}/`);
    await waitFor(() => p.locator('#live-rows > .mark-gapRetention').count(), 'gap mark');
    const text = await p.textContent('#live-rows > .mark-gapRetention');
    assert.match(text, new RegExp(`\\b${res.first_seq}\\b.*\\b${res.last_seq}\\b`), `gap names the missing range: ${text}`);
    await screenshot(p, 'gap');
  } finally {
    await p.context().close();
    await short.stop();
    short.cleanup();
  }
});

test('replay plays history into the view', async () => {
  const old = new Date(Date.now() - 3 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const early = await ingestAll(Array.from({ length: 8 }, (_, i) => makeSignal(i, { timestamp: old, threat_stage: 'ATTACK', confidence: 'high', related_domain: 'shop.example' })));
  const recent = await ingestAll(Array.from({ length: 8 }, (_, i) => makeSignal(i, { threat_stage: 'ATTACK', confidence: 'medium', related_domain: 'login.bank.example' })));

  await page.fill('#r-seq', String(early.first_seq - 1));
  await page.click('#replay-start');
  const want = expectedSeqs(early.first_seq - 1, recent.last_seq);
  assert.equal(want.length, 16);
  await waitFor(() => page.locator('#live-rows > .mark-replayDone').count(), 'replay done mark');
  assert.deepEqual(await rowSeqs(page), want, 'replay by seq');

  // By time: one hour ago, as the analyst's clock (the page's time zone)
  // shows it. The signals observed three hours ago stay out.
  await page.fill('#r-seq', '');
  const local = await page.evaluate(() => {
    const d = new Date(Date.now() - 3600 * 1000);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  });
  const since = await page.evaluate((v) => new Date(v).getTime(), local);
  await page.fill('#r-time', local);
  await page.click('#replay-start');
  await waitFor(async () => (await page.locator('#live-rows > .mark-replayDone').count()) === 1 &&
    (await page.locator('#live-rows > .mark-replayTime').count()) === 1, 'time replay done');
  const byTime = expectedSeqs(0, recent.last_seq, (s) => matchesFilter(s) && Date.parse(s.timestamp) >= since);
  assert.ok(byTime.includes(recent.last_seq), 'recent signals replayed');
  assert.ok(!byTime.includes(early.last_seq), 'older signals left out');
  assert.deepEqual(await rowSeqs(page), byTime, 'replay by time');
  await screenshot(page, 'replay');
});

test('language switch to Japanese is remembered', async () => {
  await page.selectOption('#lang', 'ja');
  assert.equal(await page.textContent('#live-table .head > div:first-child'), '観測日時');
  assert.equal(await page.textContent('#nav button[data-view="live"]'), 'ライブ');
  assert.equal(await page.textContent('#filter-apply'), 'フィルターを適用');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'ja');
  const stages = await page.$$eval('#live-rows > .sig > div:nth-child(5)', (tds) => tds.map((td) => td.textContent));
  assert.ok(stages.length > 0 && stages.every((s) => s === '攻撃段階'), `stages in Japanese: ${stages}`);
  assert.match(await page.textContent('#tz'), /時刻は .*UTC\+09:00/);
  await screenshot(page, 'live-ja');

  await page.reload();
  await waitFor(() => page.evaluate(() => document.getElementById('status').dataset.status === 'live'), 'live after reload');
  assert.equal(await page.textContent('#live-table .head > div:first-child'), '観測日時', 'choice survives a reload');
  await page.selectOption('#lang', 'en');
  assert.equal(await page.textContent('#live-table .head > div:first-child'), 'Observed');
});

test('browser language chooses the default', async () => {
  for (const [locale, label] of [['ja-JP', '観測日時'], ['en-US', 'Observed'], ['de-DE', 'Observed']]) {
    const p = await newPage(browser, { locale });
    try {
      await p.goto(`${server.url}/`);
      assert.equal(await p.textContent('#live-table .head > div:first-child'), label, locale);
      assert.equal(await p.textContent('#signin-form h2'), locale === 'ja-JP' ? 'サインイン' : 'Sign in');
    } finally {
      await p.context().close();
    }
  }
});

test('every string exists in both languages', async () => {
  const keys = await page.evaluate(async () => {
    const els = [...document.querySelectorAll('[data-i18n], [data-i18n-placeholder]')];
    return els.map((el) => el.dataset.i18n || el.dataset.i18nPlaceholder);
  });
  const src = readFileSync(join(CONSOLE_DIR, '..', 'src', 'i18n.js'), 'utf8');
  const en = src.slice(src.indexOf('en: {'), src.indexOf('ja: {'));
  const ja = src.slice(src.indexOf('ja: {'));
  const names = (block) => new Set([...block.matchAll(/^\s+'([\w.]+)':/gm)].map((m) => m[1]));
  const enKeys = names(en);
  const jaKeys = names(ja);
  assert.deepEqual([...enKeys].filter((k) => !jaKeys.has(k)), [], 'keys missing in Japanese');
  assert.deepEqual([...jaKeys].filter((k) => !enKeys.has(k)), [], 'keys missing in English');
  for (const k of keys) assert.ok(enKeys.has(k), `page uses unknown string ${k}`);
});

// ---- statistics and campaigns ----

// Responses in the documented shapes, used only when this canaryd does
// not have the endpoints (GET returns 404).
function fakeStats(hours) {
  const now = Math.floor(Date.now() / 3600000) * 3600000;
  const trend = [];
  for (let h = 5; h >= 0; h--) {
    trend.push({ bucket: new Date(now - h * 3600000).toISOString().replace(/\.\d+Z$/, 'Z'), count: 10 + h });
  }
  const total = trend.reduce((a, p) => a + p.count, 0);
  return {
    time_range: `${hours}h`, total,
    by_event_type: { credential_testing: 30, account_probe: 25, sim_recon: 10, fraud_test: total - 65 },
    by_confidence: { low: 20, medium: 30, high: total - 50 },
    by_stage: { TESTING: 40, ATTACK: total - 40 },
    by_proxy_type: { datacenter: 35, residential: 20, mobile: 10, tor: total - 65 },
    by_region: { JP: 40, US: 20, DE: total - 60 },
    top_domains: [{ domain: 'shop.example', count: 50 }, { domain: 'login.bank.example', count: total - 50 }],
    trend,
    network: { sensors_active: 3, subscribers_connected: 2 },
  };
}

const fakeCampaigns = {
  campaigns: [
    { id: 'camp_1a2b', related_domain: 'shop.example', first_seen: '2026-01-03T01:00:00Z', last_seen: '2026-01-03T04:00:00Z', signal_count: 42, event_types: ['credential_testing'], stages: ['TESTING', 'ATTACK'], proxy_types: ['residential'], regions: ['JP'], max_confidence: 'high', status: 'active' },
    { id: 'camp_3c4d', related_domain: 'login.bank.example', first_seen: '2026-01-02T01:00:00Z', last_seen: '2026-01-02T02:00:00Z', signal_count: 7, event_types: ['account_probe', 'sim_recon'], stages: ['TESTING'], proxy_types: ['tor'], regions: ['US', 'ZZ'], max_confidence: 'medium', status: 'dormant' },
  ],
  total_count: 2,
  next_cursor: null,
};

// Counts the pixels that a chart drew on its canvas.
function paintedPixels(selector) {
  return page.$eval(selector, (canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
    return painted;
  });
}

async function getJson(path) {
  const res = await fetch(`${server.url}${path}`, { headers: { Authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

async function openStats() {
  await page.click('#nav button[data-view="live"]');
  await page.click('#nav button[data-view="stats"]');
  await waitFor(() => page.locator('#view-stats .trend-chart canvas').count(), 'trend canvas');
}

async function assertChartsDrawn() {
  assert.ok(Number(await page.getAttribute('#view-stats .trend-chart', 'data-sum')) > 0, 'trend has data');
  assert.ok(await paintedPixels('#view-stats .trend-chart canvas') > 500, 'trend drawn');
  for (const name of ['by-event-type', 'by-confidence', 'by-stage', 'by-proxy', 'by-region']) {
    const sel = `#view-stats .bar-chart[data-chart="${name}"]`;
    assert.ok(Number(await page.getAttribute(sel, 'data-sum')) > 0, `${name} has data`);
    assert.ok(await paintedPixels(`${sel} canvas`) > 200, `${name} drawn`);
  }
  assert.ok(await page.locator('#view-stats .top-domains tbody tr').count() > 0, 'top domains listed');
}

test('statistics charts are drawn with data', async (t) => {
  await ingestAll(Array.from({ length: 40 }, (_, i) => makeSignal(i)));
  const answer = await getJson('/v1/canary/stats?since_hours=24&bucket=hour');
  const real = answer.status !== 404;
  t.diagnostic(`stats endpoint: ${real ? 'real' : 'intercepted (404 on this canaryd)'}`);
  if (!real) {
    await page.route('**/v1/canary/stats?*', (route) => route.fulfill({
      status: 200, contentType: 'application/json', body: JSON.stringify(fakeStats(24)) }));
  }
  await openStats();
  await assertChartsDrawn();
  if (real) {
    // The charts show what the endpoint returns.
    assert.equal(answer.status, 200);
    const shown = Number((await page.textContent('[data-counter="total"]')).replace(/\D/g, ''));
    assert.ok(answer.body.total >= 40, `endpoint total ${answer.body.total}`);
    assert.ok(shown >= answer.body.total, `total shown ${shown} vs ${answer.body.total}`);
    const byType = Object.values(answer.body.by_event_type).reduce((a, b) => a + b, 0);
    assert.ok(Number(await page.getAttribute('#view-stats .bar-chart[data-chart="by-event-type"]', 'data-sum')) >= byType);
    const split = answer.body.trend.length && answer.body.trend[0].by_event_type;
    const perType = Number(await page.getAttribute('#view-stats .trend-chart', 'data-series')) > 1;
    if (!split) t.diagnostic(`trend split by event type: ${perType ? 'via event_type=' : 'not offered by the server, total only'}`);
    assert.equal(await page.isVisible('#view-stats .trend-note'), !perType, 'total-only note matches the chart');
  }
  await screenshot(page, 'stats');
  await page.unroute('**/v1/canary/stats?*');
});

test('trend has a line per event type', async () => {
  // A server that narrows the response to event_type=T.
  await page.route('**/v1/canary/stats?*', (route) => {
    const url = new URL(route.request().url());
    const body = fakeStats(Number(url.searchParams.get('since_hours')) || 24);
    const type = url.searchParams.get('event_type');
    if (type) {
      const share = body.by_event_type[type] / body.total;
      body.by_event_type = { [type]: body.by_event_type[type] };
      body.trend = body.trend.map((p, i) => ({ ...p, count: Math.round(p.count * share + (i % 3)) }));
    }
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });
  });
  await openStats();
  await assertChartsDrawn();
  assert.equal(await page.getAttribute('#view-stats .trend-chart', 'data-series'), '5', 'total and four event types');
  assert.equal(await page.isVisible('#view-stats .trend-note'), false);
  assert.equal(await page.textContent('[data-counter="sensors"]'), '3');
  await screenshot(page, 'stats-by-type');
  await page.selectOption('#lang', 'ja');
  assert.equal(await page.textContent('#view-stats .panel h2'), 'イベント種別ごとの推移');
  const legend = await page.$$eval('#view-stats .trend-chart .u-legend .u-label', (els) => els.map((e) => e.textContent));
  assert.ok(legend.includes('認証情報テスト'), `legend in Japanese: ${legend}`);
  await screenshot(page, 'stats-ja');
  await page.selectOption('#lang', 'en');
  await page.unroute('**/v1/canary/stats?*');
});

test('campaigns are listed', async (t) => {
  const answer = await getJson('/v1/canary/campaigns?limit=100');
  const real = answer.status !== 404;
  t.diagnostic(`campaigns endpoint: ${real ? 'real' : 'intercepted (404 on this canaryd)'}`);
  if (!real) {
    await page.route('**/v1/canary/campaigns?*', (route) =>
      route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(fakeCampaigns) }));
  }
  const want = real ? answer.body.campaigns : fakeCampaigns.campaigns;
  assert.ok(want.length > 0, 'there are campaigns to show');
  await page.click('#nav button[data-view="campaigns"]');
  await waitFor(async () => (await page.locator('#view-campaigns .campaigns-table tbody tr').count()) >= want.length, 'campaign rows');
  const ids = await page.$$eval('#view-campaigns .campaigns-table tbody tr', (rows) => rows.map((r) => r.dataset.id));
  assert.deepEqual(ids.slice(0, want.length), want.map((c) => c.id));
  const first = await page.$$eval('#view-campaigns .campaigns-table tbody tr:first-child td', (tds) => tds.map((td) => td.textContent));
  assert.match(first[0], /^camp_/);
  assert.equal(first[1], want[0].related_domain);
  assert.equal(first[2], want[0].status === 'active' ? 'Active' : 'Dormant');
  assert.equal(first[5], String(want[0].signal_count));
  await screenshot(page, 'campaigns');
  await page.unroute('**/v1/canary/campaigns?*');
});

test('missing endpoints show a not-available state', async () => {
  const notFound = (route) => route.fulfill({ status: 404, contentType: 'application/problem+json',
    body: JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, detail: 'no such endpoint' }) });
  await page.route('**/v1/canary/stats?*', notFound);
  await page.route('**/v1/canary/campaigns?*', notFound);
  await page.click('#nav button[data-view="stats"]');
  await waitFor(() => page.isVisible('#view-stats .stats-message.unavailable'), 'stats not available');
  assert.match(await page.textContent('#view-stats .stats-message'), /not available/);
  await page.click('#nav button[data-view="campaigns"]');
  await waitFor(() => page.isVisible('#view-campaigns .campaigns-message.unavailable'), 'campaigns not available');
  await page.unroute('**/v1/canary/stats?*');
  await page.unroute('**/v1/canary/campaigns?*');
  await page.click('#nav button[data-view="live"]');
});

test('live view stays bounded at 1,000 signals per second', async (t) => {
  await page.click('#filter-reset');
  await waitFor(() => page.evaluate(() => document.getElementById('status').dataset.status === 'live'), 'live');
  await page.evaluate(() => {
    window.__frames = [];
    let last = performance.now();
    const tick = (now) => { window.__frames.push(now - last); last = now; window.__raf = requestAnimationFrame(tick); };
    window.__raf = requestAnimationFrame(tick);
  });

  const receivedBefore = await page.evaluate(() => Number(document.getElementById('live-count').textContent.match(/([\d,]+) signals received/)[1].replace(/,/g, '')));
  const seconds = 3;
  let sent = 0;
  const start = Date.now();
  for (let tick = 0; tick < seconds * 20; tick++) {
    const batch = Array.from({ length: 50 }, (_, i) => makeSignal(sent + i));
    await ingestAll(batch);
    sent += batch.length;
    const due = start + (tick + 1) * 50;
    if (due > Date.now()) await sleep(due - Date.now());
  }

  await waitFor(async () => {
    const text = await page.textContent('#live-count');
    return Number(text.match(/([\d,]+) signals received/)[1].replace(/,/g, '')) >= receivedBefore + sent;
  }, 'all signals received', 20000);

  const frames = await page.evaluate(() => { cancelAnimationFrame(window.__raf); return window.__frames; });
  const rows = await page.locator('#live-rows > .row').count();
  assert.ok(rows <= 500, `rows in the DOM: ${rows}`);
  const seqs = await rowSeqs(page);
  assertNoDuplicates(seqs);
  const sorted = [...frames].sort((a, b) => a - b);
  t.diagnostic(`frames ${frames.length}, p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms, rows ${rows}`);
  assert.deepEqual(unexpectedProblems(page, ['Failed to load resource']), [], 'no console errors or CSP violations');
});
