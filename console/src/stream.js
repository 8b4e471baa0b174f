// The console's WebSocket client for GET /v1/canary/stream.
//
// It authenticates with the first message ({"op":"auth","token":KEY}),
// keeps one subscription and a cursor: the last seq it handed to the
// view, and the store epoch that seq belongs to. Every (re)subscription
// asks for since_seq = cursor with that epoch, so after a dropped
// connection or a page reload the server sends exactly the signals after
// the cursor: none missed, none twice. A seq at or below the cursor is
// dropped as a duplicate.
//
// NOTE: seq values are JavaScript numbers, exact up to 2^53; the cursor
// is sent as a decimal string so that the server reads it exactly.

const CLOSE_UNAUTHENTICATED = 4401;
const CLOSE_FORBIDDEN = 4403;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15000;

export class StreamClient {
  // handlers: onItems(items), onStatus(status, detail), onAuthFailed(code),
  // onError(kind, message). items are {type:'signal', signal} and
  // {type:'mark', kind, params} in stream order.
  constructor(url, key, handlers) {
    this.url = url;
    this.key = key;
    this.h = handlers;
    this.filter = {};
    this.epoch = null;        // the epoch that cursor belongs to
    this.cursor = null;       // last seq delivered; null: live only
    this.resumeTime = null;   // since_time of a replay that has not started
    this.serverEpoch = null;
    this.ws = null;
    this.subId = null;
    this.subCount = 0;
    this.replaying = false;   // the subscription asked for history
    this.userReplay = false;  // ... because the analyst started a replay
    this.lost = null;         // {at, code} of the connection that dropped
    this.retries = 0;
    this.retryTimer = null;
    this.stopped = false;
  }

  // Restores a saved position: {epoch, cursor} from a snapshot.
  restore(position) {
    if (position && Number.isSafeInteger(position.cursor) && position.cursor >= 0) {
      this.cursor = position.cursor;
      this.epoch = typeof position.epoch === 'string' ? position.epoch : null;
    }
  }

  position() {
    return { epoch: this.epoch, cursor: this.cursor };
  }

  start(filter) {
    this.filter = filter;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, 'signed out');
    this.ws = null;
  }

  // Applies a new filter from the current cursor on: signals after it that
  // match the new filter follow.
  changeFilter(filter) {
    this.filter = filter;
    this.userReplay = false;
    this.resubscribe();
  }

  // Replays from an RFC 3339 time, or after a seq (0: everything retained).
  replay({ time, seq }) {
    if (time) {
      this.resumeTime = time;
      this.cursor = null;
    } else {
      this.resumeTime = null;
      this.cursor = seq;
      this.epoch = this.serverEpoch;
    }
    this.userReplay = true;
    this.resubscribe();
  }

  connect() {
    if (this.stopped) return;
    this.h.onStatus('connecting');
    const ws = new WebSocket(this.url, 'canary.v1.json');
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ op: 'auth', token: this.key }));
    };
    ws.onmessage = (ev) => {
      if (ws === this.ws && typeof ev.data === 'string') this.receive(ev.data);
    };
    ws.onclose = (ev) => {
      if (ws === this.ws) this.closed(ev);
    };
  }

  resubscribe() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.serverEpoch) return;
    if (this.subId) this.send({ op: 'unsubscribe', id: this.subId });
    this.subscribe();
  }

  subscribe() {
    this.subCount += 1;
    this.subId = `s${this.subCount}`;
    const msg = { op: 'subscribe', id: this.subId, filter: this.filter };
    if (this.resumeTime) {
      msg.since_time = this.resumeTime;
    } else if (this.cursor !== null) {
      msg.since_seq = String(this.cursor);
      if (this.epoch) msg.epoch = this.epoch;
    }
    this.replaying = 'since_time' in msg || 'since_seq' in msg;
    this.send(msg);
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  // One text frame may carry several messages separated by "\n".
  receive(text) {
    const items = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch {
        this.h.onError('server', 'a stream message is not valid JSON');
        continue;
      }
      this.dispatch(msg, items);
    }
    if (items.length) this.h.onItems(items);
  }

  dispatch(msg, items) {
    switch (msg.type) {
      case 'welcome':
        this.serverEpoch = msg.epoch;
        this.subscribe();
        break;
      case 'subscribed':
        if (msg.id === this.subId) this.subscribed(msg, items);
        break;
      case 'signal':
        if (msg.sub === this.subId) this.signal(msg.signal, items);
        break;
      case 'replay_done':
        if (msg.sub === this.subId) this.replayDone(msg, items);
        break;
      case 'gap':
        if (msg.sub === this.subId) this.gap(msg, items);
        break;
      case 'error':
        if (msg.code === 'invalid_filter') this.h.onError('filter', msg.message);
        else if (msg.code !== 'unknown_subscription') this.h.onError('server', msg.message);
        break;
      default:
        break;
    }
  }

  subscribed(msg, items) {
    if (this.cursor === null && !this.resumeTime) {
      this.cursor = msg.head_seq;
      this.epoch = this.serverEpoch;
    }
    if (this.lost) {
      const kind = this.replaying ? 'reconnect' : 'reconnectLive';
      items.push({ type: 'mark', kind, params: { time: this.lost.at, code: this.lost.code, seq: this.cursor ?? 0 } });
      this.lost = null;
    }
    this.retries = 0;
    this.h.onStatus(this.replaying ? 'replaying' : 'live');
  }

  signal(signal, items) {
    if (!signal || !Number.isSafeInteger(signal.seq)) return;
    if (this.cursor !== null && signal.seq <= this.cursor) return;
    this.cursor = signal.seq;
    this.epoch = this.serverEpoch;
    this.resumeTime = null;
    items.push({ type: 'signal', signal });
  }

  replayDone(msg, items) {
    if (Number.isSafeInteger(msg.seq) && (this.cursor === null || msg.seq > this.cursor)) {
      this.cursor = msg.seq;
    }
    this.epoch = this.serverEpoch;
    this.resumeTime = null;
    this.replaying = false;
    if (this.userReplay) {
      items.push({ type: 'mark', kind: 'replayDone', params: { seq: this.cursor } });
      this.userReplay = false;
    }
    this.h.onStatus('live');
  }

  gap(msg, items) {
    if (msg.reason === 'epoch') {
      // The whole of the new store follows from its oldest signal.
      this.cursor = null;
      this.epoch = this.serverEpoch;
      items.push({ type: 'mark', kind: 'gapEpoch', params: {} });
      return;
    }
    const kind = msg.reason === 'retention' ? 'gapRetention' : 'gapOther';
    items.push({ type: 'mark', kind, params: { from: msg.from, to: msg.to, reason: msg.reason } });
  }

  closed(ev) {
    this.ws = null;
    this.subId = null;
    this.serverEpoch = null;
    if (this.stopped) return;
    if (ev.code === CLOSE_UNAUTHENTICATED || ev.code === CLOSE_FORBIDDEN) {
      this.stopped = true;
      this.h.onAuthFailed(ev.code);
      return;
    }
    if (!this.lost) this.lost = { at: new Date().toISOString(), code: ev.code };

    // Exponential back-off with jitter, so that many consoles do not all
    // reconnect at the same instant after a server restart.
    const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.retries);
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this.retries += 1;
    this.h.onStatus('reconnecting', Math.ceil(delay / 1000));
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
