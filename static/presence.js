// Who is online (docs/protocol.md §1.7-§1.8: welcome.users, addChat and userLeft).

import { lower } from './rules.js';
import { createEmitter } from './emitter.js';

const events = createEmitter();
/** 'changed': someone came or went. */
export const { on } = events;

let users = new Map(); // lower-case name -> {name, sids: Set}

/** Everyone the welcome lists. */
export function replace(list) {
  users = new Map();
  for (const u of Array.isArray(list) ? list : []) {
    if (u && typeof u.name === 'string') users.set(lower(u.name), { name: u.name, sids: new Set(u.sids || []) });
  }
  events.emit('changed');
}

export function join(name, sid) {
  const key = lower(name);
  const user = users.get(key) || { name, sids: new Set() };
  if (sid) user.sids.add(sid);
  users.set(key, user);
  events.emit('changed');
}

export function leave(name) {
  users.delete(lower(name));
  events.emit('changed');
}

/** Signed out: nobody is known to be online. */
export function reset() {
  users = new Map();
}

export const isOnline = (name) => users.has(lower(name));
export const count = () => users.size;
export const list = () => [...users.values()];

/** `name` as its owner spells it, when they are online. */
export function displayName(name) {
  const user = users.get(lower(name));
  return user ? user.name : name;
}
