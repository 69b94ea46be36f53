// Rooms (docs/protocol.md §2.2, §2.4): joining, leaving and closing them,
// the list of public rooms, and what members do (roomEvent). The moderation kinds of
// roomEvent (§10.3: role, kicked, banned, unbanned, muted, owner) go to moderation.js.

import { call } from './connection.js';
import * as conversations from './conversations.js';
import * as history from './history.js';
import * as identity from './identity.js';
import * as chat from './chat.js';
import * as moderation from './moderation.js';
import * as header from './view/header.js';
import * as panels from './view/panels.js';
import * as sidebar from './view/sidebar.js';
import * as status from './view/status.js';
import { ackErrorText } from './errors.js';
import { lower } from './rules.js';

// Several room events in a row (people joining) ask for the list once.
const REFRESH_DELAY_MS = 200;
let refreshTimer = null;

/** Resolves to {ok: true, key} of the room joined, or the refusing ack. */
export async function joinRoom(room, password) {
  const res = await call('joinRoom', password ? { room, password } : { room });
  if (!res.ok) return res;
  const info = res.room && typeof res.room.room === 'string' ? res.room : { room };
  const conv = conversations.ensureRoom(info);
  if (Array.isArray(res.members)) conversations.setMembers(conv, res.members);
  moderation.joined(conv);
  history.takeJoined(conv, res.history);
  return { ok: true, key: conv.key };
}

export async function browseRooms() {
  const res = await call('listRooms');
  if (!res.ok) {
    panels.showRoomError(ackErrorText(res.error));
    return;
  }
  panels.showPublicRooms(Array.isArray(res.rooms) ? res.rooms : []);
}

/** Ask the server to `event` the open room: the room, or null (a refusal is shown). */
async function actOnOpenRoom(event, failure) {
  const conv = conversations.active();
  if (conv.type !== 'room') return null;
  const res = await call(event, { room: conv.title });
  if (res.ok) return conv;
  header.showError(`${failure}: ${ackErrorText(res.error)}`);
  return null;
}

export async function leaveRoom() {
  const conv = await actOnOpenRoom('leaveRoom', 'Could not leave');
  if (!conv) return;
  chat.removeConversation(conv.key);
  status.toast(`You left ${conv.title}.`);
}

export async function closeRoom() {
  const conv = await actOnOpenRoom('closeRoom', 'Could not close the room');
  if (conv) chat.removeConversation(conv.key, `You closed ${conv.title}.`);
}

/** Member counts and owners change with room events: ask for the list again, soon. */
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    const res = await call('listRooms');
    if (!res.ok || !Array.isArray(res.rooms)) return;
    for (const info of res.rooms) conversations.updateRoomInfo(info);
    if (panels.publicRoomsShown()) panels.showPublicRooms(res.rooms);
    if (conversations.active().type === 'room') chat.refreshHeader();
    sidebar.schedule();
  }, REFRESH_DELAY_MS);
}

/** This user was kicked or banned from a room (docs/protocol.md §10.2), on every tab. */
export function onRemoved({ key, why }) {
  chat.removeConversation(key, why);
  refreshSoon();
}

export function onRoomEvent(ev) {
  if (!ev || typeof ev.room !== 'string' || typeof ev.event !== 'string') return;
  if (moderation.onRoomEvent(ev)) {
    if (conversations.get(lower(ev.room))) refreshSoon(); // member counts, owner (ROOM_INFO)
    return;
  }
  const key = lower(ev.room);
  const conv = conversations.get(key);
  const me = identity.isMe(ev.name);
  if (ev.event === 'joined') {
    if (!conv) {
      if (me) { // joined from another tab
        conversations.ensureRoom({ room: ev.room });
        refreshSoon();
      }
      return;
    }
    conversations.addNotice(conv, me ? 'You joined.' : `${ev.name} joined.`);
    // Whom `@` offers (docs/protocol.md §9.3) follows who is in the room.
    if (conv.members && !conv.members.some((n) => lower(n) === lower(ev.name))) {
      conversations.setMembers(conv, [...conv.members, ev.name]);
    }
    refreshSoon();
  } else if (ev.event === 'left') {
    if (!conv) return;
    if (me) {
      chat.removeConversation(key, `You left ${conv.title}.`);
      return;
    }
    conversations.addNotice(conv, `${ev.name} left.`);
    if (conv.members) conversations.setMembers(conv, conv.members.filter((n) => lower(n) !== lower(ev.name)));
    refreshSoon();
  } else if (ev.event === 'closed') {
    if (!conv) return;
    chat.removeConversation(key, me ? `You closed ${conv.title}.` : `${conv.title} was closed by its owner.`);
  }
}
