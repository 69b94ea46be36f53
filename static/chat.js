// The open conversation and what arrives while it is open: opening one, drawing what the
// models report, sending from the composer, people and typing coming and going.

import * as conversations from './conversations.js';
import * as identity from './identity.js';
import * as presence from './presence.js';
import * as outbox from './outbox.js';
import * as typing from './typing.js';
import * as history from './history.js';
import * as reading from './reading.js';
import * as safety from './safety.js';
import * as header from './view/header.js';
import * as messages from './view/messages.js';
import * as pending from './view/pending.js';
import * as composer from './view/composer.js';
import * as sidebar from './view/sidebar.js';
import * as status from './view/status.js';
import * as searchView from './view/search.js';
import { ackErrorText } from './errors.js';
import { lower } from './rules.js';

const isOpen = (key) => key === conversations.activeKey();

export function refreshHeader() {
  const conv = conversations.active();
  const title = header.render(conv);
  composer.setPlaceholder(conv.type === 'lobby' ? null : title);
  safety.refresh(); // members and roles, a mute (docs/protocol.md §10)
}

function showMessages(mode) {
  const conv = conversations.active();
  messages.render(conv, mode, outbox.pendingIn(conv.key));
}

function showTyping() {
  composer.showTyping(typing.namesIn(conversations.activeKey()));
}

export function openConversation(key, focusComposer = true) {
  const previous = conversations.active();
  const conv = conversations.open(key);
  composer.switchDraft(previous.key, conv.key);
  if (previous.key !== conv.key) typing.stop();
  header.showError('');
  header.disarmClose();
  refreshHeader();
  showMessages('bottom');
  showTyping();
  sidebar.render();
  sidebar.closeDrawer();
  history.ensureLoaded(conv);
  if (conv.loaded) history.fillViewport(conv);
  reading.viewed();
  if (focusComposer) composer.focus({ preventScroll: true });
}

/**
 * Open conversation `key` at message `id`: loaded around it if it is not held (a reply's
 * quote, a search result: docs/protocol.md §2.5, §9.4), then scrolled to and highlighted.
 */
export async function showMessage(key, id) {
  if (!isOpen(key)) openConversation(key, false);
  const conv = conversations.active();
  if (conv.key !== key) return;
  const held = await history.loadAround(conv, id);
  if (!isOpen(key)) return;
  if (!held || !messages.scrollToMessage(id)) status.toast('That message cannot be shown: it may be gone.');
}

/** A reply's quote was clicked: the message it answers. */
export function jumpToReplied(id) {
  showMessage(conversations.activeKey(), id);
}

/** A search result was picked (docs/protocol.md §9.4). */
export function openSearchResult(m) {
  const conv = conversations.byServerKey(m.conversation);
  if (!conv) {
    status.toast('That conversation is no longer yours to read.');
    return;
  }
  searchView.close();
  showMessage(conv.key, m.id);
}

/** After a reconnect: the open conversation as it is, with what the welcome changed. */
export function refreshOpen() {
  refreshHeader();
  pending.show(outbox.pendingIn(conversations.activeKey()));
  sidebar.render();
}

export function openDm(name) {
  openConversation(conversations.ensureDm(name).key);
}

/** A name typed by hand: spelled as its owner does when they are online. */
export function openDmByName(name) {
  openDm(presence.displayName(name));
}

/** why: said in the conversation's place and as a toast, when given. */
export function removeConversation(key, why) {
  if (!conversations.remove(key)) return;
  typing.forgetConversation(key);
  if (isOpen(key)) {
    openConversation('lobby', false);
    if (why) header.showError(why);
  }
  if (why) status.toast(why);
}

// -- what the models report ------------------------------------------------------------

export function onNewMessage({ conv, message }) {
  if (identity.isMe(message.from) && message.fromSid === identity.ownSid()) outbox.settleEcho(conv.key, message);
  if (message.from) typing.set(conv.key, message.from, false);
}

export function onEntries({ mode }) {
  showMessages(mode);
}

export function onHistoryStatus(conv) {
  if (isOpen(conv.key)) messages.renderStatus(conv);
}

export function onTypingChanged(key) {
  if (key === null || isOpen(key)) showTyping();
}

export function onPresenceChanged() {
  sidebar.schedule();
  refreshHeader();
}

// Online dots and counts live in the header too; a room's header waits for listRooms.
export function onSidebarRendered() {
  if (conversations.active().type !== 'room' || !header.rendered()) refreshHeader();
}

export function onQueued({ item, scroll }) {
  if (!isOpen(item.conv)) return;
  pending.add(item);
  if (scroll) messages.scrollToBottom();
}

export function onSendFailed({ item, error }) {
  if (isOpen(item.conv)) {
    pending.add(item, { error, failed: true });
    return;
  }
  const conv = conversations.get(item.conv);
  const where = conv ? (conv.type === 'lobby' ? 'the lobby' : conv.title) : item.target;
  status.toast(`A message to ${where} was not sent: ${error}`);
}

// -- what the server sends (docs/protocol.md §3) ---------------------------------------

export function onReply(m) {
  conversations.ingest(m, 'live');
}

export function onUserJoined(ev) {
  if (!ev || typeof ev.name !== 'string') return;
  presence.join(ev.name, ev.sid);
}

export function onUserLeft(ev) {
  if (!ev || typeof ev.name !== 'string') return;
  presence.leave(ev.name);
  typing.forgetPerson(ev.name);
}

/** Above PRESENCE_LIMIT, how many are online, at most every 5 s (docs/protocol.md §7). */
export function onOnlineCount(ev) {
  if (ev && typeof ev === 'object') presence.setCount(ev.online);
}

export function onTyping(ev) {
  if (!ev || typeof ev.from !== 'string' || identity.isMe(ev.from)) return;
  const to = String(ev.to ?? '');
  const key = to.startsWith('#') ? lower(to) : `@${lower(ev.from)}`;
  if (!conversations.has(key) && !ev.typing) return;
  typing.set(key, ev.from, !!ev.typing);
}

/** A failure of an event sent without an ack (docs/protocol.md §2.1). */
export function onServerError(ev) {
  if (ev && typeof ev === 'object' && ev.code) status.toast(ackErrorText(ev));
}

// -- what the user does ----------------------------------------------------------------

/** replyTo: the message this one answers (docs/protocol.md §8.2). */
export function send(text, { replyTo = null } = {}) {
  if (!identity.isSignedIn()) return;
  const conv = conversations.active();
  outbox.queue(conv, text, replyTo);
  composer.sent(conv.key);
  typing.stop();
}

export function onComposerInput(text) {
  typing.note(text.trim() ? typing.targetOf(conversations.active()) : null);
}

export function onComposerLeft() {
  typing.stop();
}

export function discardFailed(clientId) {
  outbox.discard(clientId);
  composer.focus();
}

export function loadOlder() {
  history.loadOlder(conversations.active());
}

export function loadNewer() {
  history.loadNewer(conversations.active());
}
