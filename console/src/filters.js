// The filter form and the stream filter it stands for. Every filled field
// must match (AND); values within one field are alternatives (OR); an
// empty field is left out and matches everything, because the stream
// rejects an empty list.

import { t, valueLabel } from './i18n.js';

export const EVENT_TYPES = ['credential_testing', 'account_probe', 'sim_recon', 'fraud_test'];
export const CONFIDENCES = ['low', 'medium', 'high'];
export const STAGES = ['TESTING', 'ATTACK'];
export const PROXY_TYPES = ['datacenter', 'residential', 'mobile', 'tor'];

const LIST_FIELDS = { event_types: 'event_type', stages: 'stage', proxy_types: 'proxy_type' };

function splitList(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

function checked(form, name) {
  return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((el) => el.value);
}

// Reads the form. Returns {filter} or {error} with a translated message.
export function readFilterForm(form) {
  const filter = {};
  const domains = splitList(form.elements.domains.value).map((d) => d.toLowerCase());
  if (domains.length) filter.domains = domains;

  const regions = splitList(form.elements.regions.value).map((r) => r.toUpperCase());
  for (const r of regions) {
    if (!/^[A-Z]{2}$/.test(r)) return { error: t('filters.invalidRegion', { value: r }) };
  }
  if (regions.length) filter.regions = regions;

  for (const field of Object.keys(LIST_FIELDS)) {
    const values = checked(form, LIST_FIELDS[field]);
    if (values.length) filter[field] = values;
  }
  const min = form.elements.min_confidence.value;
  if (min) filter.min_confidence = min;
  if (form.elements.threat_only.checked) filter.threat_only = true;
  return { filter };
}

export function writeFilterForm(form, filter) {
  form.elements.domains.value = (filter.domains || []).join(', ');
  form.elements.regions.value = (filter.regions || []).join(', ');
  for (const field of Object.keys(LIST_FIELDS)) {
    const values = new Set(filter[field] || []);
    for (const el of form.querySelectorAll(`input[name="${LIST_FIELDS[field]}"]`)) {
      el.checked = values.has(el.value);
    }
  }
  form.elements.min_confidence.value = filter.min_confidence || '';
  form.elements.threat_only.checked = filter.threat_only === true;
}

// A one-line summary of a filter in the current language.
export function describeFilter(filter) {
  const parts = [];
  if (filter.domains) parts.push(`${t('filters.domains')}: ${filter.domains.join(', ')}`);
  if (filter.min_confidence) parts.push(`${t('filters.minConfidence')}: ${valueLabel(filter.min_confidence)}`);
  if (filter.stages) parts.push(`${t('filters.stages')}: ${filter.stages.map(valueLabel).join(', ')}`);
  if (filter.event_types) parts.push(`${t('filters.eventTypes')}: ${filter.event_types.map(valueLabel).join(', ')}`);
  if (filter.proxy_types) parts.push(`${t('filters.proxyTypes')}: ${filter.proxy_types.map(valueLabel).join(', ')}`);
  if (filter.regions) parts.push(`${t('filters.regions')}: ${filter.regions.join(', ')}`);
  if (filter.threat_only) parts.push(t('filters.threatOnly'));
  return t('filters.active', { f: parts.length ? parts.join(' · ') : t('filters.none') });
}
