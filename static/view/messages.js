// The open conversation's messages: confirmed ones in id order with notices between them,
// then this tab's pending and refused sends (view/pending.js), and the history status line
// above them all. Each message is drawn by view/message.js: its text (view/richtext.js),
// the quote of the message it answers (view/quote.js), its reactions (view/reactions.js)
// and its menu (view/menu.js).
//
// This module keeps the list in order as messages arrive and change (docs/protocol.md §8):
// a changed message, and the replies quoting it, are drawn again in place. A "new messages"
// divider sits before the first unread message, and "Seen" under my last DM message the
// peer has read (§9.1).

import { byId, h, clear, setText, patchElement } from '../dom.js';
import * as identity from '../identity.js';
import * as conversations from '../conversations.js';
import { messageNode } from './message.js';
import * as menu from './menu.js';
import * as pending from './pending.js';

const NEAR_BOTTOM_PX = 80;
const UNDERFILL_SLACK_PX = 40;
const LOAD_OLDER_FROM_PX = 80;
const FLASH_MS = 2000;

const scroller = byId('scroller');
const historyStatus = byId('history-status');
const messageList = byId('message-list');

let nodeOf = new WeakMap(); // entry -> its <li>, to insert a newer entry before it
let handlers = null;
let shownConv = null;       // the conversation drawn
let dividerNode = null;
let seenNode = null;        // "Seen" under my newest DM message the peer read

function isNearBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

export function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
}

/** The messages do not fill the pane: older ones may be loaded right away. */
export const underfilled = () => scroller.scrollHeight <= scroller.clientHeight + UNDERFILL_SLACK_PX;

/** The entry of message `id` in the conversation drawn, or null. */
const shownEntry = (id) => (shownConv ? conversations.findEntry(shownConv, id) : null);

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
  if (seenNode) seenNode.remove();
  seenNode = null;
  if (conv.type !== 'dm' || !conv.peerRead || identity.isMe(conv.peer)) return;
  for (let i = conv.entries.length - 1; i >= 0; i -= 1) {
    const e = conv.entries[i];
    if (!e.msg || e.msg.id > conv.peerRead || !identity.isMe(e.msg.from)) continue;
    const node = nodeOf.get(e);
    if (node) {
      seenNode = h('p', { class: 'msg-seen', 'data-testid': 'seen' }, 'Seen');
      node.appendChild(seenNode);
    }
    return;
  }
}

/**
 * Bring the drawn `node` of `entry` up to date in place rather than replacing it: a message
 * is drawn again whenever someone else reacts to it or edits it, and a button of it (a
 * reaction, the menu) replaced between press and release would lose the click (dom.js).
 */
function redrawEntry(conv, entry, node) {
  patchElement(node, entryNode(conv, entry));
  nodeOf.set(entry, node);
}

/** Draw one message again: it changed in place (docs/protocol.md §8.3), or its menu did. */
export function refresh({ conv, entry }) {
  if (conv !== shownConv) return;
  const node = nodeOf.get(entry);
  if (!node || !node.parentNode) return;
  const focusedAction = node.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  redrawEntry(conv, entry, node);
  if (entry.msg) refreshQuotesOf(conv, entry.msg.id);
  if (conv.type === 'dm') showSeen(conv);
  // The focused control normally stays; one that was redrawn gets its action's focus back.
  if (focusedAction && !node.contains(document.activeElement)) {
    const again = node.querySelector(`[data-action="${CSS.escape(focusedAction)}"]`);
    if (again) again.focus();
  }
}

/** Replies quoting message `id` show its new state. */
function refreshQuotesOf(conv, id) {
  for (const quote of messageList.querySelectorAll(`.reply-quote[data-reply-to="${id}"]`)) {
    const li = quote.closest('li.msg');
    const entry = li ? conversations.findEntry(conv, Number(li.dataset.id)) : null;
    if (entry) redrawEntry(conv, entry, li);
  }
}

/** Draw message `id` of the conversation drawn again (its menu opened or closed). */
function redraw(id) {
  const entry = shownEntry(id);
  if (entry) refresh({ conv: shownConv, entry });
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

/**
 * Draw the open conversation anew. mode: 'bottom' scrolls to the newest; 'anchor' keeps
 * what the reader is looking at; 'keep' stays at the bottom only if it was there.
 */
export function render(conv, mode, pendingSends) {
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const stick = isNearBottom();
  if (conv !== shownConv) menu.forget();
  shownConv = conv;
  clear(messageList);
  nodeOf = new WeakMap();
  dividerNode = null;
  const frag = document.createDocumentFragment();
  for (const entry of conv.entries) frag.appendChild(entryNode(conv, entry));
  messageList.appendChild(frag);
  placeDivider(conv);
  showSeen(conv);
  pending.show(pendingSends);
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

export function clearAll() {
  clear(messageList);
  pending.clearAll();
  shownConv = null;
  menu.forget();
}

function onListClick(event) {
  const li = event.target.closest('li.msg');
  if (!li || !li.dataset.id || !shownConv) return;
  const quote = event.target.closest('.reply-quote');
  if (quote) {
    handlers.onJump(Number(quote.dataset.replyTo));
    return;
  }
  // A reaction chip; the menu's own buttons are view/menu.js's.
  const button = event.target.closest('[data-action="toggle-reaction"]');
  const id = Number(li.dataset.id);
  if (!button || !shownEntry(id)) return;
  handlers.onReact(id, button.dataset.emoji, button.getAttribute('aria-pressed') !== 'true');
}

/**
 * onScrollTop() / onScrollBottom(): near an end, older or newer messages are wanted;
 * onJump(id): show message id; onReply(msg), onEdit(msg), onDelete(msg);
 * onReact(id, emoji, on).
 */
export function bind(given) {
  handlers = given;
  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < LOAD_OLDER_FROM_PX) handlers.onScrollTop();
    if (isNearBottom()) handlers.onScrollBottom();
  }, { passive: true });
  messageList.addEventListener('click', onListClick);
  menu.bind(messageList, {
    entry: shownEntry,
    redraw,
    onReact: handlers.onReact,
    onReply: handlers.onReply,
    onEdit: handlers.onEdit,
    onDelete: handlers.onDelete,
  });
}
