// The top bar (who is signed in, sign out) and the open conversation's header: its title,
// what it is, an error line, and the room actions (leave; close, after a second click).

import { byId, setText } from '../dom.js';
import * as identity from '../identity.js';
import * as presence from '../presence.js';

const CLOSE_CONFIRM_MS = 5000;

const chatView = byId('chat-view');
const meName = byId('me-name');
const signoutButton = byId('signout-button');
const title = byId('conv-title');
const meta = byId('conv-meta');
const errorLine = byId('conv-error');
const leaveButton = byId('leave-room');
const closeButton = byId('close-room');
let closeArmed = null;

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
  }
  setText(title, text);
  setText(meta, about);
  const isRoom = conv.type === 'room';
  leaveButton.hidden = !isRoom;
  closeButton.hidden = !(isRoom && conv.info && identity.isMe(conv.info.owner));
  return text;
}

export const rendered = () => meta.textContent !== '';

export function showError(text) {
  setText(errorLine, text || '');
}

export function disarmClose() {
  clearTimeout(closeArmed);
  closeArmed = null;
  closeButton.textContent = 'Close room';
  closeButton.classList.remove('armed');
}

async function whileDisabled(button, action) {
  button.disabled = true;
  await action();
  button.disabled = false;
}

export function bind({ onSignOut, onLeave, onClose }) {
  signoutButton.addEventListener('click', onSignOut);
  leaveButton.addEventListener('click', () => whileDisabled(leaveButton, onLeave));
  closeButton.addEventListener('click', () => {
    if (!closeArmed) {
      // Closing deletes the room and its history for everyone: ask for a second click.
      closeButton.textContent = 'Click again to close for everyone';
      closeButton.classList.add('armed');
      closeArmed = setTimeout(disarmClose, CLOSE_CONFIRM_MS);
      return;
    }
    disarmClose();
    whileDisabled(closeButton, onClose);
  });
}
