// The sidebar's two forms: join or create a room (with the list of public rooms), and
// open a direct conversation by name. Names are checked as the server would
// (docs/protocol.md §1, §2.4) before anything is sent.

import { byId, h, patchChildren, setText } from '../dom.js';
import * as conversations from '../conversations.js';
import { NAME_RE, ROOM_RE, lower } from '../rules.js';
import { ackErrorText } from '../errors.js';

const roomPanel = byId('room-panel');
const roomForm = byId('room-form');
const roomName = byId('room-name');
const roomPassword = byId('room-password');
const roomNameError = byId('room-name-error');
const roomPasswordError = byId('room-password-error');
const browseButton = byId('browse-rooms');
const publicRoomList = byId('public-room-list');
const dmPanel = byId('dm-panel');
const dmForm = byId('dm-form');
const dmName = byId('dm-name');
const dmNameError = byId('dm-name-error');

let handlers = null;

function refuse(errorNode, input, text) {
  setText(errorNode, text);
  input.focus();
}

function showJoinError(error, password) {
  const code = error && error.code;
  if (code === 'bad_password') {
    refuse(roomPasswordError, roomPassword, password
      ? 'Wrong password for this private room.'
      : 'This room is private: enter its password.');
  } else if (code === 'forbidden') {
    // v2: the one refusal of a join is a ban from the room (docs/protocol.md §10.2).
    setText(roomNameError, 'You cannot join this room: you have been banned from it.');
  } else if (code === 'invalid_payload') {
    setText(roomNameError, 'The server did not accept this room name or password.');
  } else {
    setText(roomNameError, ackErrorText(error));
  }
}

async function submitRoom(event) {
  event.preventDefault();
  setText(roomNameError, '');
  setText(roomPasswordError, '');
  let room = roomName.value.trim();
  const password = roomPassword.value;
  if (!room) {
    refuse(roomNameError, roomName, 'Enter a room name.');
    return;
  }
  if (!room.startsWith('#')) room = `#${room}`;
  if (!ROOM_RE.test(room)) {
    refuse(roomNameError, roomName, 'Room names are up to 32 letters, digits, "_" or "-" (after the #).');
    return;
  }
  const submit = roomForm.querySelector('button[type="submit"]');
  submit.disabled = true;
  const res = await handlers.onJoin(room, password);
  submit.disabled = false;
  if (!res.ok) {
    showJoinError(res.error, password);
    return;
  }
  roomName.value = '';
  roomPassword.value = '';
  roomPanel.open = false;
  handlers.onOpen(res.key);
}

/** A room of the list was picked: its button says which, and what the list showed of it. */
function pickPublicRoom(button) {
  const room = button.dataset.room;
  if (button.dataset.joined === 'true') {
    handlers.onOpen(lower(room));
    return;
  }
  roomName.value = room;
  if (button.dataset.private === 'true') roomPassword.focus();
  else roomForm.requestSubmit();
}

/** rooms: the server's room infos (docs/protocol.md §2.2: listRooms). */
export function showPublicRooms(rooms) {
  const list = rooms.filter((r) => r && typeof r.room === 'string')
    .sort((a, b) => (b.members || 0) - (a.members || 0) || lower(a.room).localeCompare(lower(b.room)));
  // Updated in place, never rebuilt: the list is asked again after every room event in the
  // user's rooms, and a button replaced between press and release would lose the click
  // (dom.js). Clicks come through the one listener bind() puts on the list.
  patchChildren(publicRoomList, list.length ? list.map((r) => {
    const joined = conversations.has(lower(r.room));
    return h('li', { 'data-key': lower(r.room) },
      h('button', {
        type: 'button',
        class: 'link-button',
        'data-testid': `public-room-${lower(r.room)}`,
        'data-room': r.room,
        'data-private': r.private ? 'true' : 'false',
        'data-joined': joined ? 'true' : 'false',
      }, r.room),
      ` · ${r.members ?? 0} member${r.members === 1 ? '' : 's'}${r.private ? ' · private' : ''}${joined ? ' · joined' : ''}`);
  }) : [h('li', { class: 'empty' }, 'No rooms yet: create one above.')]);
}

export const publicRoomsShown = () => publicRoomList.childElementCount > 0;

export function showRoomError(text) {
  setText(roomNameError, text);
}

function submitDm(event) {
  event.preventDefault();
  const name = dmName.value.trim();
  if (!NAME_RE.test(name)) {
    refuse(dmNameError, dmName, 'Enter a name: up to 32 letters, digits, "_", "-" or ".".');
    return;
  }
  setText(dmNameError, '');
  dmName.value = '';
  dmPanel.open = false;
  handlers.onDm(name);
}

/**
 * onJoin(room, password) resolves to {ok: true, key} or the refusing ack; onOpen(key);
 * onBrowse(); onDm(name).
 */
export function bind(given) {
  handlers = given;
  roomForm.addEventListener('submit', submitRoom);
  browseButton.addEventListener('click', () => handlers.onBrowse());
  publicRoomList.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-room]');
    if (button && publicRoomList.contains(button)) pickPublicRoom(button);
  });
  dmForm.addEventListener('submit', submitDm);
}
