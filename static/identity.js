// Who this tab is, and how far it has read: what every connection sends as `auth`
// (docs/protocol.md §1). Only this module changes these values.

import * as store from './storage.js';
import { lower, isGuestName } from './rules.js';

let me = null;            // {name, token} of the signed-in identity
let signingIn = null;     // a fresh sign-in in progress: {name, password} or {guest: true}
let sid = null;
let lastSeen = 0;         // highest message id seen (or known to be covered by history)
let synced = false;       // lastSeen is a real baseline: always send it when reconnecting
let lastIdSent = null;    // lastId given in the current connection's auth

export const current = () => me;
export const isSignedIn = () => me !== null;
export const isSigningIn = () => signingIn !== null;
export const isMe = (name) => me !== null && lower(name) === lower(me.name);
export const ownSid = () => sid;
/** The lastId the current connection asked replay from, or null. */
export const replayFrom = () => lastIdSent;

/** A page load with a saved identity. */
export function resume(saved) {
  me = saved;
}

export function startSignIn(request) {
  signingIn = request;
}

export function abandonSignIn() {
  signingIn = null;
}

/** Another tab of this identity got a fresh token. */
export function takeToken(token) {
  if (me) me.token = token;
}

/** The connection's `auth` object, or undefined: a guest connects with none. */
export function authPayload() {
  if (me && me.token) {
    const data = { token: me.token };
    // A tab already in sync sends what *it* has seen (even 0: "nothing existed yet"), so
    // a message stored just before a disconnection but never delivered is replayed. The
    // stored value, which other tabs of this identity also advance, is only for a fresh page.
    const stored = store.loadLastId(me.name);
    if (synced) data.lastId = lastSeen;
    else if (stored !== null) data.lastId = stored;
    lastIdSent = data.lastId ?? null;
    return data;
  }
  lastIdSent = null;
  if (signingIn && signingIn.name) {
    const data = { name: signingIn.name };
    if (signingIn.password) data.password = signingIn.password;
    const last = store.loadLastId(signingIn.name);
    if (last !== null) {
      data.lastId = last;
      lastIdSent = last;
    }
    return data;
  }
  return undefined;
}

export function welcomed(w) {
  me = { name: w.name, token: typeof w.token === 'string' ? w.token : (me && me.token) };
  store.saveIdentity(me);
  signingIn = null;
  sid = w.sid ?? null;
}

/** After a welcome: `newest` is the highest lastId it listed. */
export function settleBaseline(newest) {
  if (!synced && lastIdSent !== null) lastSeen = Math.max(lastSeen, lastIdSent);
  if (lastIdSent === null) {
    // No replay was asked for: everything up to now is reachable through `history`, and
    // everything newer arrives live or by replay. That is the baseline for reconnecting.
    lastSeen = Math.max(lastSeen, newest);
    store.saveLastId(me.name, lastSeen);
  }
  synced = true;
}

export function seen(id) {
  if (id <= lastSeen) return;
  lastSeen = id;
  if (me) store.saveLastId(me.name, id); // keeps the highest of all tabs
}

/** A new identity starts from nothing seen. */
export function forgetProgress() {
  lastSeen = 0;
  synced = false;
}

/** Returns who was signed in. A guest's name never comes back, so neither does its lastId. */
export function signOut() {
  const was = me;
  me = null;
  signingIn = null;
  store.saveIdentity(null);
  if (was && isGuestName(was.name)) store.forgetLastId(was.name);
  return was;
}
