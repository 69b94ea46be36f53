// Reading history (docs/protocol.md §2.5): a conversation's newest page when
// it is first opened, older pages when scrolling up, and the messages a truncated replay
// left out ("Signing in": replayTruncated), page by page. To show an older message (a
// reply's quote, a search result, §9.4) it loads what lies between, or a window around
// it (`before`/`after`) and then newer pages when scrolling down.

import { call, isReady, generation } from './connection.js';
import * as conversations from './conversations.js';
import { ackErrorText } from './errors.js';

const PAGE = 50;                  // history page size when scrolling back
const CATCHUP_PAGE = 100;         // history page size when filling a replay gap
const CATCHUP_MAX_PAGES = 30;     // beyond this backlog (per conversation), reload it from its newest
const FILL_MAX_PAGES = 20;
const BRIDGE_PAGE = 100;          // an older message at most this far back: load all between
const WINDOW = 25;                // otherwise: this many on each side of it

const loads = new WeakMap();      // conv -> the promise of its first page in flight

let paneUnderfilled = () => false;

/** underfilled(): the open conversation does not fill its pane yet. */
export function init({ underfilled }) {
  paneUnderfilled = underfilled;
}

const isOpen = (conv) => conversations.activeKey() === conv.key;
const fetchPage = (conv, range) => call('history', { conversation: conversations.historyParam(conv), ...range });

export function ensureLoaded(conv) {
  if (conv.loading && loads.has(conv)) return loads.get(conv);
  if (conv.loaded || conv.loading || !isReady()) return Promise.resolve();
  const promise = loadNewest(conv).finally(() => loads.delete(conv));
  loads.set(conv, promise);
  return promise;
}

async function loadNewest(conv) {
  conversations.updateHistory(conv, { loading: true, historyError: '' });
  const res = await fetchPage(conv, { limit: PAGE });
  if (!res.ok) {
    const code = res.error && res.error.code;
    const patch = { loading: false };
    if (code === 'not_found' && conv.type === 'dm') {
      // Nobody has that name yet: an empty conversation, not an error.
      patch.loaded = true;
      patch.hasMore = false;
    } else if (code !== 'offline' && code !== 'timeout') {
      patch.historyError = `Could not load messages: ${ackErrorText(res.error)}`;
    }
    conversations.updateHistory(conv, patch);
    return;
  }
  const messages = Array.isArray(res.messages) ? res.messages : [];
  conversations.updateHistory(conv, { loading: false, loaded: true, hasMore: messages.length >= PAGE });
  conversations.ingestBatch(messages, 'history', 'bottom');
  if (isOpen(conv)) fillViewport(conv);
}

/** A join's ack carries the room's newest page: the room starts out loaded from it. */
export function takeJoined(conv, history) {
  const messages = Array.isArray(history) ? history : [];
  conversations.ingestBatch(messages, 'history', 'bottom');
  if (!conv.loaded) conversations.updateHistory(conv, { loaded: true, hasMore: messages.length >= PAGE });
}

export async function loadOlder(conv) {
  if (!conv.loaded || !conv.hasMore || conv.loadingOlder || !isReady()) return;
  const oldest = conv.entries.find((e) => e.msg);
  if (!oldest) {
    conversations.updateHistory(conv, { hasMore: false });
    return;
  }
  conversations.updateHistory(conv, { loadingOlder: true });
  const res = await fetchPage(conv, { before: oldest.msg.id, limit: PAGE });
  if (!res.ok) {
    conversations.updateHistory(conv, { loadingOlder: false });
    return;
  }
  const messages = Array.isArray(res.messages) ? res.messages : [];
  conversations.updateHistory(conv, { loadingOlder: false, hasMore: messages.length >= PAGE });
  conversations.ingestBatch(messages, 'history', 'anchor');
}

/**
 * Make message `id` of `conv` held, loading what it takes; resolves true when it is.
 * Just older than what is held: the pages between. Far older: the held messages are
 * dropped for a window around it, and newer pages come when scrolling down (loadNewer).
 */
export async function loadAround(conv, id) {
  await ensureLoaded(conv);
  if (conversations.findEntry(conv, id)) return true;
  if (!isReady()) return false;
  const oldest = conv.entries.find((e) => e.msg);
  if (oldest && id < oldest.msg.id && conv.loaded) {
    const res = await fetchPage(conv, { after: id - 1, before: oldest.msg.id, limit: BRIDGE_PAGE });
    if (res.ok && Array.isArray(res.messages) && res.messages.length < BRIDGE_PAGE) {
      conversations.ingestBatch(res.messages, 'history', 'keep');
      if (conversations.findEntry(conv, id)) return true;
    }
  }
  const [older, newer] = await Promise.all([
    fetchPage(conv, { before: id + 1, limit: WINDOW }),
    fetchPage(conv, { after: id, limit: WINDOW }),
  ]);
  if (!older.ok || !newer.ok || !Array.isArray(older.messages) || !Array.isArray(newer.messages)) return false;
  conversations.dropMessages(conv);
  conversations.updateHistory(conv, {
    loaded: true,
    hasMore: older.messages.length >= WINDOW,
    hasNewer: newer.messages.length >= WINDOW,
    newerCursor: newer.messages.length ? newer.messages[newer.messages.length - 1].id : id,
  });
  conversations.ingestBatch(older.messages.concat(newer.messages), 'history', 'keep');
  return !!conversations.findEntry(conv, id);
}

/** Scrolled to the bottom of a window (loadAround): the next newer page. */
export async function loadNewer(conv) {
  if (!conv.hasNewer || conv.loadingNewer || !isReady()) return;
  // The window's newest page ends here; live messages may have arrived after a gap.
  const cursor = conv.newerCursor;
  if (!Number.isSafeInteger(cursor)) return;
  conversations.updateHistory(conv, { loadingNewer: true });
  const res = await fetchPage(conv, { after: cursor, limit: PAGE });
  if (!res.ok || !Array.isArray(res.messages)) {
    conversations.updateHistory(conv, { loadingNewer: false });
    return;
  }
  const more = res.messages.length >= PAGE;
  conversations.updateHistory(conv, {
    loadingNewer: false,
    hasNewer: more,
    newerCursor: more ? res.messages[res.messages.length - 1].id : null,
  });
  conversations.ingestBatch(res.messages, 'history', 'anchor');
}

/** Keep loading older pages while the open conversation does not fill the pane. */
export async function fillViewport(conv) {
  for (let i = 0; i < FILL_MAX_PAGES; i += 1) {
    if (!isOpen(conv) || !conv.hasMore || !conv.loaded) return;
    if (!paneUnderfilled()) return;
    await loadOlder(conv);
  }
}

/** Replay stopped early: fetch every conversation's messages after `after`, page by page. */
export async function catchUp(after) {
  const gen = generation();
  for (const conv of conversations.all()) {
    let cursor = after;
    for (let page = 1; ; page += 1) {
      if (gen !== generation()) return; // reconnected meanwhile: that welcome decides again
      if (page > CATCHUP_MAX_PAGES) {
        // Too much to hold: keep the unread count, drop the partial backlog, and load
        // the conversation from its newest messages (older ones on scrolling up).
        conversations.dropMessages(conv);
        if (isOpen(conv)) ensureLoaded(conv);
        break;
      }
      const res = await fetchPage(conv, { after: cursor, limit: CATCHUP_PAGE });
      if (!res.ok || !Array.isArray(res.messages)) break;
      conversations.ingestBatch(res.messages, 'missed', 'keep');
      if (res.messages.length < CATCHUP_PAGE) break;
      cursor = res.messages[res.messages.length - 1].id;
    }
  }
}
