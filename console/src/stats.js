// The statistics view: counters, the trend by event type, and the
// breakdowns of GET /v1/canary/stats, drawn with uPlot and refreshed on a
// timer while the view is open.

import uPlot from 'uplot';
import { t, valueLabel, language } from './i18n.js';
import { formatTime, formatNumber } from './format.js';
import { apiGet, ApiError } from './api.js';
import { EVENT_TYPES, CONFIDENCES, STAGES, PROXY_TYPES } from './filters.js';

export const STATS_REFRESH_S = 30;

const WINDOWS = {
  1: { bucket: 'minute', step: 60 },
  24: { bucket: 'hour', step: 3600 },
  168: { bucket: 'hour', step: 3600 },
};

const COLORS = {
  total: '#5b6573',
  credential_testing: '#d9480f',
  account_probe: '#1c7ed6',
  sim_recon: '#7048e8',
  fraud_test: '#2b8a3e',
};
const BAR_COLOR = '#e8590c';

// Counts of a "by_*" object in a fixed order, keeping only values present.
function ordered(group, order) {
  const keys = order ? order.filter((k) => k in group) : Object.keys(group);
  return keys.map((k) => [k, Number(group[k]) || 0]);
}

function topEntries(group, n) {
  return Object.entries(group || {})
    .map(([k, v]) => [k, Number(v) || 0])
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, n);
}

function bucketSeconds(bucket) {
  const ms = Date.parse(bucket);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

// Every bucket of the window, so that quiet periods show as zero.
function timeGrid(hours, step, series) {
  const now = Math.floor(Date.now() / 1000);
  const end = Math.floor(now / step) * step;
  const start = end - hours * 3600 + step;
  const times = new Set();
  for (let x = start; x <= end; x += step) times.add(x);
  for (const trend of series) {
    for (const p of trend) {
      const x = bucketSeconds(p.bucket);
      if (x !== null) times.add(x);
    }
  }
  return [...times].sort((a, b) => a - b);
}

function trendValues(grid, trend) {
  const byTime = new Map();
  for (const p of trend || []) {
    const x = bucketSeconds(p.bucket);
    if (x !== null) byTime.set(x, (byTime.get(x) || 0) + (Number(p.count) || 0));
  }
  return grid.map((x) => byTime.get(x) || 0);
}

function chartWidth(el) {
  return Math.max(240, Math.floor(el.clientWidth || el.parentElement?.clientWidth || 600));
}

export class StatsView {
  // root: the view's element; key(): the API key; onAuthFailed(status).
  constructor(root, key, onAuthFailed) {
    this.root = root;
    this.key = key;
    this.onAuthFailed = onAuthFailed;
    this.hours = 24;
    this.timer = 0;
    this.charts = [];
    this.last = null;        // {base, perType, at} of the last response
    this.loading = false;
  }

  show() {
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), STATS_REFRESH_S * 1000);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  setWindow(hours) {
    this.hours = Number(hours) in WINDOWS ? Number(hours) : 24;
    this.refresh();
  }

  query(extra) {
    const w = WINDOWS[this.hours];
    return `/v1/canary/stats?since_hours=${this.hours}&bucket=${w.bucket}${extra || ''}`;
  }

  async refresh() {
    if (this.loading) return;
    this.loading = true;
    try {
      const base = await apiGet(this.query(), this.key());
      const perType = await this.trendByType(base);
      this.last = { base, perType, at: new Date() };
      this.setMessage(null);
      this.render();
    } catch (err) {
      this.failed(err);
    } finally {
      this.loading = false;
    }
  }

  failed(err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.status === 401 || err.status === 403) {
      this.onAuthFailed(err.status);
    } else if (err.status === 404) {
      this.last = null;
      this.destroyCharts();
      this.root.querySelector('.stats-body').hidden = true;
      this.setMessage(t('stats.unavailable'), 'unavailable');
    } else if (err.status === 0) {
      this.setMessage(t('error.network'), 'error');
    } else {
      this.setMessage(t('error.http', { status: err.status, detail: err.detail }), 'error');
    }
  }

  // The per-event-type trend: taken from the trend points when they carry
  // by_event_type, else asked for with one event_type-narrowed request per
  // type. A response whose by_event_type contains other types shows that
  // the server ignored the narrowing, and the chart then shows the total only.
  async trendByType(base) {
    const trend = base.trend || [];
    if (trend.length && trend[0].by_event_type) {
      const perType = {};
      for (const type of EVENT_TYPES) {
        perType[type] = trend.map((p) => ({ bucket: p.bucket, count: p.by_event_type[type] || 0 }));
      }
      return perType;
    }
    const types = EVENT_TYPES.filter((type) => (base.by_event_type || {})[type] > 0);
    try {
      const answers = await Promise.all(types.map((type) =>
        apiGet(this.query(`&event_type=${type}`), this.key())));
      const perType = {};
      for (let i = 0; i < types.length; i++) {
        const seen = Object.keys(answers[i].by_event_type || {});
        if (seen.some((k) => k !== types[i])) return null;
        perType[types[i]] = answers[i].trend || [];
      }
      return perType;
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) return null;
      throw err;
    }
  }

  setMessage(text, kind) {
    const el = this.root.querySelector('.stats-message');
    el.hidden = !text;
    el.textContent = text || '';
    el.className = `stats-message notice ${kind || ''}`;
  }

  destroyCharts() {
    for (const c of this.charts) c.destroy();
    this.charts = [];
  }

  // Draws the last response again (after a resize or a language change).
  render() {
    if (!this.last || this.root.hidden) return;
    const { base, perType, at } = this.last;
    this.destroyCharts();
    this.root.querySelector('.stats-body').hidden = false;

    const net = base.network || {};
    this.setCounter('total', base.total);
    this.setCounter('sensors', net.sensors_active);
    this.setCounter('subscribers', net.subscribers_connected);
    this.root.querySelector('.stats-updated').textContent =
      t('stats.updated', { time: formatTime(at), s: STATS_REFRESH_S });
    this.root.querySelector('.stats-empty').hidden = Number(base.total) > 0;
    this.root.querySelector('.trend-note').hidden = perType !== null;

    this.drawTrend(base, perType);
    this.drawBars('by-event-type', ordered(base.by_event_type || {}, EVENT_TYPES), true);
    this.drawBars('by-confidence', ordered(base.by_confidence || {}, CONFIDENCES), true);
    this.drawBars('by-stage', ordered(base.by_stage || {}, STAGES), true);
    this.drawBars('by-proxy', ordered(base.by_proxy_type || {}, PROXY_TYPES), true);
    this.drawBars('by-region', topEntries(base.by_region, 10), false);
    this.drawTopDomains(base.top_domains || []);
  }

  setCounter(name, value) {
    const el = this.root.querySelector(`[data-counter="${name}"]`);
    el.textContent = Number.isFinite(Number(value)) && value !== undefined
      ? formatNumber(Number(value)) : '–';
  }

  drawTrend(base, perType) {
    const el = this.root.querySelector('.trend-chart');
    const w = WINDOWS[this.hours];
    const types = perType ? EVENT_TYPES.filter((type) => perType[type]) : [];
    const grid = timeGrid(this.hours, w.step, [base.trend || [], ...types.map((type) => perType[type])]);

    const data = [grid, trendValues(grid, base.trend)];
    const series = [
      { label: t('stats.time'), value: (u, x) => (x === null ? '–' : formatTime(new Date(x * 1000))) },
      { label: t('stats.total.series'), stroke: COLORS.total, width: 2, dash: [6, 4] },
    ];
    for (const type of types) {
      data.push(trendValues(grid, perType[type]));
      series.push({ label: valueLabel(type), stroke: COLORS[type], width: 2 });
    }

    const lang = language() === 'ja' ? 'ja-JP' : 'en-GB';
    const tick = new Intl.DateTimeFormat(lang, this.hours > 24
      ? { month: 'numeric', day: 'numeric', hour: '2-digit', hourCycle: 'h23' }
      : { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    const opts = {
      width: chartWidth(el),
      height: 260,
      series,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
      axes: [
        { values: (u, splits) => splits.map((x) => tick.format(new Date(x * 1000))) },
        { size: 56 },
      ],
    };

    el.replaceChildren();
    this.charts.push(new uPlot(opts, data, el));
    el.dataset.points = String(grid.length);
    el.dataset.sum = String(data[1].reduce((a, b) => a + b, 0));
    el.dataset.series = String(series.length - 1);
  }

  drawBars(name, entries, translate) {
    const el = this.root.querySelector(`.bar-chart[data-chart="${name}"]`);
    const labels = entries.map(([k]) => (translate ? valueLabel(k) : k));
    const values = entries.map(([, v]) => v);
    const xs = labels.map((_, i) => i);

    // Labels wider than their slot are slanted so that neighbours do not
    // overlap. The width is an estimate: about 7 px a Latin character and
    // 13 px a CJK one at the axis font size.
    const width = chartWidth(el);
    const slot = (width - 70) / Math.max(1, labels.length);
    const labelWidth = (l) => [...l].reduce((w, ch) => w + (ch.charCodeAt(0) > 0x2e7f ? 13 : 7), 0);
    const slant = labels.some((l) => labelWidth(l) > slot * 0.9);
    const opts = {
      width,
      height: 200,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: false, range: [-0.5, Math.max(0.5, labels.length - 0.5)] },
        y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] },
      },
      axes: [
        {
          splits: () => xs,
          values: (u, splits) => splits.map((i) => labels[i] ?? ''),
          grid: { show: false },
          rotate: slant ? -20 : 0,
          size: slant ? 64 : 40,
        },
        { size: 56 },
      ],
      series: [
        {},
        { label: t('stats.count'), fill: BAR_COLOR, stroke: BAR_COLOR, paths: uPlot.paths.bars({ size: [0.6, 64] }), points: { show: false } },
      ],
    };

    el.replaceChildren();
    this.charts.push(new uPlot(opts, [xs, values], el));
    el.dataset.sum = String(values.reduce((a, b) => a + b, 0));
    el.dataset.labels = entries.map(([k]) => k).join(',');
  }

  drawTopDomains(top) {
    const body = this.root.querySelector('.top-domains tbody');
    const max = Math.max(1, ...top.map((d) => Number(d.count) || 0));
    const rows = top.slice(0, 10).map((d) => {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      name.textContent = d.domain;
      name.className = 'domain';
      const count = document.createElement('td');
      count.textContent = formatNumber(Number(d.count) || 0);
      count.className = 'num';
      const barCell = document.createElement('td');
      const bar = document.createElement('div');
      bar.className = 'hbar';
      bar.style.width = `${Math.round((100 * (Number(d.count) || 0)) / max)}%`;
      barCell.appendChild(bar);
      tr.append(name, count, barCell);
      return tr;
    });
    body.replaceChildren(...rows);
  }
}
