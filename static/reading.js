// Read state (docs/protocol.md §9.1): the open conversation, while this tab is visible, is
// marked read up to the newest message it shows (`markRead`); the server tells this
// identity's other tabs (`readMarker`), which clear their counts, and the peer of a DM
// (`read`), whose page says "Seen".

import { call, isReady } from './connection.js';
import * as conversations from './conversations.js';
import * as identity from './identity.js';
import { coalesced } from './coalesce.js';

const DELAY_MS = 400;       // several messages in a row: one markRead (it spends the event budget, §1.10)

const asked = new WeakMap(); // conv -> the highest id this tab asked to mark

const visible = () => document.visibilityState !== 'hidden';

/** The open conversation is being looked at: mark it read soon (once per newest id). */
export const viewed = coalesced(markOpen, DELAY_MS);

async function markOpen() {
  if (!isReady() || !identity.isSignedIn() || !visible()) return;
  const conv = conversations.active();
  if (!conv.loaded) return;
  const newest = conversations.newestMessage(conv);
  if (!newest) return;
  const id = newest.id;
  if ((conv.lastRead !== null && id <= conv.lastRead) || id <= (asked.get(conv) ?? 0)) return;
  asked.set(conv, id);
  const res = await call('markRead', { conversation: conversations.historyParam(conv), id });
  if (res.ok && Number.isSafeInteger(res.lastRead)) conversations.noteRead(conv, res.lastRead);
  else asked.delete(conv); // try again at the next look
}

/** A new connection: ask again whatever it takes (the old one's calls may be lost). */
export function reset() {
  viewed.cancel();
  for (const conv of conversations.all()) asked.delete(conv);
}

// -- what the server sends -------------------------------------------------------------

/** `readMarker {conversation, lastRead}`: another tab of mine read there (§9.1). */
export function onReadMarker(ev) {
  if (!ev || typeof ev !== 'object' || typeof ev.conversation !== 'string') return;
  conversations.noteRead(conversations.byServerKey(ev.conversation), ev.lastRead);
}

/** `read {conversation, name, lastRead}`: the peer of a DM read up to there (§9.1). */
export function onRead(ev) {
  if (!ev || typeof ev !== 'object' || typeof ev.conversation !== 'string' || identity.isMe(ev.name)) return;
  conversations.notePeerRead(conversations.byServerKey(ev.conversation), ev.lastRead);
}

/** Call once: a tab coming back into view reads what arrived meanwhile. */
export function init() {
  document.addEventListener('visibilitychange', () => {
    if (visible()) viewed();
  });
  window.addEventListener('focus', viewed);
}
