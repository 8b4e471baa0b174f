// The console's entry point: sign-in, the three views, the language switch.

import { initialLanguage, setLanguage, language, t } from './i18n.js';
import { offsetText, timeZoneName, toLocalInputValue, toRfc3339 } from './format.js';
import { session } from './session.js';
import { StreamClient } from './stream.js';
import { LiveView } from './live.js';
import { readFilterForm, writeFilterForm, describeFilter } from './filters.js';
import { StatsView } from './stats.js';
import { CampaignsView } from './campaigns.js';

const $ = (id) => document.getElementById(id);

const state = {
  stream: null,
  live: null,
  stats: null,
  campaigns: null,
  view: 'live',
  filter: {},
};

function streamUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/v1/canary/stream`;
}

function showError(el, text) {
  el.hidden = !text;
  el.textContent = text || '';
}

function renderTimeZone() {
  $('tz').textContent = t('app.tz', { tz: timeZoneName(), offset: offsetText() });
}

function setStatus(status, seconds) {
  const el = $('status');
  el.hidden = false;
  el.dataset.status = status;
  el.textContent = t(`status.${status}`, { s: seconds });
}

// ---- sign-in ----

function showSignIn(message) {
  $('signin').hidden = false;
  $('nav').hidden = true;
  $('signout').hidden = true;
  $('status').hidden = true;
  for (const v of ['live', 'stats', 'campaigns']) $(`view-${v}`).hidden = true;
  showError($('signin-error'), message);
  $('key').value = '';
  $('key').focus();
}

function signOut(message) {
  if (state.stream) state.stream.stop();
  if (state.live) state.live.destroy();
  if (state.stats) state.stats.hide();
  if (state.campaigns) state.campaigns.hide();
  state.stream = null;
  state.live = null;
  session.clear();
  showSignIn(message);
}

function authFailed() {
  signOut(t('signin.rejected'));
}

// ---- the live view ----

function onItems(items) {
  state.live.push(items);
}

function onStreamError(kind, message) {
  showError($('stream-error'), t(kind === 'filter' ? 'error.filter' : 'error.server', { message }));
}

function startSession(key) {
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('signout').hidden = false;
  showError($('stream-error'), null);

  state.filter = session.filter();
  writeFilterForm($('filter-form'), state.filter);
  $('live-filter').textContent = describeFilter(state.filter);

  const stream = new StreamClient(streamUrl(), key, {
    onItems,
    onStatus: setStatus,
    onAuthFailed: authFailed,
    onError: onStreamError,
  });
  const live = new LiveView($('live-rows'), {
    count: $('live-count'), pending: $('live-pending'), empty: $('live-empty'),
  }, () => stream.position());
  state.stream = stream;
  state.live = live;

  const snap = session.snapshot();
  if (live.restore(snap)) {
    stream.restore(snap);
    if (stream.cursor !== null) {
      live.push([{ type: 'mark', kind: 'restored', params: { seq: stream.cursor } }]);
    }
  }
  live.updateInfo();
  live.autosave((s) => session.setSnapshot(s));
  stream.start(state.filter);
  showView(state.view);
}

function applyFilter(ev) {
  ev.preventDefault();
  const { filter, error } = readFilterForm($('filter-form'));
  showError($('filter-error'), error);
  if (error) return;
  showError($('stream-error'), null);
  state.filter = filter;
  session.setFilter(filter);
  $('live-filter').textContent = describeFilter(filter);
  state.live.clear();
  if (state.stream.cursor !== null) {
    state.live.push([{ type: 'mark', kind: 'filter', params: { seq: state.stream.cursor } }]);
  }
  state.stream.changeFilter(filter);
  state.live.saveNow(true);
}

function resetFilter() {
  writeFilterForm($('filter-form'), {});
  $('filter-apply').click();
}

function startReplay(ev) {
  ev.preventDefault();
  const form = $('replay-form');
  const timeValue = form.elements.time.value;
  const seqValue = form.elements.seq.value.trim();
  let request;
  let mark;
  if (seqValue) {
    if (!/^\d{1,15}$/.test(seqValue)) {
      showError($('replay-error'), t('replay.invalidSeq'));
      return;
    }
    request = { seq: Number(seqValue) };
    mark = { kind: 'replaySeq', params: { seq: request.seq } };
  } else if (timeValue) {
    // datetime-local has no zone: the Date constructor reads it as local time.
    const date = new Date(timeValue);
    if (Number.isNaN(date.getTime())) {
      showError($('replay-error'), t('replay.needOne'));
      return;
    }
    request = { time: toRfc3339(date) };
    mark = { kind: 'replayTime', params: { time: request.time } };
  } else {
    showError($('replay-error'), t('replay.needOne'));
    return;
  }
  showError($('replay-error'), null);
  showError($('stream-error'), null);
  state.live.clear();
  state.live.push([{ type: 'mark', ...mark }]);
  state.stream.replay(request);
  state.live.saveNow(true);
}

function togglePause() {
  const paused = !state.live.paused;
  state.live.setPaused(paused);
  const button = $('pause');
  button.dataset.i18n = paused ? 'live.resume' : 'live.pause';
  button.textContent = t(button.dataset.i18n);
  button.setAttribute('aria-pressed', String(paused));
}

// ---- views ----

function showView(view) {
  state.view = view;
  for (const button of $('nav').querySelectorAll('button')) {
    button.setAttribute('aria-selected', String(button.dataset.view === view));
  }
  for (const v of ['live', 'stats', 'campaigns']) $(`view-${v}`).hidden = v !== view;
  if (view === 'stats') state.stats.show(); else state.stats.hide();
  if (view === 'campaigns') state.campaigns.show(); else state.campaigns.hide();
}

function changeLanguage() {
  setLanguage($('lang').value, true);
  renderTimeZone();
  if (state.stream) {
    $('live-filter').textContent = describeFilter(state.filter);
    state.live.rerender();
    if (state.view === 'stats') state.stats.render();
    if (state.view === 'campaigns') state.campaigns.render();
    if ($('status').dataset.status) setStatus($('status').dataset.status);
  }
}

function init() {
  setLanguage(initialLanguage(), false);
  $('lang').value = language();
  renderTimeZone();

  const key = () => session.key();
  state.stats = new StatsView($('view-stats'), key, authFailed);
  state.campaigns = new CampaignsView($('view-campaigns'), key, authFailed);

  $('lang').addEventListener('change', changeLanguage);
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = $('key').value.trim();
    if (!value) {
      showError($('signin-error'), t('signin.empty'));
      return;
    }
    session.setKey(value);
    $('key').value = '';
    startSession(value);
  });
  $('signout').addEventListener('click', () => signOut(null));
  $('filter-form').addEventListener('submit', applyFilter);
  $('filter-reset').addEventListener('click', resetFilter);
  $('replay-form').addEventListener('submit', startReplay);
  $('pause').addEventListener('click', togglePause);
  $('nav').addEventListener('click', (ev) => {
    const view = ev.target.closest('button')?.dataset.view;
    if (view) showView(view);
  });
  $('stats-window').addEventListener('change', (ev) => state.stats.setWindow(ev.target.value));
  $('stats-refresh').addEventListener('click', () => state.stats.refresh());
  $('view-campaigns').querySelector('.campaigns-more')
    .addEventListener('click', () => state.campaigns.more());

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => state.stats.render(), 200);
  });
  // Saves the rows and the cursor together when the page goes away, so a
  // reload shows the same rows and resumes right after them.
  window.addEventListener('pagehide', () => state.live?.saveNow(true));

  $('r-time').value = toLocalInputValue(new Date(Date.now() - 3600 * 1000));

  const saved = session.key();
  if (saved) startSession(saved);
  else showSignIn(null);
}

init();
