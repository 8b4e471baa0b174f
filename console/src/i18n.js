// Every visible string of the console, in English and Japanese.
// Elements carry data-i18n="key" (text) or data-i18n-placeholder="key";
// code calls t(key, params) for strings it builds. "{name}" in a string is
// replaced by params.name.

const LANG_KEY = 'canary.lang';

export const LANGUAGES = ['en', 'ja'];

const STRINGS = {
  en: {
    'app.title': 'Canary console',
    'app.tz': 'Times are shown in {tz} (UTC{offset}).',
    'nav.live': 'Live',
    'nav.stats': 'Statistics',
    'nav.campaigns': 'Campaigns',
    'lang.label': 'Language',
    'signin.title': 'Sign in',
    'signin.key': 'API key',
    'signin.help': 'Use a key with the subscribe and read scopes. The key stays in this browser tab only and is forgotten when the tab closes.',
    'signin.submit': 'Sign in',
    'signin.empty': 'Enter a key.',
    'signin.rejected': 'The server rejected the key: it is unknown, revoked, or lacks the subscribe scope. Check the key and sign in again.',
    'signout': 'Sign out',
    'status.connecting': 'Connecting…',
    'status.live': 'Live',
    'status.replaying': 'Replaying…',
    'status.reconnecting': 'Reconnecting in {s} s…',
    'status.offline': 'Disconnected',
    'filters.title': 'Filters',
    'filters.domains': 'Domain watchlist',
    'filters.domainsHint': 'example.com, *.example.com',
    'filters.domainsHelp': '*.example.com matches subdomains only, not example.com itself.',
    'filters.minConfidence': 'Minimum confidence',
    'filters.any': 'Any',
    'filters.stages': 'Stages',
    'filters.eventTypes': 'Event types',
    'filters.proxyTypes': 'Proxy types',
    'filters.regions': 'Regions',
    'filters.regionsHint': 'JP, US, EU, ZZ',
    'filters.threatOnly': 'Threats only (medium or high confidence)',
    'filters.apply': 'Apply filters',
    'filters.reset': 'Reset',
    'filters.active': 'Active filter: {f}',
    'filters.none': 'none, every signal is shown',
    'filters.invalidRegion': 'Region "{value}" is invalid: use a two-letter code such as JP.',
    'live.pause': 'Pause',
    'live.resume': 'Resume',
    'live.count': '{shown} rows shown (at most {max}), {received} signals received. Newest on top.',
    'live.pending': '{n} new signals are waiting while paused.',
    'live.empty': 'No signals yet. New signals that match the filter appear here.',
    'col.time': 'Observed',
    'col.seq': 'Seq',
    'col.eventType': 'Event type',
    'col.confidence': 'Confidence',
    'col.stage': 'Stage',
    'col.proxy': 'Proxy',
    'col.region': 'Region',
    'col.domain': 'Domain',
    'col.action': 'Action',
    'mark.gapRetention': 'Gap: signals {from} to {to} were deleted by retention and cannot be shown.',
    'mark.gapEpoch': 'The server has a different store than the saved position (new epoch). Everything it holds follows, from its oldest signal.',
    'mark.gapOther': 'Gap: signals {from} to {to} are missing ({reason}).',
    'mark.reconnect': 'Connection lost at {time} ({reason}). Reconnected and resumed after seq {seq}.',
    'mark.reconnectLive': 'Connection lost at {time} ({reason}). Reconnected; live from seq {seq}.',
    'mark.restored': 'Page reloaded. Resumed after seq {seq}.',
    'mark.replayTime': 'Replay from {time}.',
    'mark.replaySeq': 'Replay after seq {seq}.',
    'mark.replayDone': 'Replay finished at seq {seq}. Live from here.',
    'mark.filter': 'Filter changed. Signals after seq {seq} that match it follow.',
    'close.slow': 'the server closed a slow connection',
    'close.shutdown': 'the server is shutting down',
    'close.network': 'network error',
    'close.code': 'close code {code}',
    'replay.title': 'Replay',
    'replay.help': 'History plays into the table in seq order, then the view continues live. The table is cleared first.',
    'replay.fromTime': 'From time',
    'replay.fromSeq': 'Or after seq',
    'replay.start': 'Start replay',
    'replay.needOne': 'Give a start time or a seq.',
    'replay.invalidSeq': 'The seq must be a whole number, 0 or more (0 replays everything retained).',
    'error.filter': 'The server rejected the filter: {message}',
    'error.server': 'Server error: {message}',
    'error.http': 'Request failed with status {status}: {detail}',
    'error.network': 'The server could not be reached. The next refresh retries.',
    'stats.window': 'Time window',
    'stats.h1': 'Last hour',
    'stats.h24': 'Last 24 hours',
    'stats.d7': 'Last 7 days',
    'stats.refresh': 'Refresh now',
    'stats.total': 'Signals',
    'stats.sensors': 'Active sensors',
    'stats.subscribers': 'Connected subscribers',
    'stats.trend': 'Trend by event type',
    'stats.total.series': 'Total',
    'stats.time': 'Time',
    'stats.byConfidence': 'By confidence',
    'stats.byStage': 'By stage',
    'stats.byProxy': 'By proxy type',
    'stats.byRegion': 'By region (top 10)',
    'stats.byEventType': 'By event type',
    'stats.topDomains': 'Top domains',
    'stats.count': 'Count',
    'stats.updated': 'Updated {time}. Refreshes every {s} s.',
    'stats.unavailable': 'Statistics are not available on this server: GET /v1/canary/stats returned 404.',
    'stats.empty': 'No signals in this time window.',
    'stats.totalOnly': 'This server does not split the trend by event type, so the chart shows the total only.',
    'campaigns.help': 'A campaign groups signals that target the same domain from the same attacker infrastructure without a long pause.',
    'campaigns.unavailable': 'Campaigns are not available on this server: GET /v1/canary/campaigns returned 404.',
    'campaigns.empty': 'No campaigns yet.',
    'campaigns.more': 'Load more',
    'campaigns.count': '{shown} of {total} campaigns.',
    'campaigns.id': 'Campaign',
    'campaigns.status': 'Status',
    'campaigns.firstSeen': 'First seen',
    'campaigns.lastSeen': 'Last seen',
    'campaigns.signals': 'Signals',
    'campaigns.maxConfidence': 'Max confidence',
    'status.active': 'Active',
    'status.dormant': 'Dormant',
    'v.credential_testing': 'Credential testing',
    'v.account_probe': 'Account probe',
    'v.sim_recon': 'SIM reconnaissance',
    'v.fraud_test': 'Fraud test',
    'v.low': 'Low',
    'v.medium': 'Medium',
    'v.high': 'High',
    'v.TESTING': 'Testing',
    'v.ATTACK': 'Attack',
    'v.datacenter': 'Data center',
    'v.residential': 'Residential',
    'v.mobile': 'Mobile',
    'v.tor': 'Tor',
    'v.monitor': 'Monitor',
    'v.step_up': 'Step-up authentication',
    'v.block': 'Block',
    'v.alert_soc': 'Alert the SOC',
  },
  ja: {
    'app.title': 'Canary コンソール',
    'app.tz': '時刻は {tz}（UTC{offset}）で表示しています。',
    'nav.live': 'ライブ',
    'nav.stats': '統計',
    'nav.campaigns': 'キャンペーン',
    'lang.label': '言語',
    'signin.title': 'サインイン',
    'signin.key': 'API キー',
    'signin.help': 'subscribe と read のスコープを持つキーを使ってください。キーはこのブラウザーのタブの中だけに保存され、タブを閉じると消去されます。',
    'signin.submit': 'サインイン',
    'signin.empty': 'キーを入力してください。',
    'signin.rejected': 'サーバーがキーを拒否しました。キーが不明、失効済み、または subscribe スコープを持っていません。キーを確認して、もう一度サインインしてください。',
    'signout': 'サインアウト',
    'status.connecting': '接続中…',
    'status.live': 'ライブ',
    'status.replaying': '再生中…',
    'status.reconnecting': '{s} 秒後に再接続します…',
    'status.offline': '切断',
    'filters.title': 'フィルター',
    'filters.domains': '監視ドメイン',
    'filters.domainsHint': 'example.com, *.example.com',
    'filters.domainsHelp': '*.example.com はサブドメインだけに一致し、example.com 自体には一致しません。',
    'filters.minConfidence': '最低信頼度',
    'filters.any': 'すべて',
    'filters.stages': '段階',
    'filters.eventTypes': 'イベント種別',
    'filters.proxyTypes': 'プロキシ種別',
    'filters.regions': '地域',
    'filters.regionsHint': 'JP, US, EU, ZZ',
    'filters.threatOnly': '脅威のみ（信頼度 中・高）',
    'filters.apply': 'フィルターを適用',
    'filters.reset': 'リセット',
    'filters.active': '適用中のフィルター: {f}',
    'filters.none': 'なし（すべてのシグナルを表示）',
    'filters.invalidRegion': '地域「{value}」は無効です。JP のような 2 文字のコードを使ってください。',
    'live.pause': '一時停止',
    'live.resume': '再開',
    'live.count': '{shown} 行を表示中（最大 {max} 行）、受信 {received} 件。新しい順に表示しています。',
    'live.pending': '一時停止中に {n} 件の新しいシグナルが届いています。',
    'live.empty': 'シグナルはまだありません。フィルターに一致する新しいシグナルがここに表示されます。',
    'col.time': '観測日時',
    'col.seq': '連番',
    'col.eventType': 'イベント種別',
    'col.confidence': '信頼度',
    'col.stage': '段階',
    'col.proxy': 'プロキシ',
    'col.region': '地域',
    'col.domain': 'ドメイン',
    'col.action': '推奨対応',
    'mark.gapRetention': '欠落: 連番 {from}〜{to} のシグナルは保持期間を過ぎて削除されたため表示できません。',
    'mark.gapEpoch': 'サーバーのストアが保存した位置とは別のものです（エポック変更）。このストアの最も古いシグナルから全件を表示します。',
    'mark.gapOther': '欠落: 連番 {from}〜{to} のシグナルがありません（{reason}）。',
    'mark.reconnect': '{time} に接続が切れました（{reason}）。再接続し、連番 {seq} の続きから再開しました。',
    'mark.reconnectLive': '{time} に接続が切れました（{reason}）。再接続し、連番 {seq} からライブ表示しています。',
    'mark.restored': 'ページを再読み込みしました。連番 {seq} の続きから再開しました。',
    'mark.replayTime': '{time} から再生します。',
    'mark.replaySeq': '連番 {seq} の次から再生します。',
    'mark.replayDone': '連番 {seq} で再生が終わりました。ここからライブ表示です。',
    'mark.filter': 'フィルターを変更しました。連番 {seq} より後の一致するシグナルを表示します。',
    'close.slow': '処理が遅い接続としてサーバーが切断',
    'close.shutdown': 'サーバー停止中',
    'close.network': 'ネットワークエラー',
    'close.code': 'クローズコード {code}',
    'replay.title': '再生',
    'replay.help': '履歴を連番順に表へ流し込み、その後はライブ表示を続けます。表は最初に消去されます。',
    'replay.fromTime': '開始日時',
    'replay.fromSeq': 'または開始連番（この次から）',
    'replay.start': '再生開始',
    'replay.needOne': '開始日時か連番を指定してください。',
    'replay.invalidSeq': '連番は 0 以上の整数で指定してください（0 は保持中の全件を再生）。',
    'error.filter': 'サーバーがフィルターを拒否しました: {message}',
    'error.server': 'サーバーエラー: {message}',
    'error.http': 'リクエストがステータス {status} で失敗しました: {detail}',
    'error.network': 'サーバーに接続できません。次の更新で再試行します。',
    'stats.window': '期間',
    'stats.h1': '直近 1 時間',
    'stats.h24': '直近 24 時間',
    'stats.d7': '直近 7 日間',
    'stats.refresh': '今すぐ更新',
    'stats.total': 'シグナル数',
    'stats.sensors': '稼働中のセンサー',
    'stats.subscribers': '接続中の購読者',
    'stats.trend': 'イベント種別ごとの推移',
    'stats.total.series': '合計',
    'stats.time': '時刻',
    'stats.byConfidence': '信頼度別',
    'stats.byStage': '段階別',
    'stats.byProxy': 'プロキシ種別',
    'stats.byRegion': '地域別（上位 10）',
    'stats.byEventType': 'イベント種別',
    'stats.topDomains': '上位ドメイン',
    'stats.count': '件数',
    'stats.updated': '{time} に更新。{s} 秒ごとに更新します。',
    'stats.unavailable': 'このサーバーでは統計を利用できません（GET /v1/canary/stats が 404 を返しました）。',
    'stats.empty': 'この期間のシグナルはありません。',
    'stats.totalOnly': 'このサーバーは推移をイベント種別に分けないため、合計だけを表示しています。',
    'campaigns.help': 'キャンペーンは、同じ攻撃インフラから同じドメインを長い中断なく狙ったシグナルのまとまりです。',
    'campaigns.unavailable': 'このサーバーではキャンペーンを利用できません（GET /v1/canary/campaigns が 404 を返しました）。',
    'campaigns.empty': 'キャンペーンはまだありません。',
    'campaigns.more': 'さらに読み込む',
    'campaigns.count': '{total} 件中 {shown} 件のキャンペーン。',
    'campaigns.id': 'キャンペーン',
    'campaigns.status': '状態',
    'campaigns.firstSeen': '初回観測',
    'campaigns.lastSeen': '最終観測',
    'campaigns.signals': 'シグナル数',
    'campaigns.maxConfidence': '最高信頼度',
    'status.active': '活動中',
    'status.dormant': '休止中',
    'v.credential_testing': '認証情報テスト',
    'v.account_probe': 'アカウント探索',
    'v.sim_recon': 'SIM 偵察',
    'v.fraud_test': '不正利用テスト',
    'v.low': '低',
    'v.medium': '中',
    'v.high': '高',
    'v.TESTING': 'テスト段階',
    'v.ATTACK': '攻撃段階',
    'v.datacenter': 'データセンター',
    'v.residential': '住宅用',
    'v.mobile': 'モバイル',
    'v.tor': 'Tor',
    'v.monitor': '監視',
    'v.step_up': '追加認証',
    'v.block': 'ブロック',
    'v.alert_soc': 'SOC へ通報',
  },
};

let current = 'en';

// Picks the saved choice, else the browser's first supported language.
export function initialLanguage() {
  let saved = null;
  try {
    saved = localStorage.getItem(LANG_KEY);
  } catch {
    saved = null;
  }
  if (LANGUAGES.includes(saved)) return saved;
  for (const tag of navigator.languages || [navigator.language || 'en']) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

export function language() {
  return current;
}

// Sets the language, remembers it, and rewrites the marked elements.
export function setLanguage(lang, remember) {
  current = LANGUAGES.includes(lang) ? lang : 'en';
  if (remember) {
    try {
      localStorage.setItem(LANG_KEY, current);
    } catch {
      // Storage may be disabled; the choice then lasts for this page only.
    }
  }
  document.documentElement.lang = current;
  translateDocument(document);
}

export function t(key, params) {
  const table = STRINGS[current];
  let text = table[key] ?? STRINGS.en[key] ?? key;
  if (params) {
    text = text.replace(/\{(\w+)\}/g, (m, name) =>
      name in params ? String(params[name]) : m);
  }
  return text;
}

// The display name of an enumerated signal value, such as "sim_recon".
export function valueLabel(value) {
  const key = 'v.' + value;
  return key in STRINGS.en ? t(key) : String(value);
}

export function translateDocument(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll('[data-value]')) {
    el.textContent = valueLabel(el.dataset.value);
  }
  document.title = t('app.title');
}

// Exposed for the tests, which check that both tables have the same keys.
export const _strings = STRINGS;
