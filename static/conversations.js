// The conversations of the signed-in identity: the lobby, rooms and direct messages, each
// with its messages (deduplicated by id, in id order), notices, read state (unread and
// mention counts, the read marker, the DM peer's read receipt: docs/protocol.md §9) and
// history state; and which one is open. Messages change in place by the `update` events of
// docs/protocol.md §8 (applyUpdate). Only this module (and history.js, through
// updateHistory) changes them; everyone else reads them and listens with on().

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
 * 'updated' {conv, entry, update}: a message changed in place (§8.3). 'read' conv: its read
 * marker moved (§9.1). 'seen' conv: the DM peer read further (§9.1 `read`).
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
    mentions: 0,          // unread messages that mention me (docs/protocol.md §9.2)
    lastRead: null,       // my read marker (§9.1), null: never marked
    countedTo: 0,         // the welcome counted unread messages up to this id
    divider: null,        // where the "new messages" line goes while open: {after} | {count}
    peerRead: 0,          // dm: how far the peer has read (§9.1 `read`)
    loaded: false,
    loading: false,
    hasMore: true,
    hasNewer: false,      // a window around an older message is shown (§2.5 before/after)
    loadingNewer: false,
    newerCursor: null,    // the newest id of that window's pages so far
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
  const previous = openKey;
  openKey = convs.has(key) ? key : 'lobby';
  store.saveActive(openKey);
  const conv = active();
  if (previous !== openKey || conv.unread > 0) {
    // The "new messages" divider: after my read marker, or, never having marked this
    // conversation read, before the last `unread` messages of others (§9.2).
    if (conv.unread <= 0) conv.divider = null;
    else if (conv.lastRead !== null) conv.divider = { after: conv.lastRead };
    else conv.divider = { count: conv.unread };
  }
  conv.unread = 0;
  conv.mentions = 0;
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
    const me = identity.current();
    conv = makeConv(key, 'dm', { peer, title: peer, peerRead: me ? store.loadPeerRead(me.name, key) : 0 });
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

/**
 * Take a welcome's `conversations`: their newest ids, and (v2, docs/protocol.md §9.2) the
 * read marker, unread and mention counts, which replace what this page counted. Returns
 * the newest id of all.
 */
export function noteLastIds(list) {
  let newest = 0;
  for (const c of Array.isArray(list) ? list : []) {
    if (!c || typeof c.conversation !== 'string') continue;
    const conv = convForServerKey(c.conversation);
    if (Number.isSafeInteger(c.lastId)) {
      newest = Math.max(newest, c.lastId);
      if (conv && c.lastId > conv.maxId) conv.maxId = c.lastId;
    }
    if (!conv) continue;
    // Replay (and live messages) up to here are in the welcome's count already.
    conv.countedTo = Math.max(conv.countedTo, Number.isSafeInteger(c.lastId) ? c.lastId : 0);
    if (Number.isSafeInteger(c.lastRead)) conv.lastRead = Math.max(conv.lastRead ?? 0, c.lastRead);
    if (Number.isInteger(c.unread) && c.unread >= 0) {
      // The open conversation (after a reload) shows where its unread messages begin.
      if (conv.key === openKey && c.unread > 0 && !conv.divider) {
        conv.divider = conv.lastRead !== null ? { after: conv.lastRead } : { count: c.unread };
      }
      conv.unread = conv.key === openKey ? 0 : c.unread;
      conv.mentions = conv.key === openKey ? 0 : (Number.isInteger(c.mentions) ? c.mentions : 0);
    }
  }
  events.emit('changed');
  return newest;
}

/** The conversation a server key names (§8.5), or null. */
export function byServerKey(serverKey) {
  return convForServerKey(serverKey);
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
  } else if (!mine && !m.deleted && (source === 'live' || source === 'missed')
             && m.id > conv.countedTo && m.id > (conv.lastRead ?? 0)) {
    conv.unread += 1;
    if (mentionsMe(m)) conv.mentions += 1;
  }
  events.emit('changed');
  return { conv, entry, index };
}

/** The server's mentions of a message (§9.3) name me. */
export function mentionsMe(m) {
  return Array.isArray(m.mentions) && m.mentions.some((name) => identity.isMe(name));
}

/** The entry holding message `id`, or null. */
export function findEntry(conv, id) {
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

/** The newest message held (the newest one shown), or null. */
export function newestMessage(conv) {
  for (let i = conv.entries.length - 1; i >= 0; i -= 1) if (conv.entries[i].msg) return conv.entries[i].msg;
  return null;
}

function applyReaction(msg, emoji, by, on) {
  const list = Array.isArray(msg.reactions) ? msg.reactions.map((r) => ({ ...r, names: [...(r.names || [])] })) : [];
  let r = list.find((x) => x.emoji === emoji);
  const complete = (x) => x.names.length >= x.count; // names hold at most 50 (§8.4)
  const has = (x) => x.names.some((n) => lower(n) === lower(by));
  if (on) {
    if (r && has(r)) return false; // replayed, or the ack and the event: already so
    if (!r) {
      r = { emoji, count: 0, names: [] };
      list.push(r);
    }
    r.count += 1;
    if (r.names.length < 50) r.names.push(by);
  } else {
    if (!r || (!has(r) && complete(r))) return false; // replayed, or repeated: already so
    r.count -= 1;
    r.names = r.names.filter((n) => lower(n) !== lower(by));
    if (r.count <= 0) list.splice(list.indexOf(r), 1);
  }
  msg.reactions = list;
  return true;
}

/**
 * An UPDATE (docs/protocol.md §8.3), from the `update` event, replay or our own ack: the
 * message changes in place if it is held here (history brings the others in their current
 * state, §8.4). Applying one twice (the ack and the event; replay of a message already in
 * its current state) changes nothing.
 */
export function applyUpdate(u) {
  if (!u || typeof u !== 'object' || !Number.isSafeInteger(u.messageId)) return;
  const conv = convForServerKey(u.conversation);
  if (!conv) return;
  if (Number.isSafeInteger(u.id) && u.id > conv.maxId) conv.maxId = u.id;
  const entry = findEntry(conv, u.messageId);
  if (!entry) return;
  const msg = { ...entry.msg };
  if (u.type === 'edit') {
    if (msg.deleted || typeof u.text !== 'string' || (msg.editedAt && msg.editedAt > u.ts)) return;
    msg.text = u.text;
    msg.editedAt = u.ts;
    // The server's mentions of the new text (docs/protocol.md §8.3); a server without
    // them leaves the page to guess (view/richtext.js).
    msg.mentions = Array.isArray(u.mentions) ? u.mentions : null;
  } else if (u.type === 'delete') {
    if (msg.deleted) return;
    msg.deleted = true;
    msg.text = '';
    msg.reactions = [];
    const unreadHere = conv.key !== openKey && !identity.isMe(msg.from) && msg.id > (conv.lastRead ?? 0)
      && msg.id > conv.countedTo;
    if (unreadHere && conv.unread > 0) conv.unread -= 1;
  } else if (u.type === 'react' || u.type === 'unreact') {
    if (msg.deleted || typeof u.emoji !== 'string' || typeof u.by !== 'string') return;
    if (!applyReaction(msg, u.emoji, u.by, u.type === 'react')) return;
  } else {
    return;
  }
  entry.msg = msg;
  events.emit('updated', { conv, entry, update: u });
  events.emit('changed');
}

/**
 * My read marker moved (the ack of markRead, or `readMarker` from another tab, §9.1):
 * what is held above it is counted again; all of it read clears the counts.
 */
export function noteRead(conv, lastRead) {
  if (!conv || !Number.isSafeInteger(lastRead)) return;
  if (conv.lastRead !== null && lastRead <= conv.lastRead) return;
  conv.lastRead = lastRead;
  if (lastRead >= conv.maxId) {
    conv.unread = 0;
    conv.mentions = 0;
  } else {
    const msgs = conv.entries.filter((e) => e.msg).map((e) => e.msg);
    const covered = (conv.loaded && !conv.hasMore) || (msgs.length && msgs[0].id <= lastRead);
    if (covered && conv.key !== openKey) {
      const unread = msgs.filter((m) => m.id > lastRead && !m.deleted && !identity.isMe(m.from));
      conv.unread = unread.length;
      conv.mentions = unread.filter(mentionsMe).length;
    }
  }
  events.emit('read', conv);
  events.emit('changed');
}

/** The DM peer read up to `lastRead` (§9.1 `read`). */
export function notePeerRead(conv, lastRead) {
  if (!conv || conv.type !== 'dm' || !Number.isSafeInteger(lastRead) || lastRead <= conv.peerRead) return;
  conv.peerRead = lastRead;
  store.savePeerRead(identity.current().name, conv.key, lastRead);
  events.emit('seen', conv);
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
  conv.hasNewer = false;
  conv.newerCursor = null;
  if (conv.key === openKey) events.emit('entries', { conv, mode: 'bottom' });
}
