// The chat page. Plain ES module, no framework, no build step.
// Wire protocol: docs in the project README / PROTOCOL.md (Socket.IO v4 client, global `io`).
//
// Rendering rule: user-controlled strings (names, room names, message text) reach the DOM
// only as text nodes (see dom.js); nothing here assigns HTML.

import { h, clear, setText, linkify, codePoints, formatTime } from './dom.js';
import * as store from './storage.js';

const LIMIT = 2000;               // code points per message (server default)
const COUNTER_FROM = 1800;        // show the character counter from here on
const PAGE = 50;                  // history page size when scrolling back
const CATCHUP_PAGE = 100;         // history page size when filling a replay gap
const CATCHUP_MAX_PAGES = 30;     // beyond this backlog (per conversation), reload it from its newest
const ACK_TIMEOUT_MS = 10000;
const RATE_RETRY_MS = 1000;
const TYPING_REPEAT_MS = 3000;    // re-announce "typing" at most this often
const TYPING_IDLE_MS = 4000;      // no keystroke for this long: "stopped typing"
const TYPING_EXPIRE_MS = 7000;    // forget someone's typing state without news
const NEAR_BOTTOM_PX = 80;

const NAME_RE = /^[\p{L}\p{N}_.-]{1,32}$/u;
const ROOM_RE = /^#[\p{L}\p{N}_-]{1,32}$/u;

const CONNECT_ERRORS = {
  invalid_name: {
    field: 'name',
    text: 'Names can be 1 to 32 letters, digits, "_", "-" or ".", and cannot start with "guest-".',
  },
  name_taken: {
    field: 'name',
    text: 'Someone already uses this name. Pick another one, or enter its password if it is yours.',
  },
  bad_password: { field: 'password', text: 'That password is not right for this name.' },
  bad_token: { field: 'form', text: 'Your saved session is no longer valid. Please sign in again.' },
  server_full: { field: 'form', text: 'The chat is full right now. Please try again in a minute.' },
  unavailable: { field: 'form', text: 'The chat is temporarily unavailable. Please try again shortly.' },
};

const ACK_ERRORS = {
  rate_limited: 'You are sending too fast.',
  too_large: `Too long: a message can have at most ${LIMIT} characters.`,
  forbidden: 'You are not allowed to do that here.',
  not_found: 'There is no such room or user.',
  bad_password: 'Wrong password for this private room.',
  invalid_payload: 'The server could not accept this.',
  timeout: 'The server did not answer in time. Please try again.',
  offline: 'You are offline. Please try again once reconnected.',
};

function ackErrorText(error) {
  const code = error && error.code;
  return ACK_ERRORS[code] || (error && error.message) || 'Something went wrong.';
}

// ---------------------------------------------------------------------------------------
// Elements

const $ = (id) => document.getElementById(id);
const ui = {
  banner: $('conn-banner'),
  signinView: $('signin-view'),
  signinForm: $('signin-form'),
  signinName: $('signin-name'),
  signinPassword: $('signin-password'),
  signinSubmit: $('signin-submit'),
  signinNameError: $('signin-name-error'),
  signinPasswordError: $('signin-password-error'),
  signinError: $('signin-error'),
  guestButton: $('guest-button'),
  chatView: $('chat-view'),
  menuToggle: $('menu-toggle'),
  menuUnread: $('menu-unread'),
  meName: $('me-name'),
  signoutButton: $('signout-button'),
  sidebar: $('sidebar'),
  backdrop: $('sidebar-backdrop'),
  lobbyList: $('lobby-list'),
  roomList: $('room-list'),
  roomPanel: $('room-panel'),
  roomForm: $('room-form'),
  roomName: $('room-name'),
  roomPassword: $('room-password'),
  roomNameError: $('room-name-error'),
  roomPasswordError: $('room-password-error'),
  browseRooms: $('browse-rooms'),
  publicRoomList: $('public-room-list'),
  dmList: $('dm-list'),
  dmPanel: $('dm-panel'),
  dmForm: $('dm-form'),
  dmName: $('dm-name'),
  dmNameError: $('dm-name-error'),
  userList: $('user-list'),
  onlineCount: $('online-count'),
  convTitle: $('conv-title'),
  convMeta: $('conv-meta'),
  convError: $('conv-error'),
  leaveRoom: $('leave-room'),
  closeRoom: $('close-room'),
  scroller: $('scroller'),
  historyStatus: $('history-status'),
  messageList: $('message-list'),
  pendingList: $('pending-list'),
  typing: $('typing-indicator'),
  composer: $('composer'),
  input: $('composer-input'),
  counter: $('char-counter'),
  composerError: $('composer-error'),
  toast: $('toast'),
};

// ---------------------------------------------------------------------------------------
// State

const state = {
  socket: null,
  me: null,              // {name, token} of the signed-in identity
  signIn: null,          // a fresh sign-in in progress: {name, password} or {guest: true}
  sid: null,
  ready: false,          // welcomed on the current connection
  gen: 0,                // bumped on every welcome and disconnect
  lastSeen: 0,           // highest message id seen (or known to be covered by history)
  synced: false,         // lastSeen is a real baseline: always send it when reconnecting
  lastIdSent: null,      // lastId given in the current connection's auth
  convs: new Map(),      // key -> conversation ('lobby', '#room', '@peer', all lower-case)
  active: 'lobby',
  users: new Map(),      // lower-case name -> {name, sids: Set}
  outbox: new Map(),     // clientId -> item, not yet acknowledged (mirrors localStorage)
  failed: new Map(),     // clientId -> {item, error}, refused by the server
  inflight: null,        // clientId of the send awaiting its ack
  pumpTimer: null,
  drafts: new Map(),
  typingIn: new Map(),   // conv key -> Map(lower name -> {name, timer})
  typingOut: { to: null, sentAt: 0, idle: null },
  reconnectTimer: null,
  nodeOf: new WeakMap(), // entry -> rendered <li> for the open conversation
  sidebarTimer: null,
  roomsTimer: null,
  toastTimer: null,
  closeArmed: null,
};

const lower = (s) => String(s ?? '').toLowerCase();
const isMe = (name) => !!state.me && lower(name) === lower(state.me.name);
const isGuestName = (name) => lower(name).startsWith('guest-');

function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---------------------------------------------------------------------------------------
// Conversations

function makeConv(key, type, fields = {}) {
  return {
    key,
    type,                 // 'lobby' | 'room' | 'dm'
    title: '',
    peer: null,           // dm: the other party's name
    info: null,           // room: ROOM_INFO
    members: null,        // room: member names, when known
    entries: [],          // sorted by sk: {sk, msg} or {sk, notice}
    ids: new Set(),
    maxId: 0,
    noticeSeq: 0,
    unread: 0,
    loaded: false,
    loading: false,
    hasMore: true,
    loadingOlder: false,
    historyError: '',
    ...fields,
  };
}

function resetConversations() {
  state.convs = new Map([['lobby', makeConv('lobby', 'lobby', { title: 'Lobby' })]]);
  state.users = new Map();
  state.outbox = new Map();
  state.failed = new Map();
  state.drafts = new Map();
  for (const map of state.typingIn.values()) for (const t of map.values()) clearTimeout(t.timer);
  state.typingIn = new Map();
  state.lastSeen = 0;
  state.synced = false;
  state.active = 'lobby';
}

const activeConv = () => state.convs.get(state.active) || state.convs.get('lobby');

function ensureRoom(info) {
  const key = lower(info.room);
  let conv = state.convs.get(key);
  if (!conv) {
    conv = makeConv(key, 'room', { title: info.room });
    state.convs.set(key, conv);
  }
  conv.info = { ...(conv.info || {}), ...info };
  if (info.room) conv.title = info.room;
  return conv;
}

function displayName(name) {
  const u = state.users.get(lower(name));
  return u ? u.name : name;
}

function ensureDm(peer) {
  const key = `@${lower(peer)}`;
  let conv = state.convs.get(key);
  if (!conv) {
    conv = makeConv(key, 'dm', { peer, title: peer });
    state.convs.set(key, conv);
  } else if (peer !== lower(peer) && conv.peer === lower(conv.peer)) {
    // A better-cased spelling (from a message or the user list) replaces a lower-case key.
    conv.peer = peer;
    conv.title = peer;
  }
  return conv;
}

/** The DM peer named by a server conversation key 'dm:a:b' (lower-case). */
function peerFromDmKey(serverKey) {
  const parts = String(serverKey).split(':').slice(1);
  if (parts.length !== 2) return null;
  const me = lower(state.me.name);
  if (parts[0] !== me) return parts[0];
  return parts[1];
}

function convForServerKey(serverKey, create) {
  const k = lower(serverKey);
  if (k === 'lobby') return state.convs.get('lobby');
  if (k.startsWith('#')) {
    const conv = state.convs.get(k);
    if (conv || !create) return conv || null;
    return ensureRoom({ room: serverKey });
  }
  if (k.startsWith('dm:')) {
    const peer = peerFromDmKey(k);
    return peer ? ensureDm(displayName(peer)) : null;
  }
  return null;
}

function convForMessage(m) {
  const c = lower(m.conversation);
  if (c === 'lobby' || m.kind === 'broadcast') return state.convs.get('lobby');
  if (c.startsWith('#')) {
    const shown = typeof m.to === 'string' && lower(m.to) === c ? m.to : m.conversation;
    return state.convs.get(c) || ensureRoom({ room: shown });
  }
  // Direct: the other party, in the spelling the server gave.
  let peer = null;
  if (m.from && !isMe(m.from)) peer = m.from;
  else if (typeof m.to === 'string' && m.to && !isMe(m.to) && !m.to.startsWith('#')) peer = m.to;
  else if (c.startsWith('dm:')) peer = displayName(peerFromDmKey(c) || state.me.name);
  if (!peer || isMe(peer)) peer = state.me.name;
  return ensureDm(peer);
}

function historyParam(conv) {
  if (conv.type === 'lobby') return 'lobby';
  if (conv.type === 'room') return conv.title;
  return conv.peer;
}

function insertEntry(conv, entry) {
  const list = conv.entries;
  if (!list.length || list[list.length - 1].sk < entry.sk) {
    list.push(entry);
    return list.length - 1;
  }
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].sk < entry.sk) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, entry);
  return lo;
}

function bumpLastId(id) {
  if (id > state.lastSeen) {
    state.lastSeen = id;
    if (state.me) store.saveLastId(state.me.name, id); // keeps the highest of all tabs
  }
}

/**
 * Take one MESSAGE into memory (deduplicated by id).
 * source: 'live' (reply event), 'own' (our ack), 'history', 'missed' (gap fill).
 * Returns {conv, entry, index} when new, else null.
 */
function ingest(m, source, render = true) {
  if (!m || typeof m !== 'object' || !Number.isSafeInteger(m.id) || !state.me) return null;
  bumpLastId(m.id);
  const conv = convForMessage(m);
  if (!conv || conv.ids.has(m.id)) return null;
  conv.ids.add(m.id);
  if (m.id > conv.maxId) conv.maxId = m.id;
  const entry = { sk: m.id, msg: m };
  const index = insertEntry(conv, entry);
  const mine = isMe(m.from);
  if (mine && m.fromSid === state.sid) settleEcho(conv, m);
  if (m.from) setTyping(conv.key, m.from, false);
  const open = conv.key === state.active && !ui.chatView.hidden;
  if (open) {
    if (render) renderInsert(conv, index, entry, mine || source === 'own');
  } else if (!mine && (source === 'live' || source === 'missed')) {
    conv.unread += 1;
  }
  scheduleSidebar();
  return { conv, entry, index };
}

function ingestBatch(messages, source, mode) {
  if (!Array.isArray(messages)) return;
  let touchedActive = false;
  for (const m of messages) {
    const r = ingest(m, source, false);
    if (r && r.conv.key === state.active) touchedActive = true;
  }
  if (touchedActive && !ui.chatView.hidden) renderMessages(mode);
}

function addNotice(conv, text) {
  conv.noticeSeq += 1;
  const entry = { sk: conv.maxId + conv.noticeSeq / 1e6, notice: text, ts: Date.now() };
  const index = insertEntry(conv, entry);
  if (conv.key === state.active && !ui.chatView.hidden) renderInsert(conv, index, entry, false);
}

function removeConv(key, why) {
  const conv = state.convs.get(key);
  if (!conv || conv.type === 'lobby') return;
  state.convs.delete(key);
  state.typingIn.delete(key);
  if (state.active === key) {
    openConversation('lobby', false);
    if (why) showConvError(why);
  }
  if (why) toast(why);
  scheduleSidebar();
}

// ---------------------------------------------------------------------------------------
// Rendering: the open conversation

function isNearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

function entryNode(entry) {
  let node;
  if (entry.notice !== undefined) {
    node = h('li', { class: 'notice', 'data-testid': 'notice' }, entry.notice);
  } else {
    const m = entry.msg;
    const mine = isMe(m.from);
    const when = new Date(m.ts);
    node = h('li', {
      class: mine ? 'msg mine' : 'msg',
      'data-testid': 'message',
      'data-id': m.id,
      'data-from': m.from ?? '',
    },
    h('div', { class: 'msg-head' },
      h('span', { class: 'msg-from', 'data-testid': 'message-from' }, m.from ?? '?'),
      h('time', {
        class: 'msg-time',
        datetime: Number.isNaN(when.getTime()) ? null : when.toISOString(),
        title: Number.isNaN(when.getTime()) ? null : when.toLocaleString(),
      }, formatTime(m.ts))),
    h('div', { class: 'msg-text', 'data-testid': 'message-text' }, linkify(String(m.text ?? ''))));
  }
  state.nodeOf.set(entry, node);
  return node;
}

function renderInsert(conv, index, entry, forceBottom) {
  const stick = forceBottom || isNearBottom();
  const next = conv.entries[index + 1];
  const before = next ? state.nodeOf.get(next) : null;
  ui.messageList.insertBefore(entryNode(entry), before && before.parentNode ? before : null);
  if (entry.msg && ui.historyStatus.textContent) renderHistoryStatus();
  if (stick) scrollToBottom();
}

/** mode: 'bottom' scrolls to the newest; 'anchor' keeps what the reader is looking at. */
function renderMessages(mode = 'bottom') {
  const conv = activeConv();
  const fromBottom = ui.scroller.scrollHeight - ui.scroller.scrollTop;
  const stick = isNearBottom();
  clear(ui.messageList);
  state.nodeOf = new WeakMap();
  const frag = document.createDocumentFragment();
  for (const entry of conv.entries) frag.appendChild(entryNode(entry));
  ui.messageList.appendChild(frag);
  renderPending();
  renderHistoryStatus();
  if (mode === 'bottom' || (mode === 'keep' && stick)) scrollToBottom();
  else ui.scroller.scrollTop = ui.scroller.scrollHeight - fromBottom;
}

function pendingNode(item, error, failed) {
  const node = h('li', {
    class: failed ? 'msg mine pending failed' : 'msg mine pending',
    'data-testid': failed ? 'failed-message' : 'pending-message',
    'data-client-id': item.clientId,
  },
  h('div', { class: 'msg-head' },
    h('span', { class: 'msg-from' }, state.me ? state.me.name : 'You'),
    failed
      ? h('span', { class: 'msg-status' }, 'Not sent')
      : h('span', { class: 'msg-status' },
        h('span', { class: 'when-online' }, 'Sending…'),
        h('span', { class: 'when-offline' }, 'Waiting for connection…'))),
  h('div', { class: 'msg-text', 'data-testid': 'message-text' }, linkify(item.text)),
  h('p', { class: 'msg-error', 'data-testid': 'msg-error', role: 'alert', hidden: !error }, error || ''));
  if (failed) {
    node.appendChild(h('div', { class: 'msg-actions' },
      h('button', {
        type: 'button', class: 'link-button', 'data-testid': 'retry-send',
        on: { click: () => retryFailed(item.clientId) },
      }, 'Try again'),
      h('button', {
        type: 'button', class: 'link-button', 'data-testid': 'discard-send',
        on: { click: () => discardFailed(item.clientId) },
      }, 'Discard')));
  }
  return node;
}

function renderPending() {
  clear(ui.pendingList);
  const key = state.active;
  for (const item of sortedOutbox()) {
    if (item.conv === key && !item.echoId) ui.pendingList.appendChild(pendingNode(item, item.error));
  }
  for (const { item, error } of state.failed.values()) {
    if (item.conv === key) ui.pendingList.appendChild(pendingNode(item, error, true));
  }
}

function pendingNodeFor(clientId) {
  for (const node of ui.pendingList.children) if (node.dataset.clientId === clientId) return node;
  return null;
}

function renderHistoryStatus() {
  const conv = activeConv();
  let text = '';
  if (conv.historyError) text = conv.historyError;
  else if (conv.loading || conv.loadingOlder) text = 'Loading messages…';
  else if (conv.loaded && !conv.hasMore) {
    text = conv.entries.some((e) => e.msg) ? 'This is the beginning of the conversation.' : 'No messages yet. Say hello!';
  }
  setText(ui.historyStatus, text);
}

function renderHeader() {
  const conv = activeConv();
  let title;
  let meta;
  if (conv.type === 'lobby') {
    title = 'Lobby';
    meta = `Everyone · ${state.users.size} online`;
  } else if (conv.type === 'room') {
    title = conv.title;
    const info = conv.info || {};
    const bits = [info.private ? 'Private room' : 'Public room'];
    if (Number.isInteger(info.members)) bits.push(`${info.members} member${info.members === 1 ? '' : 's'}`);
    if (info.owner) bits.push(isMe(info.owner) ? 'you are the owner' : `owner ${info.owner}`);
    meta = bits.join(' · ');
  } else {
    title = isMe(conv.peer) ? `${conv.peer} (you)` : conv.peer;
    const online = state.users.has(lower(conv.peer));
    meta = isMe(conv.peer) ? 'Notes to yourself'
      : online ? 'Online' : 'Offline: they will see your messages when they come back';
  }
  setText(ui.convTitle, title);
  setText(ui.convMeta, meta);
  ui.input.placeholder = conv.type === 'lobby' ? 'Message everyone…' : `Message ${title}…`;
  const isRoom = conv.type === 'room';
  ui.leaveRoom.hidden = !isRoom;
  ui.closeRoom.hidden = !(isRoom && conv.info && isMe(conv.info.owner));
}

function renderConversation() {
  renderHeader();
  renderMessages('bottom');
  renderTyping();
}

function showConvError(text) {
  setText(ui.convError, text || '');
}

// ---------------------------------------------------------------------------------------
// Rendering: sidebar

function scheduleSidebar() {
  if (state.sidebarTimer) return;
  state.sidebarTimer = setTimeout(() => {
    state.sidebarTimer = null;
    renderSidebar();
  }, 0);
}

function convButton(conv) {
  const active = conv.key === state.active;
  const label = conv.type === 'lobby' ? 'Lobby'
    : conv.type === 'dm' && isMe(conv.peer) ? `${conv.peer} (you)` : conv.title;
  const button = h('button', {
    type: 'button',
    class: active ? 'conv-btn active' : 'conv-btn',
    'data-testid': `conv-${conv.key}`,
    'data-conv': conv.key,
    'aria-current': active ? 'true' : null,
  });
  if (conv.type === 'dm') {
    const online = state.users.has(lower(conv.peer));
    button.appendChild(h('span', { class: online ? 'dot online' : 'dot', 'aria-hidden': 'true' }));
  }
  button.appendChild(h('span', { class: 'conv-name' }, label));
  if (conv.type === 'room' && conv.info && conv.info.private) {
    button.appendChild(h('span', { class: 'tag' }, 'private'));
  }
  if (conv.unread > 0 && !active) {
    button.appendChild(h('span', { class: 'badge', 'data-testid': `unread-${conv.key}`, 'aria-hidden': 'true' },
      conv.unread > 99 ? '99+' : String(conv.unread)));
    button.appendChild(h('span', { class: 'visually-hidden' }, `, ${conv.unread} unread`));
  }
  return h('li', {}, button);
}

function renderSidebar() {
  if (ui.chatView.hidden) return;
  // Re-rendering replaces buttons: keep keyboard focus where it was.
  const focused = document.activeElement;
  const focusId = focused && ui.sidebar.contains(focused) ? focused.getAttribute('data-testid') : null;

  const convs = [...state.convs.values()];
  clear(ui.lobbyList);
  ui.lobbyList.appendChild(convButton(state.convs.get('lobby')));

  clear(ui.roomList);
  const rooms = convs.filter((c) => c.type === 'room').sort((a, b) => lower(a.title).localeCompare(lower(b.title)));
  for (const conv of rooms) ui.roomList.appendChild(convButton(conv));
  if (!rooms.length) ui.roomList.appendChild(h('li', { class: 'empty' }, 'No rooms yet.'));

  clear(ui.dmList);
  const dms = convs.filter((c) => c.type === 'dm').sort((a, b) => b.maxId - a.maxId || lower(a.peer).localeCompare(lower(b.peer)));
  for (const conv of dms) ui.dmList.appendChild(convButton(conv));
  if (!dms.length) ui.dmList.appendChild(h('li', { class: 'empty' }, 'Pick someone below to start.'));

  clear(ui.userList);
  const users = [...state.users.values()].sort((a, b) => {
    if (isMe(a.name) !== isMe(b.name)) return isMe(a.name) ? -1 : 1;
    return lower(a.name).localeCompare(lower(b.name));
  });
  for (const u of users) {
    ui.userList.appendChild(h('li', {},
      h('button', {
        type: 'button',
        class: 'user-btn',
        'data-testid': `user-${lower(u.name)}`,
        'data-name': u.name,
        title: isMe(u.name) ? 'Notes to yourself' : `Message ${u.name}`,
      },
      h('span', { class: 'dot online', 'aria-hidden': 'true' }),
      h('span', { class: 'conv-name' }, u.name),
      isMe(u.name) ? h('span', { class: 'tag' }, 'you') : null,
      h('span', { class: 'visually-hidden' }, isMe(u.name) ? ': notes to yourself' : ': send a direct message'))));
  }
  setText(ui.onlineCount, `(${state.users.size})`);

  const total = convs.reduce((n, c) => n + (c.key === state.active ? 0 : c.unread), 0);
  ui.menuUnread.hidden = total === 0;
  setText(ui.menuUnread, total > 99 ? '99+' : String(total));
  document.title = total ? `(${total}) Chat` : 'Chat';

  if (activeConv().type !== 'room') renderHeader();
  else if (ui.convMeta.textContent === '') renderHeader();

  if (focusId) {
    const again = ui.sidebar.querySelector(`[data-testid="${CSS.escape(focusId)}"]`);
    if (again) again.focus();
  }
}

function renderUsersChanged() {
  scheduleSidebar();
  renderHeader();
}

// ---------------------------------------------------------------------------------------
// Typing

function setTyping(convKey, name, on) {
  let map = state.typingIn.get(convKey);
  const k = lower(name);
  if (!on) {
    if (!map || !map.has(k)) return;
    clearTimeout(map.get(k).timer);
    map.delete(k);
  } else {
    if (!map) {
      map = new Map();
      state.typingIn.set(convKey, map);
    }
    const old = map.get(k);
    if (old) clearTimeout(old.timer);
    map.set(k, { name, timer: setTimeout(() => setTyping(convKey, name, false), TYPING_EXPIRE_MS) });
  }
  if (convKey === state.active) renderTyping();
}

function renderTyping() {
  const map = state.typingIn.get(state.active);
  const names = map ? [...map.values()].map((t) => t.name) : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  setText(ui.typing, text);
}

function typingTarget(conv) {
  if (conv.type === 'room') return conv.title;
  if (conv.type === 'dm' && !isMe(conv.peer)) return conv.peer;
  return null;
}

function sendTyping(to, typing) {
  if (!state.ready || !to) return;
  state.socket.emit('typing', { to, typing }, () => {});
}

function noteTyping() {
  const out = state.typingOut;
  const to = typingTarget(activeConv());
  if (!ui.input.value.trim() || !to) {
    stopTyping();
    return;
  }
  const now = Date.now();
  if (out.to !== to) {
    stopTyping();
  }
  if (out.to !== to || now - out.sentAt >= TYPING_REPEAT_MS) {
    sendTyping(to, true);
    out.to = to;
    out.sentAt = now;
  }
  clearTimeout(out.idle);
  out.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  const out = state.typingOut;
  clearTimeout(out.idle);
  out.idle = null;
  if (out.to) sendTyping(out.to, false);
  out.to = null;
  out.sentAt = 0;
}

// ---------------------------------------------------------------------------------------
// Sending: a persistent, ordered outbox, one send in flight at a time

function sortedOutbox() {
  return [...state.outbox.values()].sort((a, b) => a.seq - b.seq);
}

let seqCounter = 0;

function queueSend(conv, text) {
  const item = {
    clientId: newClientId(),
    conv: conv.key,
    type: conv.type,
    target: conv.type === 'room' ? conv.title : conv.type === 'dm' ? conv.peer : null,
    text,
    seq: Date.now() * 1000 + (seqCounter++ % 1000),
  };
  state.outbox.set(item.clientId, item);
  store.addToOutbox(state.me.name, item);
  if (item.conv === state.active) {
    ui.pendingList.appendChild(pendingNode(item));
    scrollToBottom();
  }
  pump();
}

/** Take in sends other tabs (or an earlier page) left unacknowledged. */
function loadOutbox() {
  if (!state.me) return;
  for (const item of store.loadOutbox(state.me.name)) {
    if (state.outbox.has(item.clientId)) continue;
    state.outbox.set(item.clientId, { ...item, echoId: null, error: null });
    if (item.type === 'dm' && item.target) ensureDm(item.target);
  }
}

function pump() {
  if (!state.ready || state.inflight || state.pumpTimer) return;
  const item = sortedOutbox()[0];
  if (!item) return;
  const gen = state.gen;
  state.inflight = item.clientId;
  const [event, payload] = item.type === 'lobby'
    ? ['message', { text: item.text, clientId: item.clientId }]
    : ['sendMessage', { content: item.text, destId: item.target, clientId: item.clientId }];
  state.socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (err, res) => {
    if (gen !== state.gen) return; // that connection is gone; the next one resends from the head
    state.inflight = null;
    if (err || !res || typeof res !== 'object') {
      // No answer: try the same send again (the clientId makes it idempotent).
      retryLater(RATE_RETRY_MS);
      return;
    }
    if (res.ok) {
      settleSent(item, res.message);
      pump();
      return;
    }
    const code = res.error && res.error.code;
    if (code === 'rate_limited') {
      markPendingError(item, `${ackErrorText(res.error)} Retrying…`);
      retryLater(RATE_RETRY_MS);
      return;
    }
    failSend(item, ackErrorText(res.error));
    pump();
  });
}

function retryLater(ms) {
  clearTimeout(state.pumpTimer);
  state.pumpTimer = setTimeout(() => {
    state.pumpTimer = null;
    pump();
  }, ms);
}

function dropFromOutbox(item) {
  state.outbox.delete(item.clientId);
  if (state.me) store.removeFromOutbox(state.me.name, item.clientId);
  const node = pendingNodeFor(item.clientId);
  if (node) node.remove();
}

function settleSent(item, message) {
  dropFromOutbox(item);
  if (message) ingest(message, 'own');
}

function markPendingError(item, text) {
  item.error = text;
  const node = pendingNodeFor(item.clientId);
  if (!node) return;
  const p = node.querySelector('.msg-error');
  setText(p, text);
  p.hidden = false;
}

function failSend(item, error) {
  dropFromOutbox(item);
  state.failed.set(item.clientId, { item, error });
  if (item.conv === state.active) {
    ui.pendingList.appendChild(pendingNode(item, error, true));
  } else {
    const conv = state.convs.get(item.conv);
    toast(`A message to ${conv ? (conv.type === 'lobby' ? 'the lobby' : conv.title) : item.target} was not sent: ${error}`);
  }
}

function retryFailed(clientId) {
  const failed = state.failed.get(clientId);
  if (!failed) return;
  state.failed.delete(clientId);
  const node = pendingNodeFor(clientId);
  if (node) node.remove();
  const item = { ...failed.item, error: null, echoId: null, seq: Date.now() * 1000 + (seqCounter++ % 1000) };
  state.outbox.set(item.clientId, item);
  store.addToOutbox(state.me.name, item);
  if (item.conv === state.active) ui.pendingList.appendChild(pendingNode(item));
  pump();
}

function discardFailed(clientId) {
  state.failed.delete(clientId);
  const node = pendingNodeFor(clientId);
  if (node) node.remove();
  ui.input.focus();
}

/** Our own message came back as a broadcast before its ack: stop showing it as pending. */
function settleEcho(conv, m) {
  for (const item of sortedOutbox()) {
    if (item.conv === conv.key && !item.echoId && item.text === m.text) {
      item.echoId = m.id;
      const node = pendingNodeFor(item.clientId);
      if (node) node.remove();
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Requests

function call(event, payload) {
  return new Promise((resolve) => {
    if (!state.socket || !state.ready) {
      resolve({ ok: false, error: { code: 'offline', message: 'Not connected.' } });
      return;
    }
    const args = payload === undefined ? [] : [payload];
    state.socket.timeout(ACK_TIMEOUT_MS).emit(event, ...args, (err, res) => {
      if (err) resolve({ ok: false, error: { code: 'timeout', message: 'No answer.' } });
      else if (!res || typeof res !== 'object') {
        resolve({ ok: false, error: { code: 'invalid_response', message: 'Unexpected answer from the server.' } });
      } else resolve(res);
    });
  });
}

async function ensureLoaded(conv) {
  if (conv.loaded || conv.loading || !state.ready) return;
  conv.loading = true;
  conv.historyError = '';
  if (conv.key === state.active) renderHistoryStatus();
  const res = await call('history', { conversation: historyParam(conv), limit: PAGE });
  conv.loading = false;
  if (!res.ok) {
    const code = res.error && res.error.code;
    if (code === 'not_found' && conv.type === 'dm') {
      conv.loaded = true;
      conv.hasMore = false;
    } else if (code !== 'offline' && code !== 'timeout') {
      conv.historyError = `Could not load messages: ${ackErrorText(res.error)}`;
    }
    if (conv.key === state.active) renderHistoryStatus();
    return;
  }
  const messages = Array.isArray(res.messages) ? res.messages : [];
  conv.loaded = true;
  conv.hasMore = messages.length >= PAGE;
  ingestBatch(messages, 'history', 'bottom');
  if (conv.key === state.active) {
    renderHistoryStatus();
    fillViewport(conv);
  }
}

async function loadOlder(conv) {
  if (!conv.loaded || !conv.hasMore || conv.loadingOlder || !state.ready) return;
  const oldest = conv.entries.find((e) => e.msg);
  if (!oldest) {
    conv.hasMore = false;
    renderHistoryStatus();
    return;
  }
  conv.loadingOlder = true;
  if (conv.key === state.active) renderHistoryStatus();
  const res = await call('history', { conversation: historyParam(conv), before: oldest.msg.id, limit: PAGE });
  conv.loadingOlder = false;
  if (res.ok) {
    const messages = Array.isArray(res.messages) ? res.messages : [];
    conv.hasMore = messages.length >= PAGE;
    ingestBatch(messages, 'history', 'anchor');
  }
  if (conv.key === state.active) renderHistoryStatus();
}

/** Keep loading older pages while the open conversation does not fill the pane. */
async function fillViewport(conv) {
  for (let i = 0; i < 20; i += 1) {
    if (conv.key !== state.active || !conv.hasMore || !conv.loaded) return;
    const s = ui.scroller;
    if (s.scrollHeight > s.clientHeight + 40) return;
    await loadOlder(conv);
  }
}

/** Replay stopped early: fetch every conversation's messages after `after`, page by page. */
async function catchUp(after) {
  const gen = state.gen;
  for (const conv of [...state.convs.values()]) {
    let cursor = after;
    for (let page = 1; ; page += 1) {
      if (gen !== state.gen) return; // reconnected meanwhile: that welcome decides again
      if (page > CATCHUP_MAX_PAGES) {
        // Too much to hold: keep the unread count, drop the partial backlog, and load
        // the conversation from its newest messages (older ones on scrolling up).
        dropLoadedMessages(conv);
        break;
      }
      const res = await call('history', { conversation: historyParam(conv), after: cursor, limit: CATCHUP_PAGE });
      if (!res.ok || !Array.isArray(res.messages)) break;
      ingestBatch(res.messages, 'missed', 'keep');
      if (res.messages.length < CATCHUP_PAGE) break;
      cursor = res.messages[res.messages.length - 1].id;
    }
  }
}

function dropLoadedMessages(conv) {
  conv.entries = [];
  conv.ids = new Set();
  conv.loaded = false;
  conv.hasMore = true;
  if (conv.key === state.active && !ui.chatView.hidden) {
    renderMessages('bottom');
    ensureLoaded(conv);
  }
}

function refreshRooms() {
  clearTimeout(state.roomsTimer);
  state.roomsTimer = setTimeout(async () => {
    const res = await call('listRooms');
    if (!res.ok || !Array.isArray(res.rooms)) return;
    for (const info of res.rooms) {
      const conv = state.convs.get(lower(info.room));
      if (conv && conv.type === 'room') conv.info = { ...(conv.info || {}), ...info };
    }
    if (ui.publicRoomList.childElementCount) renderPublicRooms(res.rooms);
    if (activeConv().type === 'room') renderHeader();
    scheduleSidebar();
  }, 200);
}

// ---------------------------------------------------------------------------------------
// Opening conversations

function openConversation(key, focusComposer = true) {
  if (!state.convs.has(key)) key = 'lobby';
  const previous = activeConv();
  if (previous) state.drafts.set(previous.key, ui.input.value);
  if (previous && previous.key !== key) stopTyping();
  state.active = key;
  store.saveActive(key);
  const conv = activeConv();
  conv.unread = 0;
  showConvError('');
  disarmClose();
  setText(ui.composerError, '');
  ui.input.value = state.drafts.get(key) || '';
  updateComposer();
  renderConversation();
  renderSidebar();
  closeDrawer();
  ensureLoaded(conv);
  if (conv.loaded) fillViewport(conv);
  if (focusComposer) ui.input.focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------------------
// Connection

function setBanner(kind, text) {
  document.body.dataset.conn = kind === 'online' ? 'online' : 'offline';
  ui.banner.dataset.state = kind;
  if (kind === 'online') {
    ui.banner.hidden = true;
    setText(ui.banner, '');
    return;
  }
  setText(ui.banner, text);
  ui.banner.hidden = false;
}

function auth(cb) {
  if (state.me && state.me.token) {
    const data = { token: state.me.token };
    // A tab already in sync sends what *it* has seen (even 0: "nothing existed yet"), so
    // a message stored just before a disconnection but never delivered is replayed. The
    // stored value, which other tabs of this identity also advance, is only for a fresh page.
    const stored = store.loadLastId(state.me.name);
    if (state.synced) data.lastId = state.lastSeen;
    else if (stored !== null) data.lastId = stored;
    state.lastIdSent = data.lastId ?? null;
    cb(data);
    return;
  }
  state.lastIdSent = null;
  if (state.signIn && state.signIn.name) {
    const data = { name: state.signIn.name };
    if (state.signIn.password) data.password = state.signIn.password;
    const last = store.loadLastId(state.signIn.name);
    if (last !== null) {
      data.lastId = last;
      state.lastIdSent = last;
    }
    cb(data);
    return;
  }
  cb(); // a guest connects with no auth at all
}

function connect() {
  if (typeof window.io !== 'function') {
    const text = 'The chat library did not load. Please reload the page.';
    if (state.me) setBanner('offline', text);
    else setText(ui.signinError, text);
    return;
  }
  clearTimeout(state.reconnectTimer);
  if (!state.socket) {
    state.socket = window.io({
      autoConnect: false,
      auth,
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
      timeout: 8000,
    });
    bindSocket(state.socket);
  }
  if (!state.socket.connected) state.socket.connect();
}

function scheduleReconnect(ms) {
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(() => {
    if (state.me && state.socket && !state.socket.connected) state.socket.connect();
  }, ms);
}

function bindSocket(socket) {
  socket.on('welcome', onWelcome);
  socket.on('reply', (m) => ingest(m, 'live'));
  socket.on('connect_error', onConnectError);
  socket.on('disconnect', onDisconnect);
  socket.on('addChat', (ev) => {
    if (!ev || typeof ev.name !== 'string') return;
    const k = lower(ev.name);
    const u = state.users.get(k) || { name: ev.name, sids: new Set() };
    if (ev.sid) u.sids.add(ev.sid);
    state.users.set(k, u);
    renderUsersChanged();
  });
  socket.on('userLeft', (ev) => {
    if (!ev || typeof ev.name !== 'string') return;
    state.users.delete(lower(ev.name));
    for (const key of state.typingIn.keys()) setTyping(key, ev.name, false);
    renderUsersChanged();
  });
  socket.on('typing', (ev) => {
    if (!ev || typeof ev.from !== 'string' || isMe(ev.from)) return;
    const to = String(ev.to ?? '');
    const key = to.startsWith('#') ? lower(to) : `@${lower(ev.from)}`;
    if (!state.convs.has(key) && !ev.typing) return;
    setTyping(key, ev.from, !!ev.typing);
  });
  socket.on('roomEvent', onRoomEvent);
  socket.on('error', (ev) => {
    if (ev && typeof ev === 'object' && ev.code) toast(ackErrorText(ev));
  });
  socket.io.on('reconnect_attempt', (n) => {
    if (state.me) setBanner('reconnecting', `Connection lost. Reconnecting… (attempt ${n})`);
  });
}

function onWelcome(w) {
  if (!w || typeof w !== 'object' || typeof w.name !== 'string') return;
  const firstShow = ui.chatView.hidden;
  const sameUser = state.me && isMe(w.name);
  if (!sameUser) resetConversations();
  state.me = { name: w.name, token: typeof w.token === 'string' ? w.token : (state.me && state.me.token) };
  store.saveIdentity(state.me);
  state.signIn = null;
  ui.signinPassword.value = '';
  setSigninBusy(false);
  state.sid = w.sid ?? null;
  state.gen += 1;
  state.ready = true;
  state.inflight = null;
  clearTimeout(state.pumpTimer);
  state.pumpTimer = null;
  if (!state.synced && state.lastIdSent !== null) state.lastSeen = Math.max(state.lastSeen, state.lastIdSent);

  state.users = new Map();
  for (const u of Array.isArray(w.users) ? w.users : []) {
    if (u && typeof u.name === 'string') state.users.set(lower(u.name), { name: u.name, sids: new Set(u.sids || []) });
  }

  // Rooms: exactly the ones this identity is in now.
  const rooms = Array.isArray(w.rooms) ? w.rooms : [];
  const keep = new Set();
  for (const info of rooms) {
    if (info && typeof info.room === 'string') keep.add(ensureRoom(info).key);
  }
  for (const conv of [...state.convs.values()]) {
    if (conv.type === 'room' && !keep.has(conv.key)) {
      removeConv(conv.key, `You are no longer in ${conv.title}.`);
    }
  }
  let newest = 0;
  for (const c of Array.isArray(w.conversations) ? w.conversations : []) {
    if (!c || !Number.isSafeInteger(c.lastId)) continue;
    newest = Math.max(newest, c.lastId);
    const conv = convForServerKey(c.conversation, false);
    if (conv && c.lastId > conv.maxId) conv.maxId = c.lastId;
  }
  if (state.lastIdSent === null) {
    // No replay was asked for: everything up to now is reachable through `history`, and
    // everything newer arrives live or by replay. That is the baseline for reconnecting.
    state.lastSeen = Math.max(state.lastSeen, newest);
    store.saveLastId(w.name, state.lastSeen);
  }
  state.synced = true;

  loadOutbox();
  showChat();
  setBanner('online');
  if (!state.convs.has(state.active)) state.active = 'lobby';
  if (firstShow || !sameUser) openConversation(state.active, false);
  else {
    renderHeader();
    renderPending();
    renderSidebar();
  }
  ensureLoaded(activeConv());
  pump();
  if (w.replayTruncated === true && state.lastIdSent !== null) catchUp(state.lastIdSent);
}

function onConnectError(err) {
  const data = err && err.data;
  let code = data && typeof data === 'object' ? data.code : null;
  if (!code && err && CONNECT_ERRORS[err.message]) code = err.message;
  if (!code) {
    // Could not reach the server (or a transport error): the client retries by itself.
    if (state.me) setBanner('reconnecting', 'Cannot reach the chat server. Retrying…');
    else if (state.signIn) setText(ui.signinError, 'Cannot reach the chat server. Retrying…');
    if (!state.socket.active && (state.me || state.signIn)) scheduleReconnect(2000);
    return;
  }
  const known = CONNECT_ERRORS[code];
  const text = known ? known.text : (data && data.message) || 'The server refused the connection.';
  if (state.me && !state.signIn) {
    // Resuming a saved identity.
    if (code !== 'bad_token') {
      // Not about who we are (server full, store down, ...): keep the identity, retry.
      setBanner('reconnecting', `${text} Retrying…`);
      scheduleReconnect(4000);
      return;
    }
    const wasGuest = isGuestName(state.me.name);
    signOut({ explicit: false });
    setFieldError('form', wasGuest
      ? 'Your guest session has ended. Pick a name, or continue as a new guest.'
      : CONNECT_ERRORS.bad_token.text);
    return;
  }
  // A fresh sign-in was refused: say why, next to the field concerned.
  setSigninBusy(false);
  state.signIn = null;
  setFieldError(known ? known.field : 'form', text);
}

function onDisconnect(reason) {
  state.ready = false;
  state.gen += 1;
  state.inflight = null;
  clearTimeout(state.pumpTimer);
  state.pumpTimer = null;
  for (const map of state.typingIn.values()) for (const t of map.values()) clearTimeout(t.timer);
  state.typingIn = new Map();
  renderTyping();
  clearTimeout(state.typingOut.idle);
  state.typingOut = { to: null, sentAt: 0, idle: null };
  if (!state.me || reason === 'io client disconnect') return;
  setBanner('reconnecting', 'Connection lost. Reconnecting…');
  if (reason === 'io server disconnect') scheduleReconnect(1000);
}

function onRoomEvent(ev) {
  if (!ev || typeof ev.room !== 'string' || typeof ev.event !== 'string') return;
  const key = lower(ev.room);
  const conv = state.convs.get(key);
  const me = isMe(ev.name);
  if (ev.event === 'joined') {
    if (!conv) {
      if (me) { // joined from another tab
        ensureRoom({ room: ev.room });
        refreshRooms();
        scheduleSidebar();
      }
      return;
    }
    addNotice(conv, me ? 'You joined.' : `${ev.name} joined.`);
    refreshRooms();
  } else if (ev.event === 'left') {
    if (!conv) return;
    if (me) {
      removeConv(key, `You left ${conv.title}.`);
      return;
    }
    addNotice(conv, `${ev.name} left.`);
    refreshRooms();
  } else if (ev.event === 'closed') {
    if (!conv) return;
    removeConv(key, me ? `You closed ${conv.title}.` : `${conv.title} was closed by its owner.`);
  }
}

// ---------------------------------------------------------------------------------------
// Views

function showChat() {
  ui.signinView.hidden = true;
  ui.chatView.hidden = false;
  setText(ui.meName, state.me ? state.me.name : '');
}

function showSignIn() {
  ui.chatView.hidden = true;
  ui.signinView.hidden = false;
  ui.banner.hidden = true;
  document.title = 'Chat';
  ui.signinName.focus();
}

function setFieldError(field, text) {
  setText(ui.signinNameError, field === 'name' ? text : '');
  setText(ui.signinPasswordError, field === 'password' ? text : '');
  setText(ui.signinError, field === 'form' ? text : '');
  ui.signinName.setAttribute('aria-invalid', field === 'name' ? 'true' : 'false');
  ui.signinPassword.setAttribute('aria-invalid', field === 'password' ? 'true' : 'false');
  if (field === 'name') ui.signinName.focus();
  else if (field === 'password') ui.signinPassword.focus();
}

function setSigninBusy(busy) {
  ui.signinSubmit.disabled = busy;
  ui.guestButton.disabled = busy;
  ui.signinSubmit.textContent = busy ? 'Signing in…' : 'Start chatting';
}

function signOut({ explicit }) {
  const me = state.me;
  state.me = null;
  state.signIn = null;
  state.ready = false;
  state.gen += 1;
  state.inflight = null;
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.pumpTimer);
  state.pumpTimer = null;
  stopTyping();
  if (state.socket) state.socket.disconnect();
  store.saveIdentity(null);
  if (me && (explicit || isGuestName(me.name))) store.forgetOutbox(me.name);
  if (me && isGuestName(me.name)) store.forgetLastId(me.name);
  resetConversations();
  clear(ui.messageList);
  clear(ui.pendingList);
  ui.input.value = '';
  setSigninBusy(false);
  setFieldError('form', '');
  showSignIn();
}

function toast(text) {
  setText(ui.toast, text);
  ui.toast.hidden = false;
  clearTimeout(state.toastTimer);
  state.toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, 6000);
}

// Phone layout: the sidebar is a drawer.
function openDrawer() {
  document.body.classList.add('drawer-open');
  ui.menuToggle.setAttribute('aria-expanded', 'true');
  ui.backdrop.hidden = false;
  const current = ui.sidebar.querySelector('[aria-current="true"]') || ui.sidebar.querySelector('button');
  if (current) current.focus();
}

function closeDrawer() {
  if (!document.body.classList.contains('drawer-open')) return;
  document.body.classList.remove('drawer-open');
  ui.menuToggle.setAttribute('aria-expanded', 'false');
  ui.backdrop.hidden = true;
}

// ---------------------------------------------------------------------------------------
// Composer

function updateComposer() {
  const n = codePoints(ui.input.value.trim());
  if (n >= COUNTER_FROM) {
    const left = LIMIT - n;
    setText(ui.counter, left >= 0 ? `${left} characters left` : `${-left} characters over the limit`);
    ui.counter.classList.toggle('over', left < 0);
  } else {
    setText(ui.counter, '');
    ui.counter.classList.remove('over');
  }
  // Grow with the text, up to a limit (CSSOM, allowed by the page's CSP).
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight + 2, 200)}px`;
}

function submitComposer() {
  const text = ui.input.value;
  if (!text.trim() || !state.me) return;
  const n = codePoints(text.trim());
  if (n > LIMIT) {
    setText(ui.composerError, `This message is ${n - LIMIT} characters too long (at most ${LIMIT}).`);
    return;
  }
  setText(ui.composerError, '');
  const conv = activeConv();
  queueSend(conv, text);
  ui.input.value = '';
  state.drafts.delete(conv.key);
  updateComposer();
  stopTyping();
}

// ---------------------------------------------------------------------------------------
// Rooms and direct messages

async function onRoomSubmit(event) {
  event.preventDefault();
  setText(ui.roomNameError, '');
  setText(ui.roomPasswordError, '');
  let room = ui.roomName.value.trim();
  const password = ui.roomPassword.value;
  if (!room) {
    setText(ui.roomNameError, 'Enter a room name.');
    ui.roomName.focus();
    return;
  }
  if (!room.startsWith('#')) room = `#${room}`;
  if (!ROOM_RE.test(room)) {
    setText(ui.roomNameError, 'Room names are up to 32 letters, digits, "_" or "-" (after the #).');
    ui.roomName.focus();
    return;
  }
  const submit = ui.roomForm.querySelector('button[type="submit"]');
  submit.disabled = true;
  const res = await call('joinRoom', password ? { room, password } : { room });
  submit.disabled = false;
  if (!res.ok) {
    const code = res.error && res.error.code;
    if (code === 'bad_password') {
      setText(ui.roomPasswordError, password
        ? 'Wrong password for this private room.'
        : 'This room is private: enter its password.');
      ui.roomPassword.focus();
    } else if (code === 'forbidden') {
      setText(ui.roomNameError, 'You cannot join this room.');
    } else if (code === 'invalid_payload') {
      setText(ui.roomNameError, 'The server did not accept this room name or password.');
    } else {
      setText(ui.roomNameError, ackErrorText(res.error));
    }
    return;
  }
  const info = res.room && typeof res.room.room === 'string' ? res.room : { room };
  const conv = ensureRoom(info);
  if (Array.isArray(res.members)) conv.members = res.members;
  const history = Array.isArray(res.history) ? res.history : [];
  ingestBatch(history, 'history', 'bottom');
  if (!conv.loaded) {
    conv.loaded = true;
    conv.hasMore = history.length >= PAGE;
  }
  ui.roomName.value = '';
  ui.roomPassword.value = '';
  ui.roomPanel.open = false;
  openConversation(conv.key);
}

function renderPublicRooms(rooms) {
  clear(ui.publicRoomList);
  const list = rooms.filter((r) => r && typeof r.room === 'string')
    .sort((a, b) => (b.members || 0) - (a.members || 0) || lower(a.room).localeCompare(lower(b.room)));
  if (!list.length) {
    ui.publicRoomList.appendChild(h('li', { class: 'empty' }, 'No rooms yet: create one above.'));
    return;
  }
  for (const r of list) {
    const joined = state.convs.has(lower(r.room));
    ui.publicRoomList.appendChild(h('li', {},
      h('button', {
        type: 'button',
        class: 'link-button',
        'data-testid': `public-room-${lower(r.room)}`,
        on: {
          click: () => {
            if (joined) {
              openConversation(lower(r.room));
              return;
            }
            ui.roomName.value = r.room;
            if (r.private) ui.roomPassword.focus();
            else ui.roomForm.requestSubmit();
          },
        },
      }, r.room),
      ` · ${r.members ?? 0} member${r.members === 1 ? '' : 's'}${r.private ? ' · private' : ''}${joined ? ' · joined' : ''}`));
  }
}

async function onBrowseRooms() {
  const res = await call('listRooms');
  if (!res.ok) {
    setText(ui.roomNameError, ackErrorText(res.error));
    return;
  }
  renderPublicRooms(Array.isArray(res.rooms) ? res.rooms : []);
}

async function onLeaveRoom() {
  const conv = activeConv();
  if (conv.type !== 'room') return;
  ui.leaveRoom.disabled = true;
  const res = await call('leaveRoom', { room: conv.title });
  ui.leaveRoom.disabled = false;
  if (!res.ok) {
    showConvError(`Could not leave: ${ackErrorText(res.error)}`);
    return;
  }
  removeConv(conv.key);
  toast(`You left ${conv.title}.`);
}

function disarmClose() {
  clearTimeout(state.closeArmed);
  state.closeArmed = null;
  ui.closeRoom.textContent = 'Close room';
  ui.closeRoom.classList.remove('armed');
}

async function onCloseRoom() {
  const conv = activeConv();
  if (conv.type !== 'room') return;
  if (!state.closeArmed) {
    // Closing deletes the room and its history: ask for a second click.
    ui.closeRoom.textContent = 'Click again to close for everyone';
    ui.closeRoom.classList.add('armed');
    state.closeArmed = setTimeout(disarmClose, 5000);
    return;
  }
  disarmClose();
  ui.closeRoom.disabled = true;
  const res = await call('closeRoom', { room: conv.title });
  ui.closeRoom.disabled = false;
  if (!res.ok) {
    showConvError(`Could not close the room: ${ackErrorText(res.error)}`);
    return;
  }
  removeConv(conv.key, `You closed ${conv.title}.`);
}

function onDmSubmit(event) {
  event.preventDefault();
  const name = ui.dmName.value.trim();
  if (!NAME_RE.test(name)) {
    setText(ui.dmNameError, 'Enter a name: up to 32 letters, digits, "_", "-" or ".".');
    ui.dmName.focus();
    return;
  }
  setText(ui.dmNameError, '');
  ui.dmName.value = '';
  ui.dmPanel.open = false;
  openConversation(ensureDm(displayName(name)).key);
}

// ---------------------------------------------------------------------------------------
// Wiring

function wire() {
  ui.signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = ui.signinName.value.trim();
    const password = ui.signinPassword.value;
    setFieldError('form', '');
    if (!name) {
      setFieldError('name', 'Enter a name, or continue as a guest.');
      return;
    }
    if (!NAME_RE.test(name) || isGuestName(name)) {
      setFieldError('name', CONNECT_ERRORS.invalid_name.text);
      return;
    }
    state.signIn = { name, password };
    setSigninBusy(true);
    connect();
  });
  ui.guestButton.addEventListener('click', () => {
    setFieldError('form', '');
    state.signIn = { guest: true };
    setSigninBusy(true);
    connect();
  });
  ui.signoutButton.addEventListener('click', () => signOut({ explicit: true }));

  ui.menuToggle.addEventListener('click', () => {
    if (document.body.classList.contains('drawer-open')) closeDrawer();
    else openDrawer();
  });
  ui.backdrop.addEventListener('click', closeDrawer);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && document.body.classList.contains('drawer-open')) {
      closeDrawer();
      ui.menuToggle.focus();
    }
  });

  // Conversation and user buttons are re-rendered often: delegate their clicks.
  ui.sidebar.addEventListener('click', (event) => {
    const conv = event.target.closest('[data-conv]');
    if (conv) {
      openConversation(conv.dataset.conv);
      return;
    }
    const user = event.target.closest('.user-btn');
    if (user) openConversation(ensureDm(user.dataset.name).key);
  });

  ui.roomForm.addEventListener('submit', onRoomSubmit);
  ui.browseRooms.addEventListener('click', onBrowseRooms);
  ui.dmForm.addEventListener('submit', onDmSubmit);
  ui.leaveRoom.addEventListener('click', onLeaveRoom);
  ui.closeRoom.addEventListener('click', onCloseRoom);

  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    submitComposer();
    ui.input.focus();
  });
  ui.input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey) {
      event.preventDefault();
      submitComposer();
    }
  });
  ui.input.addEventListener('input', () => {
    updateComposer();
    setText(ui.composerError, '');
    noteTyping();
  });
  ui.input.addEventListener('blur', () => {
    if (!ui.input.value.trim()) stopTyping();
  });

  ui.scroller.addEventListener('scroll', () => {
    if (ui.scroller.scrollTop < 80) loadOlder(activeConv());
  }, { passive: true });

  // Another tab signed out, or signed in as someone else.
  window.addEventListener('storage', (event) => {
    if (event.key !== store.IDENTITY_KEY && event.key !== null) return;
    const identity = store.loadIdentity();
    if (!identity && state.me) {
      signOut({ explicit: false });
      setFieldError('form', 'You signed out in another tab.');
    } else if (identity && state.me && !isMe(identity.name)) {
      window.location.reload();
    } else if (identity && state.me) {
      state.me.token = identity.token;
    } else if (identity && !state.me && !state.signIn) {
      window.location.reload();
    }
  });
}

function boot() {
  resetConversations();
  wire();
  const identity = store.loadIdentity();
  if (!identity) {
    showSignIn();
    return;
  }
  state.me = identity;
  state.active = store.loadActive() || 'lobby';
  loadOutbox();
  if (!state.convs.has(state.active)) {
    // A room or DM from before the reload: it is confirmed (or dropped) by the welcome.
    if (state.active.startsWith('#')) ensureRoom({ room: state.active });
    else if (state.active.startsWith('@')) ensureDm(state.active.slice(1));
  }
  showChat();
  setBanner('connecting', 'Connecting…');
  openConversation(state.active, false);
  connect();
}

boot();
