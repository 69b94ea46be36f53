// What the user does to moderate (docs/protocol.md §10), and what the page shows of it:
// the member panel's actions (setRole, kick, ban, mute, banUser), block and ban in a DM's
// header, and, when moderation.js reports a change, the member list, the header and the
// composer of a room where this user is muted (until when, §10.2).

import * as conversations from './conversations.js';
import * as moderation from './moderation.js';
import * as identity from './identity.js';
import * as chat from './chat.js';
import * as members from './view/members.js';
import * as header from './view/header.js';
import * as composer from './view/composer.js';
import * as status from './view/status.js';

/**
 * Draw what moderation touches in the open conversation besides the header (whose Block and
 * Ban buttons header.render draws): chat.refreshHeader calls it after that.
 */
export function refresh() {
  const conv = conversations.active();
  members.render(conv);
  const until = conv.type === 'room' ? moderation.myMuteUntil(conv.key) : null;
  if (until) {
    const by = moderation.mutedBy(conv.key, identity.current().name);
    composer.setMuted(`You are muted in ${conv.title} until ${moderation.untilText(until)}${by ? ` (by ${by})` : ''}: `
      + 'you can read, but not write here until then.');
  } else {
    composer.setMuted(null);
  }
}

/** moderation 'changed' (a room key, or null for anything). */
export function onChanged(key) {
  if (key === null || key === conversations.activeKey()) chat.refreshHeader(); // and refresh()
}

/** The member panel opened: a room from the welcome needs its members asked for. */
export function onShowMembers(conv) {
  moderation.ensureMembers(conv);
}

/** A member panel action; resolves to what went wrong, or ''. */
export async function memberAction(action, name, arg) {
  const conv = conversations.active();
  if (conv.type !== 'room') return '';
  let r;
  if (action === 'role') r = await moderation.setRole(conv, name, arg);
  else if (action === 'kick') r = await moderation.kick(conv, name);
  else if (action === 'ban') r = await moderation.ban(conv, name, true);
  else if (action === 'unban') r = await moderation.ban(conv, name, false);
  else if (action === 'mute') r = await moderation.mute(conv, name, arg);
  else if (action === 'banUser') r = await moderation.banUser(name, arg);
  else return '';
  if (!r.ok) return r.text;
  if (action === 'banUser') status.toast(arg ? `${name} is banned from the server.` : `${name} may connect again.`);
  if (action === 'unban') status.toast(`${name} may join ${conv.title} again.`);
  return '';
}

export function messageMember(name) {
  chat.openDmByName(name);
}

/** The DM header's Block / Unblock (§10.5). */
export async function toggleBlock() {
  const conv = conversations.active();
  if (conv.type !== 'dm') return;
  const on = !moderation.isBlocked(conv.peer);
  const r = await moderation.block(conv.peer, on);
  if (!r.ok) {
    header.showError(r.text);
    return;
  }
  header.showError('');
  status.toast(on ? `You blocked ${conv.peer}: their direct messages no longer reach you.`
    : `You unblocked ${conv.peer}.`);
}

/** The DM header's "Ban from server", for a known server admin (§10.4). */
export async function banPeer() {
  const conv = conversations.active();
  if (conv.type !== 'dm') return;
  const r = await moderation.banUser(conv.peer, true);
  if (!r.ok) header.showError(r.text);
  else status.toast(`${conv.peer} is banned from the server.`);
}
