// Typing indicators (docs/protocol.md §2.6): who is typing where, forgotten without
// news; and this tab's own announcement, repeated while typing and ended when idle.

import { notify } from './connection.js';
import * as identity from './identity.js';
import { lower } from './rules.js';
import { createEmitter } from './emitter.js';

const REPEAT_MS = 3000;    // re-announce "typing" at most this often
const IDLE_MS = 4000;      // no keystroke for this long: "stopped typing"
const EXPIRE_MS = 7000;    // forget someone's typing state without news

const events = createEmitter();
/** 'changed' convKey, or null for every conversation. */
export const { on } = events;

let incoming = new Map(); // conv key -> Map(lower name -> {name, timer})
let outgoing = { to: null, sentAt: 0, idle: null };

export function set(convKey, name, typing) {
  let map = incoming.get(convKey);
  const k = lower(name);
  if (!typing) {
    if (!map || !map.has(k)) return;
    clearTimeout(map.get(k).timer);
    map.delete(k);
  } else {
    if (!map) {
      map = new Map();
      incoming.set(convKey, map);
    }
    const old = map.get(k);
    if (old) clearTimeout(old.timer);
    map.set(k, { name, timer: setTimeout(() => set(convKey, name, false), EXPIRE_MS) });
  }
  events.emit('changed', convKey);
}

export function namesIn(convKey) {
  const map = incoming.get(convKey);
  return map ? [...map.values()].map((t) => t.name) : [];
}

/** Someone went offline: they type nowhere. */
export function forgetPerson(name) {
  for (const key of incoming.keys()) set(key, name, false);
}

export function forgetConversation(key) {
  incoming.delete(key);
}

/** A connection ended or began: nobody's typing state from before holds. */
export function reset() {
  for (const map of incoming.values()) for (const t of map.values()) clearTimeout(t.timer);
  incoming = new Map();
  clearTimeout(outgoing.idle);
  outgoing = { to: null, sentAt: 0, idle: null };
  events.emit('changed', null);
}

/** Whom typing in `conv` is announced to: nobody in the lobby or in notes to yourself. */
export function targetOf(conv) {
  if (conv.type === 'room') return conv.title;
  if (conv.type === 'dm' && !identity.isMe(conv.peer)) return conv.peer;
  return null;
}

/** A keystroke in the composer; `to` is null when there is nothing to announce. */
export function note(to) {
  if (!to) {
    stop();
    return;
  }
  const now = Date.now();
  if (outgoing.to !== to) stop();
  if (outgoing.to !== to || now - outgoing.sentAt >= REPEAT_MS) {
    announce(to, true);
    outgoing.to = to;
    outgoing.sentAt = now;
  }
  clearTimeout(outgoing.idle);
  outgoing.idle = setTimeout(stop, IDLE_MS);
}

export function stop() {
  clearTimeout(outgoing.idle);
  outgoing.idle = null;
  if (outgoing.to) announce(outgoing.to, false);
  outgoing.to = null;
  outgoing.sentAt = 0;
}

function announce(to, typing) {
  notify('typing', { to, typing });
}
