// This tab's sends of the open conversation that the server has not confirmed yet, below
// its messages: "Sending…" (or "Waiting for connection…" offline), and the refused ones
// with why, "Try again" and "Discard". outbox.js holds them; this only draws them.

import { byId, h, clear, setText, linkify } from '../dom.js';
import * as identity from '../identity.js';

const pendingList = byId('pending-list');

let handlers = null;

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
export function show(pending) {
  clear(pendingList);
  for (const p of pending) pendingList.appendChild(pendingNode(p));
}

export function add(item, { error = null, failed = false } = {}) {
  pendingList.appendChild(pendingNode({ item, error, failed }));
}

function nodeFor(clientId) {
  for (const node of pendingList.children) if (node.dataset.clientId === clientId) return node;
  return null;
}

export function remove(clientId) {
  const node = nodeFor(clientId);
  if (node) node.remove();
}

export function markError({ clientId, text }) {
  const node = nodeFor(clientId);
  if (!node) return;
  const p = node.querySelector('.msg-error');
  setText(p, text);
  p.hidden = false;
}

export function clearAll() {
  clear(pendingList);
}

/** onRetry(clientId), onDiscard(clientId): the buttons of a refused send. */
export function bind(given) {
  handlers = given;
}
