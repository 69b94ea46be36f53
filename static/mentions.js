// Whom `@` offers in the composer (docs/protocol.md §9.3): the open conversation's members.
// A room's members come from joinRoom's ack (asked again, which changes nothing, when the
// room came from a welcome) and follow its roomEvents; the lobby offers who is online (by
// listUsers above PRESENCE_LIMIT, §7); a DM its peer. People who wrote there are added.

import { call } from './connection.js';
import * as conversations from './conversations.js';
import * as presence from './presence.js';
import * as identity from './identity.js';
import * as moderation from './moderation.js';
import { lower } from './rules.js';

const OFFER = 8;

async function roomMembers(conv) {
  await moderation.ensureMembers(conv); // asked once, shared with the member panel
  return conv.members || [];
}

/** Names starting with `prefix` (any case) to offer, best first. */
export async function candidates(prefix) {
  const conv = conversations.active();
  const p = lower(prefix);
  const found = new Map();
  const add = (name) => {
    if (typeof name !== 'string' || !name || identity.isMe(name)) return;
    if (lower(name).startsWith(p) && !found.has(lower(name))) found.set(lower(name), name);
  };
  if (conv.type === 'dm') {
    add(conv.peer);
  } else if (conv.type === 'room') {
    for (const name of await roomMembers(conv)) add(name);
  } else {
    for (const u of presence.list()) add(u.name);
    if (presence.isTruncated() && found.size < OFFER) {
      const res = await call('listUsers', { prefix: prefix || undefined, limit: OFFER * 2 });
      if (res.ok && Array.isArray(res.users)) for (const u of res.users) add(u && u.name);
    }
  }
  if (conv.type !== 'dm') for (const e of conv.entries) if (e.msg) add(e.msg.from);
  if (conversations.activeKey() !== conv.key) return [];
  return [...found.values()].sort((a, b) => lower(a).localeCompare(lower(b))).slice(0, OFFER);
}
