// Moderation and safety (docs/protocol.md §10): who holds which role in a room, what this
// user may do to whom there, the room events that change roles and membership, mutes,
// blocks of direct messages, and the actions themselves (setRole, kick, ban, mute,
// banUser, block) with a clear word when the server refuses them.
//
// Where the state lives: a room's owner and moderators are its ROOM_INFO (conversations.js,
// `info.owner`, `info.moderators`, §10.1), its members `conv.members` (joinRoom's ack,
// §2.2); both follow the roomEvents handled here. Mutes, the bans seen, the blocked names
// and whether this user is a server admin are kept here; 'changed' tells the page to draw.

import { call } from './connection.js';
import * as conversations from './conversations.js';
import * as identity from './identity.js';
import * as store from './storage.js';
import { createEmitter } from './emitter.js';
import { ackErrorText } from './errors.js';
import { formatTime } from './dom.js';
import { lower, isGuestName } from './rules.js';

const events = createEmitter();
/** 'changed' roomKey | null (null: anything, a DM header included); 'removed' {key, why}. */
export const { on } = events;

// The durations the member menu offers (§10.2: 1-604800 s; 0 lifts a mute).
export const MUTE_CHOICES = [
  { seconds: 600, label: '10 min' },
  { seconds: 3600, label: '1 h' },
  { seconds: 86400, label: '1 day' },
];

let blocked = new Map();    // lower name -> name as given: the users this one blocks (§10.5)
let mutes = new Map();      // room key -> Map(lower name -> {name, until}) (§10.3 `muted`)
let bans = new Map();       // room key -> Map(lower name -> name): bans seen here (§10.3)
let admin = false;          // a server admin (§10.4): learnt from an action only one could do
let expiry = null;          // the timer of the next mute to run out

const nameIn = (list, name) => Array.isArray(list) && list.some((n) => lower(n) === lower(name));

// -- the session ------------------------------------------------------------------------

/** A new identity: nothing known. */
export function reset() {
  blocked = new Map();
  mutes = new Map();
  bans = new Map();
  admin = false;
  clearTimeout(expiry);
  events.emit('changed', null);
}

/** welcome (§1.7): `blocked` lists the names this user blocks (§10.5). */
export function onWelcome(w) {
  setBlocked(w && w.blocked);
  // Mutes are told only as they happen (§10.3), never in a welcome: one lifted while this
  // page was away went unheard, so what was known is dropped rather than kept wrong (a
  // send while still muted is refused and says so, errors.js).
  mutes = new Map();
  clearTimeout(expiry);
  // The page learns that it is a server admin only by acting as one; it remembers that.
  const me = identity.current();
  admin = !!(me && !isGuestName(me.name) && store.loadAdmin(me.name));
  events.emit('changed', null);
}

function setBlocked(list) {
  blocked = new Map();
  for (const name of Array.isArray(list) ? list : []) {
    if (typeof name === 'string') blocked.set(lower(name), name);
  }
}

// -- roles (§10.1) and the table of who may do what (§10.2, §10.4) ------------------------

/** name's role in the room: 'owner' | 'moderator' | 'member'. */
export function roleOf(conv, name) {
  const info = (conv && conv.info) || {};
  if (info.owner && lower(info.owner) === lower(name)) return 'owner';
  if (nameIn(info.moderators, name)) return 'moderator';
  return 'member';
}

export const myRole = (conv) => roleOf(conv, identity.current() ? identity.current().name : '');

/** Known to be a server admin (an admin-only action succeeded). */
export const isAdmin = () => admin;

/** A guest is never a server admin (§10.4: registered names with a password). */
export const mayBeAdmin = () => {
  const me = identity.current();
  return !!me && !isGuestName(me.name);
};

/**
 * What this user may do to `name` in the room by its room role, as the server's table
 * says (docs/protocol.md §10.1-10.2): the owner sets roles and kicks, bans and mutes
 * moderators and members; a moderator kicks, bans and mutes members; nobody acts on
 * themselves. asAdmin: what a server admin may do besides (§10.4): kick, ban and mute
 * anyone (an admin target refuses it, which the page cannot know beforehand), ban from the
 * server; never set roles.
 */
export function actionsOn(conv, name, { asAdmin = false } = {}) {
  const none = { setRole: false, remove: false, banUser: false };
  if (!conv || conv.type !== 'room' || identity.isMe(name)) return none;
  const mine = myRole(conv);
  const theirs = roleOf(conv, name);
  const byRole = (mine === 'owner' && theirs !== 'owner') || (mine === 'moderator' && theirs === 'member');
  return {
    setRole: mine === 'owner' && theirs !== 'owner',
    remove: byRole || asAdmin,           // kick, ban, mute (one rule for the three)
    banUser: asAdmin,
  };
}

/** §8.2 with §10: may this user delete `m` in `conv`? (The server has the last word.) */
export function mayDelete(conv, m) {
  if (!m || m.deleted) return false;
  if (identity.isMe(m.from)) return true;
  if (!conv || conv.type !== 'room') return false;
  if (admin) return true;
  const mine = myRole(conv);
  if (mine === 'owner') return true;
  return mine === 'moderator' && roleOf(conv, m.from) === 'member';
}

// -- mutes (§10.2, §10.3) --------------------------------------------------------------

/** Until when (ms since the epoch) `name` is muted in the room, or null. */
export function mutedUntil(roomKey, name) {
  const room = mutes.get(roomKey);
  const m = room && room.get(lower(name));
  return m && m.until > Date.now() ? m.until : null;
}

/** Who muted `name` in the room (while muted), or null. */
export function mutedBy(roomKey, name) {
  const room = mutes.get(roomKey);
  const m = room && room.get(lower(name));
  return m && m.until > Date.now() ? m.by : null;
}

export const myMuteUntil = (roomKey) => (identity.current() ? mutedUntil(roomKey, identity.current().name) : null);

/** "14:05", or "Dec 3 14:05" on another day. */
export const untilText = (until) => formatTime(until);

function setMute(roomKey, name, until, by) {
  let room = mutes.get(roomKey);
  if (!room) {
    room = new Map();
    mutes.set(roomKey, room);
  }
  if (Number.isSafeInteger(until) && until > Date.now()) room.set(lower(name), { name, until, by });
  else room.delete(lower(name));
  scheduleExpiry();
}

/** Redraw when the next mute runs out (the server lets the member write again then). */
function scheduleExpiry() {
  clearTimeout(expiry);
  let next = Infinity;
  for (const room of mutes.values()) for (const m of room.values()) next = Math.min(next, m.until);
  if (next === Infinity) return;
  // Timers past ~24.8 days overflow; a week at most is muted (§10.2), so this fits.
  expiry = setTimeout(() => {
    const now = Date.now();
    for (const [key, room] of mutes) {
      for (const [k, m] of room) {
        if (m.until <= now) {
          room.delete(k);
          events.emit('changed', key);
        }
      }
    }
    scheduleExpiry();
  }, Math.max(0, next - Date.now()) + 50);
}

// -- bans seen in a room (so that the page can offer to lift them) ----------------------

export function bannedIn(roomKey) {
  const room = bans.get(roomKey);
  return room ? [...room.values()].sort((a, b) => lower(a).localeCompare(lower(b))) : [];
}

function noteBan(roomKey, name, on) {
  let room = bans.get(roomKey);
  if (!room) {
    room = new Map();
    bans.set(roomKey, room);
  }
  if (on) room.set(lower(name), name);
  else room.delete(lower(name));
}

// -- blocks (§10.5) --------------------------------------------------------------------

export const isBlocked = (name) => blocked.has(lower(name));

// -- room events (§10.3) ---------------------------------------------------------------

const MODERATION_EVENTS = new Set(['role', 'kicked', 'banned', 'unbanned', 'muted', 'owner']);

function rememberAdmin() {
  if (admin || !mayBeAdmin()) return;
  admin = true;
  store.saveAdmin(identity.current().name, true);
}

/**
 * A roomEvent of §10.3. Returns false when it is not one (joined, left, closed are
 * rooms.js's), true when it was taken in.
 */
export function onRoomEvent(ev) {
  if (!MODERATION_EVENTS.has(ev.event) || typeof ev.name !== 'string') return false;
  const key = lower(ev.room);
  const conv = conversations.get(key);
  const by = typeof ev.by === 'string' && ev.by ? ev.by : null;
  const me = identity.isMe(ev.name);
  const who = me ? 'You' : ev.name;
  const byText = by ? ` by ${identity.isMe(by) ? 'you' : by}` : '';
  if (ev.event === 'muted') {
    setMute(key, ev.name, ev.until, by);
    if (conv) {
      const until = mutedUntil(key, ev.name);
      conversations.addNotice(conv, until
        ? `${who} ${me ? 'are' : 'is'} muted until ${untilText(until)}${byText}.`
        : `${who} can write here again (mute lifted${byText}).`);
    }
  } else if (ev.event === 'kicked' || ev.event === 'banned') {
    if (ev.event === 'banned') noteBan(key, ev.name, true);
    if (me) {
      // §10.2: removed on every tab; rooms.js drops the conversation with this word.
      const what = ev.event === 'kicked' ? 'removed from' : 'banned from';
      events.emit('removed', { key, why: `You were ${what} ${conv ? conv.title : ev.room}${byText}.` });
    } else if (conv) {
      conversations.addNotice(conv, `${ev.name} was ${ev.event === 'kicked' ? 'removed' : 'banned'}${byText}.`);
      dropMember(conv, ev.name);
    }
  } else if (ev.event === 'unbanned') {
    noteBan(key, ev.name, false);
    if (conv) conversations.addNotice(conv, `${who} ${me ? 'were' : 'was'} unbanned${byText}.`);
  } else if (ev.event === 'role' && conv) {
    const moderator = ev.role === 'moderator';
    const mods = ((conv.info && conv.info.moderators) || []).filter((n) => lower(n) !== lower(ev.name));
    if (moderator) mods.push(ev.name);
    conversations.updateRoomInfo({ room: conv.title, moderators: mods });
    const actor = by ? (identity.isMe(by) ? 'You' : by) : 'The owner';
    conversations.addNotice(conv, moderator ? `${actor} made ${me ? 'you' : ev.name} a moderator.`
      : `${actor} made ${me ? 'you' : ev.name} a member again (no longer a moderator).`);
  } else if (ev.event === 'owner' && conv) {
    // Ownership passed (§10.3): an owner is no moderator.
    const mods = ((conv.info && conv.info.moderators) || []).filter((n) => lower(n) !== lower(ev.name));
    conversations.updateRoomInfo({ room: conv.title, owner: ev.name, moderators: mods });
    conversations.addNotice(conv, `${who} ${me ? 'are' : 'is'} now the owner.`);
  }
  // Something only an admin could have done, from this user's other tab: an admin.
  if (by && identity.isMe(by) && conv && ev.event !== 'owner' && ev.event !== 'role'
      && !actionsOn(conv, ev.name).remove && !me) rememberAdmin();
  events.emit('changed', key);
  return true;
}

function dropMember(conv, name) {
  if (conv.members) conversations.setMembers(conv, conv.members.filter((n) => lower(n) !== lower(name)));
  const mods = conv.info && conv.info.moderators;
  if (nameIn(mods, name)) {
    conversations.updateRoomInfo({ room: conv.title, moderators: mods.filter((n) => lower(n) !== lower(name)) });
  }
}

// -- members (joinRoom's ack, §2.2) ----------------------------------------------------

const membersAsked = new WeakSet();

/**
 * The room's members, asked for once when unknown (a room from the welcome): joinRoom on
 * a room one is in changes nothing and lists them (§2.4), with its ROOM_INFO (moderators).
 */
export async function ensureMembers(conv) {
  if (!conv || conv.type !== 'room' || conv.members || membersAsked.has(conv)) return;
  membersAsked.add(conv);
  const res = await call('joinRoom', { room: conv.title });
  if (!res.ok) {
    membersAsked.delete(conv);
    return;
  }
  if (conversations.get(conv.key) !== conv) return;
  if (res.room && typeof res.room.room === 'string') conversations.updateRoomInfo(res.room);
  if (Array.isArray(res.members)) conversations.setMembers(conv, res.members);
  events.emit('changed', conv.key);
}

// -- actions ---------------------------------------------------------------------------

// What a refusal means here: the server's table (§10.1-10.2, §10.4) said no.
function refusalText(action, name, room, error) {
  const code = error && error.code;
  if (code === 'forbidden') {
    switch (action) {
      case 'setRole': return 'Not allowed: only the room\'s owner may change roles.';
      case 'kick': return `Not allowed: you may not remove ${name} from ${room}.`;
      case 'ban': return `Not allowed: you may not ban ${name} from ${room}.`;
      case 'unban': return `Not allowed: you may not lift ${name}'s ban in ${room}.`;
      case 'mute': return `Not allowed: you may not mute ${name} in ${room}.`;
      case 'banUser': return 'Not allowed: only a server admin may ban users from the server (and not another admin).';
      case 'block': return `You cannot block ${name}.`;
      default: return `Not allowed: ${ackErrorText(error)}`;
    }
  }
  if (code === 'not_found') {
    return room ? `${name} is not a member of ${room} (any more).` : `There is no user named ${name}.`;
  }
  return ackErrorText(error);
}

/**
 * One moderation request. Resolves to {ok: true} or {ok: false, text} (what to show).
 * adminOnly: the page offered it only as a server admin's action (§10.4).
 */
async function act(event, payload, { action, name, room = null, adminOnly = false }) {
  const res = await call(event, payload);
  if (res.ok) {
    if (adminOnly) rememberAdmin();
    return { ok: true, res };
  }
  return { ok: false, text: refusalText(action, name, room, res.error) };
}

/** §10.1: make `name` a moderator or a member again (the owner only). */
export function setRole(conv, name, role) {
  return act('setRole', { room: conv.title, name, role }, { action: 'setRole', name, room: conv.title });
}

const adminOnlyIn = (conv, name) => !actionsOn(conv, name).remove;

/** §10.2: remove `name` from the room; they may join again. */
export function kick(conv, name) {
  return act('kick', { room: conv.title, name }, { action: 'kick', name, room: conv.title, adminOnly: adminOnlyIn(conv, name) });
}

/** §10.2: remove and keep out (on), or let back in (off). */
export async function ban(conv, name, on) {
  const r = await act('ban', { room: conv.title, name, on }, {
    action: on ? 'ban' : 'unban', name, room: conv.title, adminOnly: on && adminOnlyIn(conv, name),
  });
  if (r.ok && !on) {
    noteBan(conv.key, name, false);
    events.emit('changed', conv.key);
  }
  return r;
}

/** §10.2: mute for `seconds` (1-604800); 0 lifts the mute. */
export function mute(conv, name, seconds) {
  return act('mute', { room: conv.title, name, seconds }, {
    action: 'mute', name, room: conv.title, adminOnly: seconds > 0 && adminOnlyIn(conv, name),
  });
}

/** §10.4: ban `name` from the whole server (server admins only), or lift it. */
export function banUser(name, on) {
  return act('banUser', { name, on }, { action: 'banUser', name, adminOnly: true });
}

/** §10.5: block (or unblock) `name`'s direct messages; the ack lists every block. */
export async function block(name, on) {
  const r = await act('block', { name, on }, { action: 'block', name });
  if (r.ok) {
    if (Array.isArray(r.res.blocked)) setBlocked(r.res.blocked);
    else if (on) blocked.set(lower(name), name);
    else blocked.delete(lower(name));
    events.emit('changed', null);
  }
  return r;
}

/** This user joined (or joined again) a room: its members and roles are fresh. */
export function joined(conv) {
  events.emit('changed', conv.key);
}
