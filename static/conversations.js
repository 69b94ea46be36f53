// The conversations of the signed-in identity: the lobby, rooms and direct messages, each
// with its messages (deduplicated by id, in id order), notices, unread count and history
// state; and which one is open. Only this module (and history.js, through updateHistory)
// changes them; everyone else reads them and listens with on().

import * as store from './storage.js';
import * as identity from './identity.js';
import * as presence from './presence.js';
import { lower } from './rules.js';
import { createEmitter } from './emitter.js';

const events = createEmitter();
/**
 * 'message' {conv, message}: any new message. 'entry' {conv, entry, index, forceBottom}:
 * one to show now in the open conversation. 'entries' {conv, mode}: the open one changed
 * in bulk. 'status' conv: its history state changed. 'changed': the sidebar's data changed.
 */
export const { on } = events;

function makeConv(key, type, fields = {}) {
  return {
    key,                  // 'lobby', '#room' or '@peer', all lower-case
    type,                 // 'lobby' | 'room' | 'dm'
    title: '',
    peer: null,           // dm: the other party's name
    info: null,           // room: the server's room info
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

const onlyLobby = () => new Map([['lobby', makeConv('lobby', 'lobby', { title: 'Lobby' })]]);

let convs = onlyLobby();
let openKey = 'lobby';

/** A new identity: only the lobby, open. */
export function reset() {
  convs = onlyLobby();
  openKey = 'lobby';
}

export const get = (key) => convs.get(key) || null;
export const has = (key) => convs.has(key);
export const all = () => [...convs.values()];
export const activeKey = () => openKey;
export const active = () => convs.get(openKey) || convs.get('lobby');

/** Open `key` (the lobby when there is no such conversation): it counts as read. */
export function open(key) {
  openKey = convs.has(key) ? key : 'lobby';
  store.saveActive(openKey);
  const conv = active();
  conv.unread = 0;
  return conv;
}

export function ensureRoom(info) {
  const key = lower(info.room);
  let conv = convs.get(key);
  if (!conv) {
    conv = makeConv(key, 'room', { title: info.room });
    convs.set(key, conv);
  }
  conv.info = { ...(conv.info || {}), ...info };
  if (info.room) conv.title = info.room;
  events.emit('changed');
  return conv;
}

/** Newer room info (from listRooms) for a room this identity is in; others are ignored. */
export function updateRoomInfo(info) {
  const conv = convs.get(lower(info.room));
  if (!conv || conv.type !== 'room') return;
  conv.info = { ...(conv.info || {}), ...info };
  events.emit('changed');
}

export function setMembers(conv, members) {
  conv.members = members;
}

export function ensureDm(peer) {
  const key = `@${lower(peer)}`;
  let conv = convs.get(key);
  if (!conv) {
    conv = makeConv(key, 'dm', { peer, title: peer });
    convs.set(key, conv);
  } else if (peer !== lower(peer) && conv.peer === lower(conv.peer)) {
    // A better-cased spelling (from a message or the user list) replaces a lower-case key.
    conv.peer = peer;
    conv.title = peer;
  }
  events.emit('changed');
  return conv;
}

/** After a reload: the conversation that was open, until the welcome confirms or drops it. */
export function ensureFromKey(key) {
  if (convs.has(key)) return;
  if (key.startsWith('#')) ensureRoom({ room: key });
  else if (key.startsWith('@')) ensureDm(key.slice(1));
}

/** Returns the removed conversation, or null (the lobby stays). */
export function remove(key) {
  const conv = convs.get(key);
  if (!conv || conv.type === 'lobby') return null;
  convs.delete(key);
  events.emit('changed');
  return conv;
}

/** Take the rooms a welcome lists; returns the rooms held here that it no longer lists. */
export function syncRooms(rooms) {
  const keep = new Set();
  for (const info of Array.isArray(rooms) ? rooms : []) {
    if (info && typeof info.room === 'string') keep.add(ensureRoom(info).key);
  }
  return all().filter((conv) => conv.type === 'room' && !keep.has(conv.key));
}

/** Take a welcome's `conversations` (their newest ids); returns the newest of all. */
export function noteLastIds(list) {
  let newest = 0;
  for (const c of Array.isArray(list) ? list : []) {
    if (!c || !Number.isSafeInteger(c.lastId)) continue;
    newest = Math.max(newest, c.lastId);
    const conv = convForServerKey(c.conversation);
    if (conv && c.lastId > conv.maxId) conv.maxId = c.lastId;
  }
  return newest;
}

/** The DM peer named by a server conversation key 'dm:a:b' (lower-case). */
function peerFromDmKey(serverKey) {
  const parts = String(serverKey).split(':').slice(1);
  if (parts.length !== 2) return null;
  const me = lower(identity.current().name);
  if (parts[0] !== me) return parts[0];
  return parts[1];
}

function convForServerKey(serverKey) {
  const k = lower(serverKey);
  if (k === 'lobby') return convs.get('lobby');
  if (k.startsWith('#')) return convs.get(k) || null;
  if (k.startsWith('dm:')) {
    const peer = peerFromDmKey(k);
    return peer ? ensureDm(presence.displayName(peer)) : null;
  }
  return null;
}

function convForMessage(m) {
  const c = lower(m.conversation);
  if (c === 'lobby' || m.kind === 'broadcast') return convs.get('lobby');
  if (c.startsWith('#')) {
    const shown = typeof m.to === 'string' && lower(m.to) === c ? m.to : m.conversation;
    return convs.get(c) || ensureRoom({ room: shown });
  }
  // Direct: the other party, in the spelling the server gave.
  let peer = null;
  if (m.from && !identity.isMe(m.from)) peer = m.from;
  else if (typeof m.to === 'string' && m.to && !identity.isMe(m.to) && !m.to.startsWith('#')) peer = m.to;
  else if (c.startsWith('dm:')) peer = presence.displayName(peerFromDmKey(c) || identity.current().name);
  if (!peer || identity.isMe(peer)) peer = identity.current().name;
  return ensureDm(peer);
}

/** What `history` calls the conversation (docs/protocol.md §2.5). */
export function historyParam(conv) {
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

/**
 * Take one message in (a repeat of a known id is dropped: replay and live may overlap).
 * source: 'live' (reply event), 'own' (our ack), 'history', 'missed' (gap fill); only
 * live and missed messages count as unread. With `single` false the caller draws in bulk.
 */
export function ingest(m, source, single = true) {
  if (!m || typeof m !== 'object' || !Number.isSafeInteger(m.id) || !identity.isSignedIn()) return null;
  identity.seen(m.id);
  const conv = convForMessage(m);
  if (!conv || conv.ids.has(m.id)) return null;
  conv.ids.add(m.id);
  if (m.id > conv.maxId) conv.maxId = m.id;
  const entry = { sk: m.id, msg: m };
  const index = insertEntry(conv, entry);
  const mine = identity.isMe(m.from);
  events.emit('message', { conv, message: m });
  if (conv.key === openKey) {
    if (single) events.emit('entry', { conv, entry, index, forceBottom: mine || source === 'own' });
  } else if (!mine && (source === 'live' || source === 'missed')) {
    conv.unread += 1;
  }
  events.emit('changed');
  return { conv, entry, index };
}

/** mode: how the open conversation is redrawn if it got any ('bottom' | 'anchor' | 'keep'). */
export function ingestBatch(messages, source, mode) {
  if (!Array.isArray(messages)) return;
  let touchedActive = false;
  for (const m of messages) {
    const r = ingest(m, source, false);
    if (r && r.conv.key === openKey) touchedActive = true;
  }
  if (touchedActive) events.emit('entries', { conv: active(), mode });
}

export function addNotice(conv, text) {
  conv.noticeSeq += 1;
  // Sorts after the newest message known now, and before any later one.
  const entry = { sk: conv.maxId + conv.noticeSeq / 1e6, notice: text, ts: Date.now() };
  const index = insertEntry(conv, entry);
  if (conv.key === openKey) events.emit('entry', { conv, entry, index, forceBottom: false });
}

/** patch: any of loading, loadingOlder, loaded, hasMore, historyError. */
export function updateHistory(conv, patch) {
  Object.assign(conv, patch);
  events.emit('status', conv);
}

/** Forget a conversation's messages (its unread count stays); it loads again from its newest. */
export function dropMessages(conv) {
  conv.entries = [];
  conv.ids = new Set();
  conv.loaded = false;
  conv.hasMore = true;
  if (conv.key === openKey) events.emit('entries', { conv, mode: 'bottom' });
}
