// Measures the live view under load. It ingests RATE signals per second
// for SECONDS seconds (batches of RATE/20 every 50 ms) into a real canaryd
// while a signed-in console tab shows every signal. It then reports the
// page's frame times (requestAnimationFrame deltas), long tasks, rows in
// the DOM and signals received.
//
//   CANARY_BIN_DIR=build node tests/console/measure_live.mjs [SECONDS] [RATE]
//
// Defaults: 20 s at 1,000 signals per second. Not part of ctest; the test
// suite runs a 3-second version.

import {
  Canaryd, launchBrowser, newPage, ingest, makeSignal, signIn, waitFor, sleep,
  screenshot,
} from './harness.mjs';

const seconds = Number(process.argv[2] || 20);
const rate = Number(process.argv[3] || 1000);
const ticksPerSecond = 20;
const batchSize = Math.max(1, Math.round(rate / ticksPerSecond));

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function receivedCount(page) {
  const text = await page.textContent('#live-count');
  return Number(text.match(/([\d,]+) signals received/)[1].replace(/,/g, ''));
}

const server = await new Canaryd().start();
const browser = await launchBrowser();
let failed = false;
try {
  const key = server.key();
  const page = await newPage(browser);
  await signIn(page, server, key);
  await page.evaluate(() => {
    window.__frames = [];
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push(e.duration);
    }).observe({ type: 'longtask' });
    let last = performance.now();
    const tick = (now) => {
      window.__frames.push(now - last);
      last = now;
      window.__raf = requestAnimationFrame(tick);
    };
    window.__raf = requestAnimationFrame(tick);
  });

  // Chromium's own counters split the main thread's busy time into
  // script, style, layout and the rest.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => Object.fromEntries(
    (await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const before = await metrics();

  let sent = 0;
  let maxRows = 0;
  const start = Date.now();
  for (let tick = 0; tick < seconds * ticksPerSecond; tick++) {
    const batch = Array.from({ length: batchSize }, (_, i) => makeSignal(sent + i));
    await ingest(server, key, batch);
    sent += batch.length;
    if (tick % ticksPerSecond === 0) {
      maxRows = Math.max(maxRows, await page.locator('#live-rows > .row').count());
    }
    const due = start + ((tick + 1) * 1000) / ticksPerSecond;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  const ingestSeconds = (Date.now() - start) / 1000;
  await waitFor(async () => (await receivedCount(page)) >= sent, 'every signal received', 30000);
  await sleep(200);

  const { frames, longTasks } = await page.evaluate(() => {
    cancelAnimationFrame(window.__raf);
    return { frames: window.__frames, longTasks: window.__longTasks };
  });
  const after = await metrics();
  const busy = (name) => Number(((after[name] - before[name]) / ingestSeconds * 100).toFixed(1));
  const rows = await page.locator('#live-rows > .row').count();
  const received = await receivedCount(page);
  const sorted = [...frames].sort((a, b) => a - b);
  await screenshot(page, 'load');

  const report = {
    signals_sent: sent,
    ingest_seconds: Number(ingestSeconds.toFixed(1)),
    rate_per_s: Math.round(sent / ingestSeconds),
    signals_received: received,
    rows_in_dom_end: rows,
    rows_in_dom_max_sampled: Math.max(maxRows, rows),
    frames: frames.length,
    frame_ms_p50: Number(percentile(sorted, 50).toFixed(1)),
    frame_ms_p99: Number(percentile(sorted, 99).toFixed(1)),
    frame_ms_max: Number(sorted[sorted.length - 1].toFixed(1)),
    frames_over_50ms: frames.filter((f) => f > 50).length,
    long_tasks: longTasks.length,
    long_task_ms_max: longTasks.length ? Number(Math.max(...longTasks).toFixed(1)) : 0,
    main_thread_busy_pct: busy('TaskDuration'),
    script_pct: busy('ScriptDuration'),
    style_pct: busy('RecalcStyleDuration'),
    layout_pct: busy('LayoutDuration'),
  };
  console.log(JSON.stringify(report, null, 2));
  failed = received !== sent || rows > 500;
} finally {
  await browser.close();
  await server.stop();
  server.cleanup();
}
process.exit(failed ? 1 : 0);
