// The page's unsent messages (docs/protocol.md §2.3): queued in order,
// sent one at a time, resent with the same clientId until acked, and kept in localStorage
// (storage.js) so that a reload, or another tab of the identity, delivers them.

import * as store from './storage.js';
import * as identity from './identity.js';
import * as conversations from './conversations.js';
import { call, isReady, generation } from './connection.js';
import * as moderation from './moderation.js';
import { ackErrorText, sendForbiddenText } from './errors.js';
import { createEmitter } from './emitter.js';

const RATE_RETRY_MS = 1000;

const events = createEmitter();
/**
 * 'queued' {item, scroll}: a send to show as pending. 'failed' {item, error}: refused.
 * 'gone' clientId: no longer pending. 'error' {clientId, text}: why it is still pending.
 */
export const { on } = events;

let items = new Map();    // clientId -> item, not yet acknowledged (mirrors localStorage)
let failed = new Map();   // clientId -> {item, error}, refused by the server
let inflight = null;      // clientId of the send awaiting its ack
let retryTimer = null;
let seqCounter = 0;

function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID needs a secure context; getRandomValues does not.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Orders sends across tabs too: time first, a counter within one millisecond.
const nextSeq = () => Date.now() * 1000 + (seqCounter++ % 1000);
const sorted = () => [...items.values()].sort((a, b) => a.seq - b.seq);

function keep(item, scroll) {
  items.set(item.clientId, item);
  store.addToOutbox(identity.current().name, item);
  events.emit('queued', { item, scroll });
  pump();
}

function drop(item) {
  items.delete(item.clientId);
  if (identity.isSignedIn()) store.removeFromOutbox(identity.current().name, item.clientId);
  events.emit('gone', item.clientId);
}

/** replyTo: the id of the message this one answers (docs/protocol.md §8.2), or null. */
export function queue(conv, text, replyTo = null) {
  keep({
    clientId: newClientId(),
    conv: conv.key,
    type: conv.type,
    target: conv.type === 'room' ? conv.title : conv.type === 'dm' ? conv.peer : null,
    text,
    replyTo: Number.isSafeInteger(replyTo) ? replyTo : null,
    seq: nextSeq(),
  }, true);
}

/** Take in sends other tabs (or an earlier page) left unacknowledged. */
export function restore() {
  const me = identity.current();
  if (!me) return;
  for (const item of store.loadOutbox(me.name)) {
    if (items.has(item.clientId)) continue;
    items.set(item.clientId, { ...item, echoId: null, error: null });
    if (item.type === 'dm' && item.target) conversations.ensureDm(item.target);
  }
}

/** Send the oldest unacknowledged message, unless one is in flight or waiting to retry. */
export function pump() {
  if (!isReady() || inflight || retryTimer) return;
  const item = sorted()[0];
  if (!item) return;
  const gen = generation();
  inflight = item.clientId;
  const [event, payload] = item.type === 'lobby'
    ? ['message', { text: item.text, clientId: item.clientId }]
    : ['sendMessage', { content: item.text, destId: item.target, clientId: item.clientId }];
  if (Number.isSafeInteger(item.replyTo)) payload.replyTo = item.replyTo;
  call(event, payload).then((res) => {
    if (gen !== generation()) return; // that connection is gone; the next one resends from the head
    inflight = null;
    if (res.noAnswer) {
      // The clientId makes sending the same message again safe.
      retryLater(RATE_RETRY_MS);
      return;
    }
    if (res.ok) {
      drop(item);
      if (res.message) conversations.ingest(res.message, 'own');
      pump();
      return;
    }
    if (res.error && res.error.code === 'rate_limited') {
      item.error = `${ackErrorText(res.error)} Retrying…`;
      events.emit('error', { clientId: item.clientId, text: item.error });
      retryLater(RATE_RETRY_MS);
      return;
    }
    fail(item, refusalText(item, res.error));
    pump();
  });
}

/** A muted member (docs/protocol.md §10.2) or a blocked sender (§10.5) is told so. */
function refusalText(item, error) {
  if (!error || error.code !== 'forbidden') return ackErrorText(error);
  const until = item.type === 'room' ? moderation.myMuteUntil(item.conv) : null;
  return sendForbiddenText(item, until ? moderation.untilText(until) : null);
}

function retryLater(ms) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => {
    retryTimer = null;
    pump();
  }, ms);
}

function fail(item, error) {
  drop(item);
  failed.set(item.clientId, { item, error });
  events.emit('failed', { item, error });
}

/** Send a refused message again, as the newest. */
export function retry(clientId) {
  const refused = failed.get(clientId);
  if (!refused) return;
  failed.delete(clientId);
  events.emit('gone', clientId);
  keep({ ...refused.item, error: null, echoId: null, seq: nextSeq() }, false);
}

export function discard(clientId) {
  failed.delete(clientId);
  events.emit('gone', clientId);
}

/** Our own message came back as a broadcast before its ack: stop showing it as pending. */
export function settleEcho(convKey, m) {
  for (const item of sorted()) {
    if (item.conv === convKey && !item.echoId && item.text === m.text) {
      item.echoId = m.id;
      events.emit('gone', item.clientId);
      return;
    }
  }
}

/** What the conversation shows below its messages: [{item, error, failed}], oldest first. */
export function pendingIn(convKey) {
  const shown = [];
  for (const item of sorted()) {
    if (item.conv === convKey && !item.echoId) shown.push({ item, error: item.error, failed: false });
  }
  for (const { item, error } of failed.values()) {
    if (item.conv === convKey) shown.push({ item, error, failed: true });
  }
  return shown;
}

/** The connection ended: its send in flight is void (the next one sends it again). */
export function abort() {
  inflight = null;
  clearTimeout(retryTimer);
  retryTimer = null;
}

/** A new identity: the old one's sends stay in storage for its own next visit. */
export function reset() {
  items = new Map();
  failed = new Map();
}

/** Forget the stored sends of `name` too (signed out on purpose, or a guest). */
export function forgetStored(name) {
  store.forgetOutbox(name);
}
