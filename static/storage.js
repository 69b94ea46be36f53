// Persistent client state in localStorage. Every read tolerates missing or corrupt data
// (private browsing, quota, a user editing storage by hand): the app then just knows less.

const PREFIX = 'chat.';
export const IDENTITY_KEY = `${PREFIX}identity`;

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    if (raw === null) return fallback;
    return JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or unavailable: keep working from memory.
  }
}

const who = (name) => String(name).toLowerCase();

/** {name, token} of the signed-in identity, or null. */
export function loadIdentity() {
  const value = read(IDENTITY_KEY, null);
  if (!value || typeof value.token !== 'string' || typeof value.name !== 'string') return null;
  return value;
}

export function saveIdentity(identity) {
  write(IDENTITY_KEY, identity ? { name: identity.name, token: identity.token } : null);
}

/** Highest message id this identity has seen in this browser (any tab). */
export function loadLastId(name) {
  const value = read(`${PREFIX}lastId.${who(name)}`, null);
  return Number.isSafeInteger(value) ? value : null;
}

/** Only ever moves forward, even when several tabs write. */
export function saveLastId(name, id) {
  const current = loadLastId(name);
  if (current === null || id > current) write(`${PREFIX}lastId.${who(name)}`, id);
}

export function forgetLastId(name) {
  write(`${PREFIX}lastId.${who(name)}`, null);
}

// The outbox: sends not yet acknowledged, keyed by clientId so tabs of one identity can add
// and remove their own entries without overwriting each other's.
const outboxKey = (name) => `${PREFIX}outbox.${who(name)}`;

export function loadOutbox(name) {
  const value = read(outboxKey(name), {});
  if (!value || typeof value !== 'object') return [];
  return Object.values(value)
    .filter((item) => item && typeof item.clientId === 'string' && typeof item.text === 'string'
      && typeof item.conv === 'string')
    .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
}

export function addToOutbox(name, item) {
  const all = read(outboxKey(name), {}) || {};
  all[item.clientId] = item;
  write(outboxKey(name), all);
}

export function removeFromOutbox(name, clientId) {
  const all = read(outboxKey(name), {}) || {};
  if (!(clientId in all)) return;
  delete all[clientId];
  write(outboxKey(name), Object.keys(all).length ? all : null);
}

export function forgetOutbox(name) {
  write(outboxKey(name), null);
}

// The open conversation is remembered per tab, so a reload returns to it.
export function loadActive() {
  try {
    return sessionStorage.getItem(`${PREFIX}active`);
  } catch {
    return null;
  }
}

export function saveActive(key) {
  try {
    sessionStorage.setItem(`${PREFIX}active`, key);
  } catch {
    // ignore
  }
}

// How far each DM peer has read (docs/protocol.md §9.1 `read`): the protocol tells it only
// when it moves, so a reload keeps the last receipt here. {convKey: id} per identity.
const peerReadKey = (name) => `${PREFIX}peerRead.${who(name)}`;

export function loadPeerRead(name, convKey) {
  const all = read(peerReadKey(name), {});
  const value = all && typeof all === 'object' ? all[convKey] : null;
  return Number.isSafeInteger(value) ? value : 0;
}

export function savePeerRead(name, convKey, id) {
  const all = read(peerReadKey(name), {}) || {};
  if (Number.isSafeInteger(all[convKey]) && all[convKey] >= id) return;
  all[convKey] = id;
  write(peerReadKey(name), all);
}

// Whether this identity acted as a server admin here (docs/protocol.md §10.4): nothing on
// the wire says who is one, so the page remembers what an admin-only action showed.
const adminKey = (name) => `${PREFIX}admin.${who(name)}`;

export function loadAdmin(name) {
  return read(adminKey(name), false) === true;
}

export function saveAdmin(name, value) {
  write(adminKey(name), value ? true : null);
}
