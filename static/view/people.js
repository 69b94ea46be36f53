// The sidebar's "Online" section: how many users are online, and who. Up to
// PRESENCE_LIMIT online that is everyone (presence.js), as in v1. Above it (docs/
// protocol.md §7) the page cannot hold everyone: the list is the directory's pages of
// `listUsers` (directory.js), with a search box (a name prefix) and a "more" button; the
// users listed are watched (watching.js), so their dots follow them going and coming.

import { byId, h, patchChildren, setText } from '../dom.js';
import * as presence from '../presence.js';
import * as directory from '../directory.js';
import * as identity from '../identity.js';
import { lower } from '../rules.js';

const userList = byId('user-list');
const onlineCount = byId('online-count');
const searchForm = byId('user-search-form');
const searchBox = byId('user-search');
const note = byId('user-list-note');
const moreButton = byId('users-more');

function userButton(name, online) {
  const self = identity.isMe(name);
  const state = online ? '' : ' (offline)';
  return h('li', { 'data-key': lower(name) },
    h('button', {
      type: 'button',
      class: online ? 'user-btn' : 'user-btn offline',
      'data-testid': `user-${lower(name)}`,
      'data-name': name,
      'data-online': online ? 'true' : 'false',
      title: self ? 'Notes to yourself' : `Message ${name}${state}`,
    },
    h('span', { class: online ? 'dot online' : 'dot', 'aria-hidden': 'true' }),
    h('span', { class: 'conv-name' }, name),
    self ? h('span', { class: 'tag' }, 'you') : null,
    h('span', { class: 'visually-hidden' },
      `${online ? '' : ', offline'}${self ? ': notes to yourself' : ': send a direct message'}`)));
}

function everyone() {
  // v1: everyone online, yourself first.
  return presence.list().sort((a, b) => {
    if (identity.isMe(a.name) !== identity.isMe(b.name)) return identity.isMe(a.name) ? -1 : 1;
    return lower(a.name).localeCompare(lower(b.name));
  }).map((user) => userButton(user.name, true));
}

function noteText() {
  if (directory.isLoading()) return 'Loading…';
  if (directory.error()) return directory.error();
  if (directory.isLoaded() && !directory.shown().length) {
    return directory.query() ? `No one online has a name starting with “${directory.query()}”.` : 'No one online.';
  }
  return '';
}

export function render() {
  setText(onlineCount, `(${presence.count()})`);
  const truncated = presence.isTruncated();
  searchForm.hidden = !truncated;
  // Updated in place, never rebuilt: this redraws whenever anyone comes or goes, and a
  // button replaced between press and release would lose the click (dom.js). Clicks come
  // through the sidebar's one listener (sidebar.js).
  if (!truncated) {
    patchChildren(userList, everyone());
    setText(note, '');
    note.hidden = true;
    moreButton.hidden = true;
    if (searchBox.value) searchBox.value = '';
    return;
  }
  // §7: the pages asked so far, each user with what is known of them (watched: current).
  patchChildren(userList, directory.shown().map((name) => userButton(name, presence.isOnline(name))));
  // A search forgotten (signed out, signed in as someone else) empties the box as well.
  if (document.activeElement !== searchBox && searchBox.value.trim() !== directory.query()) {
    searchBox.value = directory.query();
  }
  const text = noteText();
  setText(note, text);
  note.hidden = !text;
  moreButton.hidden = !directory.hasMore();
  moreButton.disabled = directory.isLoading();
}

/** onSearch(prefix, {now}): the search box changed (now: Enter); onMore(): the next page, a promise. */
export function bind({ onSearch, onMore }) {
  searchBox.addEventListener('input', () => onSearch(searchBox.value));
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    onSearch(searchBox.value, { now: true });
  });
  moreButton.addEventListener('click', async () => {
    const before = directory.shown().length;
    await onMore();
    // The last page hides the button: focus goes on to the first user of that page, not
    // to the top of the document (the sidebar draws on the next tick, so look after it).
    setTimeout(() => {
      if (!moreButton.hidden) return;
      const buttons = userList.querySelectorAll('.user-btn');
      if (buttons[before]) buttons[before].focus();
    }, 0);
  });
}
