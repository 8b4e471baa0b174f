// The live table. Signals and marks arrive in stream order and wait in a
// queue. An animation-frame callback turns the queue into rows, newest on
// top, at most every MIN_UPDATE_MS, and trims the table to MAX_ROWS. At
// 1,000 signals per second that is about 10 DOM updates a second of 100
// rows each, and the DOM never contains more than MAX_ROWS rows.

import { t, valueLabel, language } from './i18n.js';
import { formatTime, formatNumber } from './format.js';

export const MAX_ROWS = 500;
// Each update repaints the visible rows however many it adds, so under
// load fewer, larger updates keep frames short (measured with
// tests/console/measure_live.mjs).
const MIN_UPDATE_MS = 100;
const SNAPSHOT_EVERY_MS = 1000;

const CLOSE_REASONS = { 4008: 'close.slow', 1001: 'close.shutdown', 1006: 'close.network' };

let regionNames = null;
let regionNamesLang = null;

function regionTitle(code) {
  if (regionNamesLang !== language()) {
    regionNamesLang = language();
    try {
      regionNames = new Intl.DisplayNames([language()], { type: 'region' });
    } catch {
      regionNames = null;
    }
  }
  if (!regionNames || code === 'ZZ') return code;
  try {
    return regionNames.of(code) || code;
  } catch {
    return code;
  }
}

function cell(row, text, className, value) {
  const div = document.createElement('div');
  div.setAttribute('role', 'cell');
  div.textContent = text;
  if (className) div.className = className;
  if (value !== undefined) div.dataset.v = value;
  row.appendChild(div);
  return div;
}

function renderSignal(s) {
  const row = document.createElement('div');
  row.className = 'row sig';
  row.setAttribute('role', 'row');
  row.dataset.seq = String(s.seq);
  cell(row, formatTime(s.timestamp), 'time');
  cell(row, String(s.seq), 'num');
  cell(row, valueLabel(s.event_type), null, s.event_type);
  cell(row, valueLabel(s.confidence), `conf conf-${s.confidence}`, s.confidence);
  cell(row, valueLabel(s.threat_stage), s.threat_stage === 'ATTACK' ? 'stage-attack' : null, s.threat_stage);
  cell(row, valueLabel(s.proxy_type), null, s.proxy_type);
  cell(row, s.source_region, null, s.source_region).title = regionTitle(s.source_region);
  cell(row, s.related_domain, 'domain');
  cell(row, valueLabel(s.recommended_action), `act act-${s.recommended_action}`, s.recommended_action);
  return row;
}

export function closeReason(code) {
  const key = CLOSE_REASONS[code];
  return key ? t(key) : t('close.code', { code });
}

function markText(item) {
  const p = { ...item.params };
  if (p.time) p.time = formatTime(p.time);
  if ('code' in p) p.reason = closeReason(p.code);
  if (item.kind === 'gapOther') p.reason = String(item.params.reason);
  return t(`mark.${item.kind}`, p);
}

function renderMark(item) {
  const row = document.createElement('div');
  row.className = `row mark mark-${item.kind}`;
  row.setAttribute('role', 'row');
  cell(row, markText(item));
  return row;
}

function renderItem(item) {
  return item.type === 'signal' ? renderSignal(item.signal) : renderMark(item);
}

export class LiveView {
  // tbody: the element that contains the rows; info: {count, pending, empty} elements;
  // position(): the stream's {epoch, cursor}, saved with the rows.
  constructor(tbody, info, position) {
    this.tbody = tbody;
    this.info = info;
    this.position = position;
    this.rows = [];       // rendered items, newest first
    this.pending = [];    // items not yet rendered, oldest first
    this.received = 0;
    this.pendingSignals = 0;
    this.paused = false;
    this.frame = 0;
    this.lastFlush = 0;
    this.dirty = false;
    this.saveTimer = 0;
    this.save = null;
  }

  // Calls save(snapshot) at most once a second while something changed.
  autosave(save) {
    this.save = save;
    this.saveTimer = setInterval(() => this.saveNow(false), SNAPSHOT_EVERY_MS);
  }

  saveNow(force) {
    if (!this.save || (!this.dirty && !force)) return;
    this.dirty = false;
    this.save(this.snapshot());
  }

  // Everything received so far, rendered or queued, newest first.
  snapshot() {
    const queued = this.pending.slice(-MAX_ROWS).reverse();
    const rows = queued.concat(this.rows).slice(0, MAX_ROWS);
    return { v: 1, ...this.position(), received: this.received, rows };
  }

  restore(snap) {
    if (!snap || snap.v !== 1 || !Array.isArray(snap.rows)) return false;
    this.rows = snap.rows.slice(0, MAX_ROWS);
    this.received = Number(snap.received) || 0;
    this.rerender();
    return true;
  }

  push(items) {
    for (const item of items) {
      this.pending.push(item);
      if (item.type === 'signal') {
        this.received += 1;
        if (this.paused) this.pendingSignals += 1;
      }
    }
    // A hidden tab gets no animation frames: keep only what could be shown.
    if (this.pending.length > 2 * MAX_ROWS) {
      this.pending.splice(0, this.pending.length - MAX_ROWS);
    }
    this.dirty = true;
    this.schedule();
  }

  schedule() {
    if (!this.frame && !this.paused) {
      this.frame = requestAnimationFrame(() => this.flush());
    }
    if (this.paused) this.updateInfo();
  }

  flush() {
    this.frame = 0;
    if (this.paused || !this.pending.length) return;
    const now = performance.now();
    if (now - this.lastFlush < MIN_UPDATE_MS) {
      this.frame = requestAnimationFrame(() => this.flush());
      return;
    }
    this.lastFlush = now;
    const batch = this.pending.length > MAX_ROWS
      ? this.pending.slice(-MAX_ROWS) : this.pending;
    this.pending = [];

    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) {
      fragment.appendChild(renderItem(batch[i]));
    }
    this.tbody.prepend(fragment);
    this.rows = batch.reverse().concat(this.rows);
    if (this.rows.length > MAX_ROWS) this.rows.length = MAX_ROWS;
    while (this.tbody.childElementCount > MAX_ROWS) {
      this.tbody.lastElementChild.remove();
    }
    this.updateInfo();
  }

  setPaused(paused) {
    this.paused = paused;
    this.pendingSignals = 0;
    if (!paused) this.schedule();
    this.updateInfo();
  }

  // Empties the table, for a new filter or a replay.
  clear() {
    this.rows = [];
    this.pending = [];
    this.received = 0;
    this.pendingSignals = 0;
    this.tbody.replaceChildren();
    this.dirty = true;
    this.updateInfo();
  }

  // Draws every row again, after a language change.
  rerender() {
    const fragment = document.createDocumentFragment();
    for (const item of this.rows) fragment.appendChild(renderItem(item));
    this.tbody.replaceChildren(fragment);
    this.updateInfo();
  }

  updateInfo() {
    const shown = this.tbody.childElementCount;
    this.info.count.textContent = t('live.count', {
      shown: formatNumber(shown), max: formatNumber(MAX_ROWS),
      received: formatNumber(this.received),
    });
    this.info.pending.hidden = !this.paused || this.pendingSignals === 0;
    this.info.pending.textContent = t('live.pending', { n: formatNumber(this.pendingSignals) });
    this.info.empty.hidden = shown > 0;
  }

  destroy() {
    clearInterval(this.saveTimer);
    if (this.frame) cancelAnimationFrame(this.frame);
    this.save = null;
  }
}
