// What the page says when the server refuses something: connect errors
// (docs/protocol.md §1) and error acks (§2.7).

import { TEXT_LIMIT } from './rules.js';

/** field: where the sign-in form shows it ('name' | 'password' | 'form'). */
export const CONNECT_ERRORS = {
  invalid_name: {
    field: 'name',
    text: 'Names can be 1 to 32 letters, digits, "_", "-" or ".", and cannot start with "guest-" '
      + 'or look like a session id (exactly 20 of A-Z, a-z, 0-9, "_" and "-").',
  },
  name_taken: {
    field: 'name',
    text: 'Someone already uses this name. Pick another one, or enter its password if it is yours.',
  },
  bad_password: { field: 'password', text: 'That password is not right for this name.' },
  bad_token: { field: 'form', text: 'Your saved session is no longer valid. Please sign in again.' },
  server_full: { field: 'form', text: 'The chat is full right now. Please try again in a minute.' },
  rate_limited: {
    field: 'form',
    text: 'Too many attempts from your network in a short time. Please wait a minute and try again.',
  },
  invalid_payload: { field: 'form', text: 'The server could not understand this sign-in. Please reload the page.' },
  unavailable: { field: 'form', text: 'The chat is temporarily unavailable. Please try again shortly.' },
  // v2 (§1.6, §10.4): a server admin banned this user; trying again does not help.
  banned: { field: 'form', text: 'This name is banned from this chat server by its admins.' },
};

const ACK_ERRORS = {
  rate_limited: 'You are sending too fast.',
  too_large: `Too long: a message can have at most ${TEXT_LIMIT} characters.`,
  forbidden: 'You are not allowed to do that here.',
  not_found: 'There is no such room or user.',
  bad_password: 'Wrong password for this private room.',
  invalid_payload: 'The server could not accept this.',
  timeout: 'The server did not answer in time. Please try again.',
  offline: 'You are offline. Please try again once reconnected.',
};

/** A name shaped like a session id, asked for without a password (so not a sign-in). */
export const SID_NAME_TEXT = 'A name of exactly 20 characters made only of A-Z, a-z, 0-9, "_" and "-" '
  + 'looks like a session id. Please pick another name.';

/**
 * Why a send was refused with `forbidden` (v2, docs/protocol.md §10): in a room, a mute
 * (§10.2) or no longer being a member; in a DM, the recipient blocks the sender (§10.5).
 */
export function sendForbiddenText(item, mutedUntilText) {
  if (item.type === 'room') {
    return mutedUntilText
      ? `Not sent: you are muted in ${item.target} until ${mutedUntilText}.`
      : `Not sent: you are muted in ${item.target}, or no longer a member.`;
  }
  if (item.type === 'dm') return `Not sent: ${item.target} does not accept your direct messages.`;
  return ACK_ERRORS.forbidden;
}

export function ackErrorText(error) {
  const code = error && error.code;
  return ACK_ERRORS[code] || (error && error.message) || 'Something went wrong.';
}
