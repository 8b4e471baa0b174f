// The campaigns view: GET /v1/canary/campaigns as a table, refreshed on a
// timer while the view is open, with "Load more" for the next pages.

import { t, valueLabel } from './i18n.js';
import { formatTime, formatNumber } from './format.js';
import { apiGet, ApiError } from './api.js';

export const CAMPAIGNS_REFRESH_S = 30;
const PAGE = 100;

function cell(tr, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  tr.appendChild(td);
}

function list(values, translate) {
  return (Array.isArray(values) ? values : [])
    .map((v) => (translate ? valueLabel(v) : String(v))).join(', ');
}

function renderCampaign(c) {
  const tr = document.createElement('tr');
  tr.dataset.id = String(c.id);
  cell(tr, String(c.id), 'mono');
  cell(tr, String(c.related_domain ?? ''), 'domain');
  cell(tr, t(`status.${c.status === 'active' ? 'active' : 'dormant'}`), `camp-${c.status}`);
  cell(tr, c.first_seen ? formatTime(c.first_seen) : '', 'time');
  cell(tr, c.last_seen ? formatTime(c.last_seen) : '', 'time');
  cell(tr, formatNumber(Number(c.signal_count) || 0), 'num');
  cell(tr, list(c.event_types, true), 'list');
  cell(tr, list(c.stages, true), 'list');
  cell(tr, list(c.proxy_types, true), 'list');
  cell(tr, list(c.regions, false), 'list');
  cell(tr, c.max_confidence ? valueLabel(c.max_confidence) : '', `conf conf-${c.max_confidence}`);
  return tr;
}

export class CampaignsView {
  constructor(root, key, onAuthFailed) {
    this.root = root;
    this.key = key;
    this.onAuthFailed = onAuthFailed;
    this.timer = 0;
    this.campaigns = [];
    this.total = 0;
    this.next = null;
    this.loading = false;
  }

  show() {
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), CAMPAIGNS_REFRESH_S * 1000);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  // Reloads the first page; pages loaded with "Load more" are dropped.
  async refresh() {
    await this.load(`/v1/canary/campaigns?limit=${PAGE}`, false);
  }

  async more() {
    if (this.next) {
      await this.load(`/v1/canary/campaigns?limit=${PAGE}&cursor=${encodeURIComponent(this.next)}`, true);
    }
  }

  async load(path, append) {
    if (this.loading) return;
    this.loading = true;
    try {
      const body = await apiGet(path, this.key());
      const page = Array.isArray(body.campaigns) ? body.campaigns : [];
      this.campaigns = append ? this.campaigns.concat(page) : page;
      this.total = Number(body.total_count) || this.campaigns.length;
      this.next = typeof body.next_cursor === 'string' && body.next_cursor ? body.next_cursor : null;
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
      this.campaigns = [];
      this.root.querySelector('.campaigns-body').hidden = true;
      this.setMessage(t('campaigns.unavailable'), 'unavailable');
    } else if (err.status === 0) {
      this.setMessage(t('error.network'), 'error');
    } else {
      this.setMessage(t('error.http', { status: err.status, detail: err.detail }), 'error');
    }
  }

  setMessage(text, kind) {
    const el = this.root.querySelector('.campaigns-message');
    el.hidden = !text;
    el.textContent = text || '';
    el.className = `campaigns-message notice ${kind || ''}`;
  }

  render() {
    this.root.querySelector('.campaigns-body').hidden = false;
    this.root.querySelector('.campaigns-table tbody')
      .replaceChildren(...this.campaigns.map(renderCampaign));
    this.root.querySelector('.campaigns-empty').hidden = this.campaigns.length > 0;
    this.root.querySelector('.campaigns-count').textContent = t('campaigns.count', {
      shown: formatNumber(this.campaigns.length), total: formatNumber(this.total),
    });
    this.root.querySelector('.campaigns-more').hidden = !this.next;
  }
}
