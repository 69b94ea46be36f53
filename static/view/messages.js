// The open conversation's messages: confirmed ones in id order with notices between them,
// then this tab's pending and refused sends, and the history status line above them all.
// Message text reaches the page only as text nodes and http(s) links (dom.js linkify).

import { byId, h, clear, setText, linkify, formatTime } from '../dom.js';
import * as identity from '../identity.js';

const NEAR_BOTTOM_PX = 80;
const UNDERFILL_SLACK_PX = 40;
const LOAD_OLDER_FROM_PX = 80;

const scroller = byId('scroller');
const historyStatus = byId('history-status');
const messageList = byId('message-list');
const pendingList = byId('pending-list');

let nodeOf = new WeakMap(); // entry -> its <li>, to insert a newer entry before it
let handlers = null;

function isNearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
}

/** The messages do not fill the pane: older ones may be loaded right away. */
export const underfilled = () => scroller.scrollHeight <= scroller.clientHeight + UNDERFILL_SLACK_PX;

function messageNode(m) {
  const when = new Date(m.ts);
  const valid = !Number.isNaN(when.getTime());
  return h('li', {
    class: identity.isMe(m.from) ? 'msg mine' : 'msg',
    'data-testid': 'message',
    'data-id': m.id,
    'data-from': m.from ?? '',
  },
  h('div', { class: 'msg-head' },
    h('span', { class: 'msg-from', 'data-testid': 'message-from' }, m.from ?? '?'),
    h('time', {
      class: 'msg-time',
      datetime: valid ? when.toISOString() : null,
      title: valid ? when.toLocaleString() : null,
    }, formatTime(m.ts))),
  h('div', { class: 'msg-text', 'data-testid': 'message-text' }, linkify(String(m.text ?? ''))));
}

function entryNode(entry) {
  const node = entry.notice !== undefined
    ? h('li', { class: 'notice', 'data-testid': 'notice' }, entry.notice)
    : messageNode(entry.msg);
  nodeOf.set(entry, node);
  return node;
}

/** One new entry of the open conversation, at its place in id order. */
export function insert({ conv, entry, index, forceBottom }) {
  const stick = forceBottom || isNearBottom();
  const next = conv.entries[index + 1];
  const before = next ? nodeOf.get(next) : null;
  messageList.insertBefore(entryNode(entry), before && before.parentNode ? before : null);
  if (entry.msg && historyStatus.textContent) renderStatus(conv);
  if (stick) scrollToBottom();
}

/**
 * Draw the open conversation anew. mode: 'bottom' scrolls to the newest; 'anchor' keeps
 * what the reader is looking at; 'keep' stays at the bottom only if it was there.
 */
export function render(conv, mode, pending) {
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const stick = isNearBottom();
  clear(messageList);
  nodeOf = new WeakMap();
  const frag = document.createDocumentFragment();
  for (const entry of conv.entries) frag.appendChild(entryNode(entry));
  messageList.appendChild(frag);
  showPending(pending);
  renderStatus(conv);
  if (mode === 'bottom' || (mode === 'keep' && stick)) scrollToBottom();
  else scroller.scrollTop = scroller.scrollHeight - fromBottom;
}

export function renderStatus(conv) {
  let text = '';
  if (conv.historyError) text = conv.historyError;
  else if (conv.loading || conv.loadingOlder) text = 'Loading messages…';
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
}

/** onScrollTop(): near the top, older messages are wanted; onRetry/onDiscard(clientId). */
export function bind(given) {
  handlers = given;
  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < LOAD_OLDER_FROM_PX) handlers.onScrollTop();
  }, { passive: true });
}
