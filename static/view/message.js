// One confirmed message as its <li>: who and when, "(edited)", the quote of the message it
// answers, its text (or its tombstone once deleted, docs/protocol.md §8.4), its reactions,
// and its menu while open. Mine, and one mentioning me in a room, stand out.

import { h, formatTime } from '../dom.js';
import * as identity from '../identity.js';
import * as conversations from '../conversations.js';
import { richText } from './richtext.js';
import { quoteNode } from './quote.js';
import { reactionsNode } from './reactions.js';
import * as menu from './menu.js';

export function messageNode(conv, m) {
  const when = new Date(m.ts);
  const valid = !Number.isNaN(when.getTime());
  const mine = identity.isMe(m.from);
  const classes = ['msg'];
  if (mine) classes.push('mine');
  if (m.deleted) classes.push('deleted');
  if (!m.deleted && conv && conv.type !== 'dm' && conversations.mentionsMe(m)) classes.push('mentions-me');
  const edited = m.editedAt && !m.deleted ? new Date(m.editedAt) : null;
  const menuOpen = menu.isOpenFor(m.id);
  return h('li', {
    class: classes.join(' '),
    'data-testid': 'message',
    'data-id': m.id,
    'data-from': m.from ?? '',
    'data-deleted': m.deleted ? 'true' : null,
  },
  h('div', { class: 'msg-head' },
    h('span', { class: 'msg-from', 'data-testid': 'message-from' }, m.from ?? '?'),
    h('time', {
      class: 'msg-time',
      datetime: valid ? when.toISOString() : null,
      title: valid ? when.toLocaleString() : null,
    }, formatTime(m.ts)),
    edited ? h('span', {
      class: 'msg-edited', 'data-testid': 'message-edited',
      title: Number.isNaN(edited.getTime()) ? null : `Edited ${edited.toLocaleString()}`,
    }, '(edited)') : null,
    m.deleted ? null : h('button', {
      type: 'button',
      class: 'msg-menu-button',
      'data-action': 'menu',
      'data-testid': 'message-menu',
      'aria-expanded': menuOpen ? 'true' : 'false',
      'aria-label': `Actions for the message from ${m.from ?? '?'}`,
      title: 'Reply, react, edit or delete',
    }, '⋯')),
  Number.isSafeInteger(m.replyTo) && !m.deleted ? quoteNode(conv, m) : null,
  m.deleted
    ? h('div', { class: 'msg-text msg-deleted', 'data-testid': 'message-text' },
      h('em', { 'data-testid': 'message-deleted' }, 'This message was deleted.'))
    : h('div', { class: 'msg-text', 'data-testid': 'message-text' }, richText(conv, m)),
  m.deleted ? null : reactionsNode(m),
  menuOpen && !m.deleted ? menu.menuNode(conv, m) : null);
}
