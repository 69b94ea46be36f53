// The top bar (who is signed in, sign out) and the open conversation's header: its title,
// what it is, an error line, and the room actions (leave; close, after a second click).
// v2 (docs/protocol.md §10): in a DM, Block / Unblock (§10.5), and for a known server admin
// "Ban from server" (§10.4, after a second click); the members toggle is view/members.js's.

import { byId, setText } from '../dom.js';
import * as identity from '../identity.js';
import * as presence from '../presence.js';
import * as moderation from '../moderation.js';

const CONFIRM_MS = 5000;

const chatView = byId('chat-view');
const meName = byId('me-name');
const signoutButton = byId('signout-button');
const title = byId('conv-title');
const meta = byId('conv-meta');
const errorLine = byId('conv-error');
const leaveButton = byId('leave-room');
const closeButton = byId('close-room');
const blockButton = byId('block-user');
const banButton = byId('ban-user');
// Closing deletes the room and its history for everyone, and a ban keeps someone out:
// both ask for a second click.
const closing = secondClick(closeButton, 'Close room', 'Click again to close for everyone');
const banning = secondClick(banButton, 'Ban from server', 'Click again to ban from the server');

export function showChat(name) {
  chatView.hidden = false;
  setText(meName, name);
}

export function hideChat() {
  chatView.hidden = true;
}

export const chatShown = () => !chatView.hidden;

/** Returns the title shown. */
export function render(conv) {
  let text;
  let about;
  if (conv.type === 'lobby') {
    text = 'Lobby';
    about = `Everyone · ${presence.count()} online`;
  } else if (conv.type === 'room') {
    text = conv.title;
    const info = conv.info || {};
    const bits = [info.private ? 'Private room' : 'Public room'];
    if (Number.isInteger(info.members)) bits.push(`${info.members} member${info.members === 1 ? '' : 's'}`);
    if (info.owner) bits.push(identity.isMe(info.owner) ? 'you are the owner' : `owner ${info.owner}`);
    about = bits.join(' · ');
  } else {
    const self = identity.isMe(conv.peer);
    text = self ? `${conv.peer} (you)` : conv.peer;
    about = self ? 'Notes to yourself'
      : presence.isOnline(conv.peer) ? 'Online' : 'Offline: they will see your messages when they come back';
    if (!self && moderation.isBlocked(conv.peer)) about = `${about} · You blocked them: their direct messages do not reach you`;
  }
  setText(title, text);
  setText(meta, about);
  const isRoom = conv.type === 'room';
  leaveButton.hidden = !isRoom;
  closeButton.hidden = !(isRoom && conv.info && identity.isMe(conv.info.owner));
  renderSafety(conv);
  return text;
}

/** Block / Unblock and "Ban from server" in a DM with someone else (§10.4, §10.5). */
function renderSafety(conv) {
  const other = conv.type === 'dm' && !identity.isMe(conv.peer);
  blockButton.hidden = !other;
  if (other) {
    const isBlocked = moderation.isBlocked(conv.peer);
    blockButton.textContent = isBlocked ? 'Unblock' : 'Block';
    blockButton.setAttribute('aria-pressed', isBlocked ? 'true' : 'false');
    blockButton.title = isBlocked ? `Let ${conv.peer} send you direct messages again`
      : `Stop ${conv.peer}'s direct messages`;
  }
  const banVisible = other && moderation.isAdmin();
  if (!banVisible) banning.disarm();
  banButton.hidden = !banVisible;
}

export const rendered = () => meta.textContent !== '';

export function showError(text) {
  setText(errorLine, text || '');
}

async function whileDisabled(button, action) {
  button.disabled = true;
  await action();
  button.disabled = false;
}

/**
 * A button whose first click only arms it (saying what a second click does) for
 * CONFIRM_MS; the second runs `action` while the button is disabled.
 */
function secondClick(button, idleText, armedText) {
  let timer = null;
  const disarm = () => {
    clearTimeout(timer);
    timer = null;
    button.textContent = idleText;
    button.classList.remove('armed');
  };
  const click = (action) => {
    if (!timer) {
      button.textContent = armedText;
      button.classList.add('armed');
      timer = setTimeout(disarm, CONFIRM_MS);
      return;
    }
    disarm();
    whileDisabled(button, action);
  };
  return { disarm, click };
}

/** Another conversation is opened: no second click stays armed. */
export function disarmClose() {
  banning.disarm();
  closing.disarm();
}

/** onBlock(): Block / Unblock the DM's peer; onBanUser(): ban the peer from the server. */
export function bind({ onSignOut, onLeave, onClose, onBlock, onBanUser }) {
  signoutButton.addEventListener('click', onSignOut);
  blockButton.addEventListener('click', () => whileDisabled(blockButton, onBlock));
  banButton.addEventListener('click', () => banning.click(onBanUser));
  leaveButton.addEventListener('click', () => whileDisabled(leaveButton, onLeave));
  closeButton.addEventListener('click', () => closing.click(onClose));
}
