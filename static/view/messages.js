// The open conversation's messages: confirmed ones in id order with notices between them,
// then this tab's pending and refused sends, and the history status line above them all.
// Message text reaches the page only as text nodes and http(s) links (dom.js linkify),
// with mentions (docs/protocol.md §9.3) as highlighted text.
//
// v2 (docs/protocol.md §8, §9): a message shows what changed in place ("edited", a deleted
// one as its tombstone), the message it answers (a quote that jumps to it), its reactions
// (counts; who, in the title; click to toggle yours), and a menu (reply, react, edit and
// delete where allowed). A "new messages" divider sits before the first unread message,
// and "Seen" under my last DM message the peer has read.

import { byId, h, clear, setText, linkify, formatTime } from '../dom.js';
import * as identity from '../identity.js';
import * as presence from '../presence.js';
import * as moderation from '../moderation.js';
import { lower } from '../rules.js';

const NEAR_BOTTOM_PX = 80;
const UNDERFILL_SLACK_PX = 40;
const LOAD_OLDER_FROM_PX = 80;
const QUOTE_CHARS = 140;
const FLASH_MS = 2000;
export const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '🙏'];

const scroller = byId('scroller');
const historyStatus = byId('history-status');
const messageList = byId('message-list');
const pendingList = byId('pending-list');

let nodeOf = new WeakMap(); // entry -> its <li>, to insert a newer entry before it
let handlers = null;
let shownConv = null;       // the conversation drawn
let menuFor = null;         // the id of the message whose menu is open
let deleteArmed = null;     // the id whose delete asks for a second click
let dividerNode = null;

function isNearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
}

/** The messages do not fill the pane: older ones may be loaded right away. */
export const underfilled = () => scroller.scrollHeight <= scroller.clientHeight + UNDERFILL_SLACK_PX;

// -- mentions (docs/protocol.md §9.3) ---------------------------------------------------

const MENTION_RE = /@([\p{L}\p{N}_.-]{1,32})/gu;

/** Whom a message mentions, lower-cased: the server's list, or after an edit a guess. */
function mentionSet(conv, m) {
  if (Array.isArray(m.mentions)) return new Set(m.mentions.map(lower));
  const names = new Set([lower(identity.current() && identity.current().name)]);
  if (conv) {
    for (const name of conv.members || []) names.add(lower(name));
    if (conv.peer) names.add(lower(conv.peer));
    for (const e of conv.entries) if (e.msg && e.msg.from) names.add(lower(e.msg.from));
  }
  for (const u of presence.list()) names.add(lower(u.name));
  return names;
}

/** `text` split into text nodes and <mark>s for the names in `names`. */
function withMentions(text, names) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(MENTION_RE)) {
    let name = match[1];
    // "@bob." ends a sentence: try the name without its trailing dots too.
    while (name && !names.has(lower(name)) && name.endsWith('.')) name = name.slice(0, -1);
    if (!name || !names.has(lower(name))) continue;
    const before = match.index > 0 ? text[match.index - 1] : '';
    if (before && /[\p{L}\p{N}_.-]/u.test(before)) continue; // an address, not a mention
    if (match.index > last) frag.appendChild(document.createTextNode(text.slice(last, match.index)));
    const me = identity.isMe(name);
    frag.appendChild(h('mark', {
      class: me ? 'mention me' : 'mention',
      'data-testid': me ? 'mention-me' : 'mention',
    }, `@${name}`));
    last = match.index + 1 + name.length;
  }
  if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
  return frag;
}

/** Message text as text nodes, links and mentions: never HTML. */
function richText(conv, m) {
  const linked = linkify(String(m.text ?? ''));
  const names = mentionSet(conv, m);
  if (!names.size) return linked;
  for (const node of [...linked.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE) node.replaceWith(withMentions(node.data, names));
  }
  return linked;
}

// -- one message ------------------------------------------------------------------------

const canEdit = (m) => identity.isMe(m.from) && !m.deleted;
/** §8.2 with §10: the author; in a room its owner, a moderator (others' messages that
 * members wrote) and a server admin too. */
const canDelete = (conv, m) => moderation.mayDelete(conv, m);

function quoteNode(conv, m) {
  const target = conv ? findMsg(conv, m.replyTo) : null;
  let who = '';
  let what = 'an earlier message';
  if (target) {
    who = target.from ?? '?';
    what = target.deleted ? 'This message was deleted.' : String(target.text ?? '');
    if ([...what].length > QUOTE_CHARS) what = `${[...what].slice(0, QUOTE_CHARS).join('')}…`;
  }
  return h('button', {
    type: 'button',
    class: 'reply-quote',
    'data-testid': 'reply-quote',
    'data-reply-to': m.replyTo,
    title: 'Show the message this answers',
  },
  who ? h('span', { class: 'quote-from' }, who) : null,
  h('span', { class: target && target.deleted ? 'quote-text deleted' : 'quote-text' }, what));
}

function reactionsNode(m) {
  const list = Array.isArray(m.reactions) ? m.reactions.filter((r) => r && r.count > 0) : [];
  if (!list.length) return null;
  return h('div', { class: 'reactions', 'data-testid': 'reactions' },
    list.map((r) => {
      const names = Array.isArray(r.names) ? r.names : [];
      const mine = names.some((n) => identity.isMe(n));
      const others = r.count - names.length;
      const who = names.map((n) => (identity.isMe(n) ? `${n} (you)` : n)).join(', ')
        + (others > 0 ? ` and ${others} more` : '');
      return h('button', {
        type: 'button',
        class: mine ? 'reaction mine' : 'reaction',
        'data-testid': 'reaction',
        'data-emoji': r.emoji,
        'data-action': 'toggle-reaction',
        'aria-pressed': mine ? 'true' : 'false',
        title: `${who} reacted with ${r.emoji}`,
        'aria-label': `${r.emoji} ${r.count}: ${who}`,
      }, h('span', { class: 'reaction-emoji' }, r.emoji), ' ',
      h('span', { class: 'reaction-count', 'data-testid': 'reaction-count' }, String(r.count)));
    }));
}

function menuNode(conv, m) {
  const action = (name, text, extra = {}) => h('button', {
    type: 'button', class: 'menu-item', 'data-action': name, 'data-testid': `action-${name}`, ...extra,
  }, text);
  const armed = deleteArmed === m.id;
  return h('div', { class: 'msg-menu', 'data-testid': 'message-actions', role: 'group', 'aria-label': 'Message actions' },
    h('div', { class: 'emoji-row' },
      QUICK_EMOJI.map((emoji) => h('button', {
        type: 'button', class: 'emoji-pick', 'data-action': 'pick-emoji', 'data-emoji': emoji,
        'data-testid': 'pick-emoji', title: `React with ${emoji}`,
      }, emoji)),
      h('form', { class: 'emoji-free', 'data-testid': 'emoji-form' },
        h('label', { class: 'visually-hidden', for: `emoji-input-${m.id}` }, 'Any emoji'),
        h('input', {
          id: `emoji-input-${m.id}`, type: 'text', class: 'emoji-input', maxlength: '32', placeholder: '🙂',
          autocomplete: 'off', 'data-testid': 'emoji-input',
        }),
        h('button', { type: 'submit', class: 'menu-item', 'data-testid': 'emoji-add' }, 'React'))),
    h('div', { class: 'menu-row' },
      action('reply', 'Reply'),
      canEdit(m) ? action('edit', 'Edit') : null,
      canDelete(conv, m) ? action('delete', armed ? 'Click again to delete' : 'Delete',
        { class: armed ? 'menu-item danger-text armed' : 'menu-item danger-text' }) : null));
}

function messageNode(conv, m) {
  const when = new Date(m.ts);
  const valid = !Number.isNaN(when.getTime());
  const mine = identity.isMe(m.from);
  const classes = ['msg'];
  if (mine) classes.push('mine');
  if (m.deleted) classes.push('deleted');
  if (!m.deleted && conv && conv.type !== 'dm' && Array.isArray(m.mentions) && m.mentions.some((n) => identity.isMe(n))) {
    classes.push('mentions-me');
  }
  const edited = m.editedAt && !m.deleted ? new Date(m.editedAt) : null;
  const node = h('li', {
    class: classes.join(' '),
    'data-testid': 'message',
    'data-id': m.id,
    'data-from': m.from ?? '',
    'data-deleted': m.deleted ? 'true' : null,
  },
  h('div', { class: 'msg-head' },
    h('span', { class: 'msg-from', 'data-testid': 'message-from' }, m.from ?? '?'),
    h('time', {
      class: 'msg-time',
      datetime: valid ? when.toISOString() : null,
      title: valid ? when.toLocaleString() : null,
    }, formatTime(m.ts)),
    edited ? h('span', {
      class: 'msg-edited', 'data-testid': 'message-edited',
      title: Number.isNaN(edited.getTime()) ? null : `Edited ${edited.toLocaleString()}`,
    }, '(edited)') : null,
    m.deleted ? null : h('button', {
      type: 'button',
      class: 'msg-menu-button',
      'data-action': 'menu',
      'data-testid': 'message-menu',
      'aria-expanded': menuFor === m.id ? 'true' : 'false',
      'aria-label': `Actions for the message from ${m.from ?? '?'}`,
      title: 'Reply, react, edit or delete',
    }, '⋯')),
  Number.isSafeInteger(m.replyTo) && !m.deleted ? quoteNode(conv, m) : null,
  m.deleted
    ? h('div', { class: 'msg-text msg-deleted', 'data-testid': 'message-text' },
      h('em', { 'data-testid': 'message-deleted' }, 'This message was deleted.'))
    : h('div', { class: 'msg-text', 'data-testid': 'message-text' }, richText(conv, m)),
  m.deleted ? null : reactionsNode(m),
  menuFor === m.id && !m.deleted ? menuNode(conv, m) : null);
  return node;
}

function findMsg(conv, id) {
  const entry = entryById(conv, id);
  return entry ? entry.msg : null;
}

function entryNode(conv, entry) {
  const node = entry.notice !== undefined
    ? h('li', { class: 'notice', 'data-testid': 'notice' }, entry.notice)
    : messageNode(conv, entry.msg);
  nodeOf.set(entry, node);
  return node;
}

/** One new entry of the open conversation, at its place in id order. */
export function insert({ conv, entry, index, forceBottom }) {
  const stick = forceBottom || isNearBottom();
  const next = conv.entries[index + 1];
  const before = next ? nodeOf.get(next) : null;
  messageList.insertBefore(entryNode(conv, entry), before && before.parentNode ? before : null);
  if (entry.msg && historyStatus.textContent) renderStatus(conv);
  if (entry.msg && entry.msg.replyTo) refreshQuotesOf(conv, entry.msg.id);
  if (entry.msg && conv.type === 'dm') showSeen(conv);
  if (stick) scrollToBottom();
}

/** Where the "new messages" divider goes: before this entry, or nowhere. */
function dividerEntry(conv) {
  const d = conv.divider;
  if (!d) return null;
  const fromOthers = (e) => e.msg && !e.msg.deleted && !identity.isMe(e.msg.from);
  if (Number.isSafeInteger(d.after)) return conv.entries.find((e) => fromOthers(e) && e.msg.id > d.after) || null;
  let n = 0;
  for (let i = conv.entries.length - 1; i >= 0; i -= 1) {
    if (fromOthers(conv.entries[i])) {
      n += 1;
      if (n === d.count) return conv.entries[i];
    }
  }
  return null;
}

function placeDivider(conv) {
  if (dividerNode) dividerNode.remove();
  dividerNode = null;
  const entry = dividerEntry(conv);
  const node = entry ? nodeOf.get(entry) : null;
  if (!node) return;
  dividerNode = h('li', { class: 'unread-divider', 'data-testid': 'unread-divider', role: 'separator' },
    h('span', {}, 'New messages'));
  messageList.insertBefore(dividerNode, node);
}

/** "Seen" under my newest DM message that the peer has read (docs/protocol.md §9.1). */
export function showSeen(conv) {
  if (conv !== shownConv) return;
  for (const old of messageList.querySelectorAll('.msg-seen')) old.remove();
  if (conv.type !== 'dm' || !conv.peerRead || identity.isMe(conv.peer)) return;
  for (let i = conv.entries.length - 1; i >= 0; i -= 1) {
    const e = conv.entries[i];
    if (!e.msg || e.msg.id > conv.peerRead || !identity.isMe(e.msg.from)) continue;
    const node = nodeOf.get(e);
    if (node) node.appendChild(h('p', { class: 'msg-seen', 'data-testid': 'seen' }, 'Seen'));
    return;
  }
}

/** Draw one message again: it changed in place (docs/protocol.md §8.3), or its menu did. */
export function refresh({ conv, entry }) {
  if (conv !== shownConv) return;
  const old = nodeOf.get(entry);
  if (!old || !old.parentNode) return;
  const focusedAction = old.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  const node = entryNode(conv, entry);
  old.replaceWith(node);
  if (entry.msg) refreshQuotesOf(conv, entry.msg.id);
  if (conv.type === 'dm') showSeen(conv);
  if (focusedAction) {
    const again = node.querySelector(`[data-action="${CSS.escape(focusedAction)}"]`);
    if (again) again.focus();
  }
}

/** Replies quoting message `id` show its new state. */
function refreshQuotesOf(conv, id) {
  for (const quote of messageList.querySelectorAll(`.reply-quote[data-reply-to="${id}"]`)) {
    const li = quote.closest('li.msg');
    const entry = li ? entryById(conv, Number(li.dataset.id)) : null;
    if (entry) {
      const node = entryNode(conv, entry);
      li.replaceWith(node);
    }
  }
}

function entryById(conv, id) {
  // Entries are in id order (notices between): a binary search by sort key.
  const list = conv.entries;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].sk < id) lo = mid + 1;
    else hi = mid;
  }
  const entry = list[lo];
  return entry && entry.msg && entry.msg.id === id ? entry : null;
}

/** Bring message `id` into view and make it stand out for a moment. */
export function scrollToMessage(id) {
  const node = messageList.querySelector(`li.msg[data-id="${id}"]`);
  if (!node) return false;
  node.scrollIntoView({ block: 'center' });
  node.classList.remove('flash');
  // Restart the highlight (a reflow between removing and adding the class).
  void node.offsetWidth;
  node.classList.add('flash');
  setTimeout(() => node.classList.remove('flash'), FLASH_MS);
  return true;
}

function setMenu(id) {
  const conv = shownConv;
  const before = menuFor;
  menuFor = id;
  deleteArmed = null;
  if (!conv) return;
  for (const which of [before, id]) {
    if (which === null) continue;
    const entry = entryById(conv, which);
    if (entry) refresh({ conv, entry });
  }
}

export function closeMenu() {
  if (menuFor !== null) setMenu(null);
}

/**
 * Draw the open conversation anew. mode: 'bottom' scrolls to the newest; 'anchor' keeps
 * what the reader is looking at; 'keep' stays at the bottom only if it was there.
 */
export function render(conv, mode, pending) {
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const stick = isNearBottom();
  if (conv !== shownConv) {
    menuFor = null;
    deleteArmed = null;
  }
  shownConv = conv;
  clear(messageList);
  nodeOf = new WeakMap();
  dividerNode = null;
  const frag = document.createDocumentFragment();
  for (const entry of conv.entries) frag.appendChild(entryNode(conv, entry));
  messageList.appendChild(frag);
  placeDivider(conv);
  showSeen(conv);
  showPending(pending);
  renderStatus(conv);
  if (mode === 'bottom' || (mode === 'keep' && stick)) scrollToBottom();
  else scroller.scrollTop = scroller.scrollHeight - fromBottom;
}

export function renderStatus(conv) {
  let text = '';
  if (conv.historyError) text = conv.historyError;
  else if (conv.loading || conv.loadingOlder || conv.loadingNewer) text = 'Loading messages…';
  else if (conv.loaded && !conv.hasMore) {
    text = conv.entries.some((e) => e.msg) ? 'This is the beginning of the conversation.' : 'No messages yet. Say hello!';
  }
  setText(historyStatus, text);
}

function pendingNode({ item, error, failed }) {
  const status = failed
    ? h('span', { class: 'msg-status' }, 'Not sent')
    : h('span', { class: 'msg-status' },
      h('span', { class: 'when-online' }, 'Sending…'),
      h('span', { class: 'when-offline' }, 'Waiting for connection…'));
  const node = h('li', {
    class: failed ? 'msg mine pending failed' : 'msg mine pending',
    'data-testid': failed ? 'failed-message' : 'pending-message',
    'data-client-id': item.clientId,
  },
  h('div', { class: 'msg-head' },
    h('span', { class: 'msg-from' }, identity.isSignedIn() ? identity.current().name : 'You'),
    status),
  h('div', { class: 'msg-text', 'data-testid': 'message-text' }, linkify(item.text)),
  h('p', { class: 'msg-error', 'data-testid': 'msg-error', role: 'alert', hidden: !error }, error || ''));
  if (failed) {
    const action = (testid, text, fn) => h('button', {
      type: 'button', class: 'link-button', 'data-testid': testid, on: { click: () => fn(item.clientId) },
    }, text);
    node.appendChild(h('div', { class: 'msg-actions' },
      action('retry-send', 'Try again', handlers.onRetry),
      action('discard-send', 'Discard', handlers.onDiscard)));
  }
  return node;
}

/** pending: [{item, error, failed}] as outbox.pendingIn gives them. */
export function showPending(pending) {
  clear(pendingList);
  for (const p of pending) pendingList.appendChild(pendingNode(p));
}

export function addPending(item, { error = null, failed = false, scroll = false } = {}) {
  pendingList.appendChild(pendingNode({ item, error, failed }));
  if (scroll) scrollToBottom();
}

function pendingNodeFor(clientId) {
  for (const node of pendingList.children) if (node.dataset.clientId === clientId) return node;
  return null;
}

export function removePending(clientId) {
  const node = pendingNodeFor(clientId);
  if (node) node.remove();
}

export function markPendingError({ clientId, text }) {
  const node = pendingNodeFor(clientId);
  if (!node) return;
  const p = node.querySelector('.msg-error');
  setText(p, text);
  p.hidden = false;
}

export function clearAll() {
  clear(messageList);
  clear(pendingList);
  shownConv = null;
  menuFor = null;
}

function onListClick(event) {
  const li = event.target.closest('li.msg');
  if (!li || !li.dataset.id || !shownConv) return;
  const id = Number(li.dataset.id);
  const quote = event.target.closest('.reply-quote');
  if (quote) {
    handlers.onJump(Number(quote.dataset.replyTo));
    return;
  }
  const button = event.target.closest('[data-action]');
  if (!button) return;
  const action = button.dataset.action;
  const entry = entryById(shownConv, id);
  if (!entry) return;
  if (action === 'menu') {
    setMenu(menuFor === id ? null : id);
    if (menuFor === id) {
      const first = messageList.querySelector(`li.msg[data-id="${id}"] .emoji-pick`);
      if (first) first.focus();
    }
  } else if (action === 'toggle-reaction') {
    const emoji = button.dataset.emoji;
    handlers.onReact(id, emoji, button.getAttribute('aria-pressed') !== 'true');
  } else if (action === 'pick-emoji') {
    const emoji = button.dataset.emoji;
    const r = (entry.msg.reactions || []).find((x) => x.emoji === emoji);
    const mine = !!r && (r.names || []).some((n) => identity.isMe(n));
    setMenu(null);
    handlers.onReact(id, emoji, !mine);
  } else if (action === 'reply') {
    setMenu(null);
    handlers.onReply(entry.msg);
  } else if (action === 'edit') {
    setMenu(null);
    handlers.onEdit(entry.msg);
  } else if (action === 'delete') {
    if (deleteArmed !== id) {
      // Deleting cannot be undone: ask for a second click (no dialog).
      deleteArmed = id;
      refresh({ conv: shownConv, entry });
      return;
    }
    setMenu(null);
    handlers.onDelete(entry.msg);
  }
}

function onListSubmit(event) {
  const form = event.target.closest('.emoji-free');
  if (!form) return;
  event.preventDefault();
  const li = form.closest('li.msg');
  const input = form.querySelector('input');
  const emoji = input.value.trim();
  if (!li || !emoji) return;
  setMenu(null);
  handlers.onReact(Number(li.dataset.id), emoji, true);
}

/**
 * onScrollTop() / onScrollBottom(): near an end, older or newer messages are wanted;
 * onRetry/onDiscard(clientId); onJump(id): show message id; onReply(msg), onEdit(msg),
 * onDelete(msg); onReact(id, emoji, on).
 */
export function bind(given) {
  handlers = given;
  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < LOAD_OLDER_FROM_PX) handlers.onScrollTop();
    if (isNearBottom()) handlers.onScrollBottom();
  }, { passive: true });
  messageList.addEventListener('click', onListClick);
  messageList.addEventListener('submit', onListSubmit);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && menuFor !== null) {
      const id = menuFor;
      setMenu(null);
      const again = messageList.querySelector(`li.msg[data-id="${id}"] .msg-menu-button`);
      if (again) again.focus();
    }
  });
}
