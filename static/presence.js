// Who is online (docs/protocol.md §1.7-§1.8: welcome.users, addChat and userLeft), and how
// many (§7: welcome.online, onlineCount).
//
// Up to PRESENCE_LIMIT users online the welcome lists everyone and every arrival and
// departure reaches every connection, so the map below is everyone. Above it (§7) the
// welcome lists only the users this connection watches (usersTruncated), arrivals and
// departures come only for those, and the number online arrives as `onlineCount`: the map
// then holds what is known of the users the page shows, and the count is the server's.

import { lower } from './rules.js';
import { createEmitter } from './emitter.js';

const events = createEmitter();
/** 'changed': someone came or went, or the count changed; 'truncated': the list stopped
 * being everyone (from a welcome, or an onlineCount above what the list holds). */
export const { on } = events;

let users = new Map(); // lower-case name -> {name, sids: Set}
let online = 0;        // the server's count (welcome.online, onlineCount), kept up by arrivals
let truncated = false; // §7: users holds only the watched users, not everyone

function put(u) {
  users.set(lower(u.name), { name: u.name, sids: new Set(Array.isArray(u.sids) ? u.sids : []) });
}

const validUsers = (list) => (Array.isArray(list) ? list : []).filter((u) => u && typeof u.name === 'string');

/** A welcome: its users, how many are online, and whether that list is everyone (§7). */
export function welcome(w) {
  users = new Map();
  for (const u of validUsers(w.users)) put(u);
  online = Number.isInteger(w.online) && w.online >= 0 ? w.online : users.size;
  truncated = w.usersTruncated === true;
  events.emit('changed');
  if (truncated) events.emit('truncated');
}

export function join(name, sid) {
  const key = lower(name);
  const user = users.get(key) || { name, sids: new Set() };
  // Above the limit the count comes every 5 s at most (§7); an arrival in between counts.
  if (!users.has(key)) online += 1;
  if (sid) user.sids.add(sid);
  users.set(key, user);
  events.emit('changed');
}

export function leave(name) {
  if (users.delete(lower(name))) online = Math.max(0, online - 1);
  events.emit('changed');
}

/**
 * `onlineCount {online}` (§7): sent above PRESENCE_LIMIT (and once when the number falls
 * back to it). More online than the list holds means the list is not everyone any more.
 */
export function setCount(n) {
  if (!Number.isInteger(n) || n < 0) return;
  online = n;
  const wasTruncated = truncated;
  if (n > users.size) truncated = true;
  events.emit('changed');
  if (truncated && !wasTruncated) events.emit('truncated');
}

/** Users a `listUsers` page returned: online when it was answered. */
export function merge(list) {
  const valid = validUsers(list);
  for (const u of valid) put(u);
  if (valid.length) events.emit('changed');
}

/**
 * The ack of `watchUsers` (§7): of `names`, exactly those in `list` are online now; the
 * arrivals and departures of all of them come from here on.
 */
export function settle(names, list) {
  const valid = validUsers(list);
  const here = new Set(valid.map((u) => lower(u.name)));
  for (const name of names) if (!here.has(lower(name))) users.delete(lower(name));
  for (const u of valid) put(u);
  events.emit('changed');
}

/** Signed out: nobody is known to be online. */
export function reset() {
  users = new Map();
  online = 0;
  truncated = false;
}

export const isOnline = (name) => users.has(lower(name));
/** How many users are online: everyone listed, or above the limit the server's count. */
export const count = () => (truncated ? Math.max(online, 0) : users.size);
/** §7: the users known here are not everyone online; the list comes from listUsers. */
export const isTruncated = () => truncated;
export const list = () => [...users.values()];

/** `name` as its owner spells it, when they are online. */
export function displayName(name) {
  const user = users.get(lower(name));
  return user ? user.name : name;
}
