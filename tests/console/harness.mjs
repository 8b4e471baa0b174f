// Helpers for the console's browser tests: a real canaryd on a free
// loopback port with its own LMDB directory, keys from `canaryd keys
// create`, ingest over HTTP, and Debian's Chromium driven by
// playwright-core (never a browser that Playwright downloads).

import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = resolve(process.env.CANARY_SOURCE_DIR || join(here, '..', '..'));
export const BIN_DIR = resolve(process.env.CANARY_BIN_DIR || join(SOURCE_DIR, 'build'));
export const CANARYD = join(BIN_DIR, 'server', 'canaryd');
export const CONSOLE_DIR = join(SOURCE_DIR, 'console', 'dist');
export const CHROMIUM = process.env.CANARY_CHROMIUM || '/usr/bin/chromium';
// Screenshots of each view go here when set (for a person to look at).
export const SCREENSHOT_DIR = process.env.CANARY_SCREENSHOT_DIR || '';

const SANITIZER_MARKERS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'];

// playwright-core is a dependency of console/, installed by `npm ci` there.
const requireFromConsole = createRequire(join(SOURCE_DIR, 'console', 'package.json'));

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn until it returns a truthy value; fails with message after ms.
export async function waitFor(fn, message, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${message}`);
    await sleep(50);
  }
}

// Servers started and not yet stopped. A test run that ends abruptly must
// not leave them behind: playwright-core calls process.exit on a Node.js
// it does not support, and `after` hooks then do not run.
const running = new Set();
process.on('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

export class Canaryd {
  constructor({ dataDir, port, settings } = {}) {
    this.tmp = mkdtempSync(join(tmpdir(), 'canary-console-'));
    this.dataDir = dataDir || join(this.tmp, 'var');
    this.port = port || 0;
    this.settings = { console_dir: CONSOLE_DIR, ...(settings || {}) };
    this.logPath = join(this.tmp, 'canaryd.log');
    this.proc = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  key(scopes = 'ingest,subscribe,read') {
    const out = execFileSync(CANARYD, ['keys', 'create', '--data-dir', this.dataDir,
      '--scopes', scopes, '--name', 'console-test'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim();
  }

  async start() {
    if (!existsSync(CANARYD)) throw new Error(`canaryd not found at ${CANARYD}: build it and set CANARY_BIN_DIR`);
    if (!this.port) this.port = await freePort();
    const args = ['--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir];
    for (const [k, v] of Object.entries(this.settings)) args.push('--set', `${k}=${v}`);
    const log = openSync(this.logPath, 'a');
    this.proc = spawn(CANARYD, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    running.add(this.proc);
    this.proc.once('exit', () => running.delete(this.proc));
    this.exited = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error(`canaryd exited at start:\n${this.log()}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        return res.status === 200;
      } catch {
        return false;
      }
    }, 'canaryd to answer /healthz', 20000);
    return this;
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  // Stops with SIGTERM and checks the exit status and the sanitizer output.
  async stop() {
    if (!this.proc) return;
    this.proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((r) => { timer = setTimeout(() => r({ code: 'timeout' }), 30000); });
    const { code } = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (code === 'timeout') this.proc.kill('SIGKILL');
    this.proc = null;
    const log = this.log();
    for (const m of SANITIZER_MARKERS) {
      if (log.includes(m)) throw new Error(`sanitizer report in canaryd log:\n${log.slice(-6000)}`);
    }
    if (code !== 0) throw new Error(`canaryd exited with ${code} after SIGTERM:\n${log.slice(-4000)}`);
  }

  cleanup() {
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

// Posts signals as one JSON batch. Returns the 202 body; throws otherwise.
export async function ingest(server, key, signals) {
  const res = await fetch(`${server.url}/v1/canary/signals`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
    body: JSON.stringify(signals),
  });
  const body = await res.json();
  if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

const pick = (list, i) => list[i % list.length];

// A valid signal whose fields vary with i; overrides replace fields.
export function makeSignal(i, overrides = {}) {
  return {
    event_type: pick(['credential_testing', 'account_probe', 'sim_recon', 'fraud_test'], i),
    confidence: pick(['low', 'medium', 'high'], i),
    source_region: pick(['JP', 'US', 'DE', 'BR', 'ZZ'], i),
    proxy_type: pick(['datacenter', 'residential', 'mobile', 'tor'], i),
    threat_stage: pick(['TESTING', 'ATTACK'], i),
    related_domain: pick(['bank.example', 'login.bank.example', 'shop.example'], i),
    timestamp: new Date(Date.now() - 1000 * (i % 600)).toISOString().replace(/\.\d+Z$/, 'Z'),
    recommended_action: pick(['monitor', 'step_up', 'block', 'alert_soc'], i),
    ...overrides,
  };
}

// Debian's Chromium, headless, in a fresh profile that Playwright creates
// and deletes. No network beyond loopback is used by the pages under test;
// the flags turn off Chromium's own background traffic.
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium package (scripts/test.sh does)`);
  }
  const { chromium } = requireFromConsole('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A page that records console errors and uncaught exceptions, so that a
// test can assert that the console ran clean (no CSP violation either).
export async function newPage(browser, { locale = 'en-US', timezoneId = 'Asia/Tokyo' } = {}) {
  const context = await browser.newContext({ locale, timezoneId, viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(msg.text());
  });
  page.on('pageerror', (err) => page.problems.push(String(err)));
  return page;
}

// Console errors other than failed loads that a test provoked on purpose.
export function unexpectedProblems(page, allowed = []) {
  return page.problems.filter((p) => !allowed.some((a) => p.includes(a)));
}

export async function screenshot(page, name) {
  if (SCREENSHOT_DIR) await page.screenshot({ path: join(SCREENSHOT_DIR, `console-${name}.png`), fullPage: false });
}

export async function signIn(page, server, key) {
  await page.goto(`${server.url}/`);
  await page.fill('#key', key);
  await page.click('#signin-form button[type="submit"]');
  await waitFor(() => page.evaluate(() => document.getElementById('status').dataset.status === 'live'),
    'stream status live after sign-in');
}

// The seq of every signal row in the live table, top to bottom.
export function rowSeqs(page) {
  return page.$$eval('#live-rows > .sig', (rows) => rows.map((r) => Number(r.dataset.seq)));
}
