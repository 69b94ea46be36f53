// Messages that change (docs/protocol.md §8): editing and deleting one's messages (a
// room's owner deletes any there), reactions, replies; and the `update` events that
// carry every change, live and in replay, to each page that shows the message.

import { call } from './connection.js';
import * as conversations from './conversations.js';
import * as identity from './identity.js';
import * as composer from './view/composer.js';
import * as status from './view/status.js';
import { ackErrorText } from './errors.js';

// §8.2 leaves some codes open; what they mean for a message.
const CHANGE_ERRORS = {
  not_found: 'That message is no longer there.',
  forbidden: 'You cannot change that message.',
  invalid_payload: 'The server did not accept this change.',
};

const changeErrorText = (error) => CHANGE_ERRORS[error && error.code] || ackErrorText(error);

/** `update` (UPDATE, §8.3): live, or replayed after lastId (§8.1), or from our own ack. */
export function onUpdate(u) {
  if (!u || typeof u !== 'object') return;
  if (Number.isSafeInteger(u.id)) identity.seen(u.id); // one id sequence with messages (§8.1)
  conversations.applyUpdate(u);
  if (u.type === 'delete') composer.forgetMessage(u.messageId);
}

/** Save an edit; resolves to why it failed, or null. */
export async function edit(messageId, text) {
  const res = await call('editMessage', { messageId, text });
  if (!res.ok) return `Could not edit: ${changeErrorText(res.error)}`;
  onUpdate(res.update);
  return null;
}

export async function remove(msg) {
  const res = await call('deleteMessage', { messageId: msg.id });
  if (!res.ok) {
    status.toast(`Could not delete: ${changeErrorText(res.error)}`);
    return;
  }
  onUpdate(res.update);
}

/** on: add my reaction, or take it back (§8.2 react). */
export async function react(messageId, emoji, on) {
  const res = await call('react', { messageId, emoji, on });
  if (!res.ok) {
    const why = res.error && res.error.code === 'invalid_payload'
      ? 'a reaction is one emoji (at most 16 characters, no spaces), and a message has at most 20 different ones.'
      : changeErrorText(res.error);
    status.toast(`Could not react: ${why}`);
    return;
  }
  if (res.update) onUpdate(res.update); // none: it was so already
}

export function startEdit(msg) {
  if (identity.isMe(msg.from) && !msg.deleted) composer.startEdit(msg);
}

export function startReply(msg) {
  if (!msg.deleted) composer.startReply(msg);
}

/** Up arrow in the empty composer: edit my newest message here. */
export function editLast() {
  const conv = conversations.active();
  for (let i = conv.entries.length - 1; i >= 0; i -= 1) {
    const m = conv.entries[i].msg;
    if (m && identity.isMe(m.from) && !m.deleted) {
      composer.startEdit(m);
      return;
    }
  }
}
