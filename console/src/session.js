// Per-tab state in sessionStorage: the API key, the filter, and the live
// view's snapshot (rows shown plus the stream cursor). sessionStorage lives
// as long as the tab, survives a reload, and is never sent to a server, so
// the key never appears in a URL, a cookie or a request other than the
// ones that authenticate with it.

const KEY = 'canary.key';
const FILTER = 'canary.filter';
const SNAPSHOT = 'canary.live';

function read(name) {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null;
  }
}

function write(name, value) {
  try {
    if (value === null) sessionStorage.removeItem(name);
    else sessionStorage.setItem(name, value);
    return true;
  } catch {
    // Storage full or disabled: the tab keeps working, a reload starts over.
    return false;
  }
}

function readJson(name) {
  const text = read(name);
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export const session = {
  key: () => read(KEY),
  setKey: (key) => write(KEY, key),
  filter: () => readJson(FILTER) || {},
  setFilter: (filter) => write(FILTER, JSON.stringify(filter)),
  snapshot: () => readJson(SNAPSHOT),
  setSnapshot: (snap) => write(SNAPSHOT, JSON.stringify(snap)),
  clear() {
    write(KEY, null);
    write(SNAPSHOT, null);
    write(FILTER, null);
  },
};
