// Who is online when the welcome could not list everyone (docs/protocol.md §7): pages of
// `listUsers`, sorted by case-folded name, from the prefix the person types, one page at
// a time ("more" asks for the next one with `after` = the last answer's `next`).
// Below PRESENCE_LIMIT the page lists presence.js instead and asks nothing here.

import { call, generation } from './connection.js';
import * as presence from './presence.js';
import { createEmitter } from './emitter.js';
import { ackErrorText } from './errors.js';
import { lower } from './rules.js';

export const PAGE = 20;          // users per page: a sidebar's worth
const SEARCH_DELAY_MS = 250;     // typing: ask once the person pauses

const events = createEmitter();
/** 'changed': the names shown, the search or the loading state changed. */
export const { on } = events;

let typed = '';        // the prefix the person typed (kept across reconnects)
let names = [];        // the users listed, in the server's order
let next = null;       // §7 `next`: the `after` of the following page, or null at the end
let loading = false;
let loaded = false;    // the first page of the current prefix has arrived
let failure = '';      // why the last page did not come
let asked = 0;         // the newest request: an older answer is dropped
let timer = null;

export const query = () => typed;
export const shown = () => names;
export const hasMore = () => next !== null;
export const isLoading = () => loading;
export const isLoaded = () => loaded;
export const error = () => failure;

/**
 * A new connection (or a new identity: forget): the pages of the old one are void, the
 * next welcome decides whether to ask again. The prefix typed stays, unless forgotten.
 */
export function reset({ forget = false } = {}) {
  clearTimeout(timer);
  timer = null;
  asked += 1;
  names = [];
  next = null;
  loading = false;
  loaded = false;
  failure = '';
  if (forget) typed = '';
  events.emit('changed');
}

/** The first page for the prefix typed: after a welcome, or when the list became truncated. */
export function refresh() {
  clearTimeout(timer);
  timer = null;
  return load(false);
}

/** The search box changed; now: Enter was pressed, ask without waiting. */
export function search(text, { now = false } = {}) {
  const prefix = String(text ?? '').trim();
  if (prefix === typed && !now) return;
  typed = prefix;
  clearTimeout(timer);
  timer = null;
  if (now) {
    load(false);
    return;
  }
  timer = setTimeout(() => {
    timer = null;
    load(false);
  }, SEARCH_DELAY_MS);
}

/** The next page of the same prefix. */
export function more() {
  if (next === null || loading) return Promise.resolve();
  return load(true);
}

async function load(append) {
  if (!presence.isTruncated()) return;
  asked += 1;
  const mine = asked;
  const gen = generation();
  const payload = { limit: PAGE };
  if (typed) payload.prefix = typed;
  if (append) payload.after = next;
  loading = true;
  failure = '';
  events.emit('changed');
  const res = await call('listUsers', payload);
  if (mine !== asked || gen !== generation()) return; // a newer search, or another connection
  loading = false;
  if (!res.ok) {
    failure = `Could not list who is online: ${ackErrorText(res.error)}`;
    events.emit('changed');
    return;
  }
  const users = (Array.isArray(res.users) ? res.users : []).filter((u) => u && typeof u.name === 'string');
  presence.merge(users);
  const page = users.map((u) => u.name);
  if (append) {
    const have = new Set(names.map(lower));
    names = names.concat(page.filter((name) => !have.has(lower(name))));
  } else {
    names = page;
  }
  next = typeof res.next === 'string' && page.length ? res.next : null;
  loaded = true;
  events.emit('changed');
}
