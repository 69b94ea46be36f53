// The menu of one message (docs/protocol.md §8.2): react with a quick emoji or any other,
// reply, and edit or delete where allowed. One message's menu is open at a time.
// view/message.js draws it into its message; view/messages.js hands this module the list
// to listen on.

import { h } from '../dom.js';
import * as identity from '../identity.js';
import * as moderation from '../moderation.js';
import { reactedByMe } from './reactions.js';

const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '🙏'];

let openFor = null;     // the id of the message whose menu is open
let deleteArmed = null; // the id whose delete asks for a second click
let list = null;
let handlers = null;

const canEdit = (m) => identity.isMe(m.from) && !m.deleted;
/** §8.2 with §10: the author; in a room its owner, a moderator (others' messages that
 * members wrote) and a server admin too. */
const canDelete = (conv, m) => moderation.mayDelete(conv, m);

export const isOpenFor = (id) => openFor === id;

export function menuNode(conv, m) {
  const action = (name, text, extra = {}) => h('button', {
    type: 'button', class: 'menu-item', 'data-action': name, 'data-testid': `action-${name}`, ...extra,
  }, text);
  const armed = deleteArmed === m.id;
  return h('div', { class: 'msg-menu', 'data-testid': 'message-actions', role: 'group', 'aria-label': 'Message actions' },
    h('div', { class: 'emoji-row' },
      QUICK_EMOJI.map((emoji) => h('button', {
        type: 'button', class: 'emoji-pick', 'data-action': 'pick-emoji', 'data-emoji': emoji, 'data-key': emoji,
        'data-testid': 'pick-emoji', title: `React with ${emoji}`,
      }, emoji)),
      h('form', { class: 'emoji-free', 'data-testid': 'emoji-form' },
        h('label', { class: 'visually-hidden', for: `emoji-input-${m.id}` }, 'Any emoji'),
        h('input', {
          id: `emoji-input-${m.id}`, type: 'text', class: 'emoji-input', maxlength: '32', placeholder: '🙂',
          autocomplete: 'off', 'data-testid': 'emoji-input',
        }),
        h('button', { type: 'submit', class: 'menu-item', 'data-testid': 'emoji-add' }, 'React'))),
    h('div', { class: 'menu-row' },
      action('reply', 'Reply'),
      canEdit(m) ? action('edit', 'Edit') : null,
      canDelete(conv, m) ? action('delete', armed ? 'Click again to delete' : 'Delete',
        { class: armed ? 'menu-item danger-text armed' : 'menu-item danger-text' }) : null));
}

/** Open the menu of message `id` (null: none), closing the one open; both are drawn again. */
function setMenu(id) {
  const before = openFor;
  openFor = id;
  deleteArmed = null;
  for (const which of [before, id]) if (which !== null) handlers.redraw(which);
}

/** Another conversation is drawn, or none: no menu is open in it. */
export function forget() {
  openFor = null;
  deleteArmed = null;
}

/** `selector` inside message `id`'s node, or null. */
const inMessage = (id, selector) => list.querySelector(`li.msg[data-id="${id}"] ${selector}`);

function onClick(event) {
  const li = event.target.closest('li.msg');
  const button = event.target.closest('[data-action]');
  if (!li || !li.dataset.id || !button) return;
  const id = Number(li.dataset.id);
  const entry = handlers.entry(id);
  if (!entry) return;
  const action = button.dataset.action;
  if (action === 'menu') {
    setMenu(openFor === id ? null : id);
    if (openFor === id) {
      const first = inMessage(id, '.emoji-pick');
      if (first) first.focus();
    }
  } else if (action === 'pick-emoji') {
    const emoji = button.dataset.emoji;
    const mine = reactedByMe(entry.msg, emoji);
    setMenu(null);
    handlers.onReact(id, emoji, !mine);
  } else if (action === 'reply') {
    setMenu(null);
    handlers.onReply(entry.msg);
  } else if (action === 'edit') {
    setMenu(null);
    handlers.onEdit(entry.msg);
  } else if (action === 'delete') {
    if (deleteArmed !== id) {
      // Deleting cannot be undone: ask for a second click (no dialog).
      deleteArmed = id;
      handlers.redraw(id);
      return;
    }
    setMenu(null);
    handlers.onDelete(entry.msg);
  }
}

function onSubmit(event) {
  const form = event.target.closest('.emoji-free');
  if (!form) return;
  event.preventDefault();
  const li = form.closest('li.msg');
  const input = form.querySelector('input');
  const emoji = input.value.trim();
  if (!li || !emoji) return;
  setMenu(null);
  handlers.onReact(Number(li.dataset.id), emoji, true);
}

/**
 * messageList: the <ol> the messages are drawn in. entry(id): message id's entry in the
 * conversation drawn, or null; redraw(id): draw that message again. onReact(id, emoji, on),
 * onReply(msg), onEdit(msg), onDelete(msg): what the menu asks for.
 */
export function bind(messageList, given) {
  list = messageList;
  handlers = given;
  list.addEventListener('click', onClick);
  list.addEventListener('submit', onSubmit);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && openFor !== null) {
      const id = openFor;
      setMenu(null);
      const again = inMessage(id, '.msg-menu-button');
      if (again) again.focus();
    }
  });
}
