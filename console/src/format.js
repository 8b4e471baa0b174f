// Dates in the viewer's time zone, always with the UTC offset, because an
// analyst compares times with colleagues and logs in other zones.

import { language } from './i18n.js';

const formatters = new Map();

function formatter(lang) {
  let f = formatters.get(lang);
  if (!f) {
    f = new Intl.DateTimeFormat(lang === 'ja' ? 'ja-JP' : 'en-GB', {
      year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
      hourCycle: 'h23', timeZoneName: 'shortOffset',
    });
    formatters.set(lang, f);
  }
  return f;
}

// "2026-01-03 13:04:05 GMT+9" (English) or "2026/01/03 13:04:05 GMT+9"
// (Japanese) for an RFC 3339 string or a Date: year first in both, so
// that no reader confuses day and month.
export function formatTime(value) {
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const parts = {};
  for (const p of formatter(language()).formatToParts(d)) parts[p.type] = p.value;
  const sep = language() === 'ja' ? '/' : '-';
  return `${parts.year}${sep}${parts.month}${sep}${parts.day} ` +
    `${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}

// The viewer's offset as "+09:00", for the header line.
export function offsetText(date = new Date()) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${sign}${hh}:${mm}`;
}

export function timeZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
}

// The value of an <input type="datetime-local"> for a Date, in local time.
export function toLocalInputValue(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// RFC 3339 in UTC, whole seconds, as the stream's since_time expects.
export function toRfc3339(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function formatNumber(n) {
  return new Intl.NumberFormat(language() === 'ja' ? 'ja-JP' : 'en-US').format(n);
}
