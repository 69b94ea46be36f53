// The search box in the top bar and its results (docs/protocol.md §9.4): each result says
// where and who, shows the text (as text), and opens the conversation at that message.

import { byId, h, clear, setText, formatTime } from '../dom.js';
import * as identity from '../identity.js';

const SEARCH_DELAY_MS = 400;
const MIN_CHARS = 2;

const form = byId('search-form');
const input = byId('search-input');
const panel = byId('search-panel');
const statusLine = byId('search-status');
const list = byId('search-results');
const moreButton = byId('search-more');
const closeButton = byId('search-close');

let handlers = null;
let timer = null;

function where(m) {
  if (m.kind === 'broadcast' || m.conversation === 'lobby') return 'Lobby';
  if (m.kind === 'room' || String(m.conversation).startsWith('#')) return typeof m.to === 'string' ? m.to : m.conversation;
  const other = identity.isMe(m.from) ? m.to : m.from;
  return identity.isMe(other) ? 'Notes to yourself' : `Direct with ${other ?? '?'}`;
}

function resultNode(m) {
  return h('li', {},
    h('button', {
      type: 'button', class: 'search-result', 'data-testid': 'search-result', 'data-id': m.id,
      on: { click: () => handlers.onOpen(m) },
    },
    h('span', { class: 'result-head' },
      h('span', { class: 'result-where' }, where(m)), ' · ',
      h('span', { class: 'result-from' }, m.from ?? '?'), ' · ',
      h('time', {}, formatTime(m.ts))),
    h('span', { class: 'result-text', 'data-testid': 'search-result-text' }, String(m.text ?? ''))));
}

export function showLoading() {
  panel.hidden = false;
  setText(statusLine, 'Searching…');
}

export function showError(text) {
  panel.hidden = false;
  setText(statusLine, text);
}

export function showResults(query, results, more) {
  panel.hidden = false;
  clear(list);
  for (const m of results) list.appendChild(resultNode(m));
  setText(statusLine, results.length
    ? `${results.length}${more ? '+' : ''} message${results.length === 1 ? '' : 's'} with “${query}”`
    : `No messages with “${query}”.`);
  moreButton.hidden = !more;
}

export function close() {
  panel.hidden = true;
  clear(list);
  setText(statusLine, '');
  moreButton.hidden = true;
}

/** Signed out: nothing of the last search stays. */
export function reset() {
  clearTimeout(timer);
  input.value = '';
  close();
}

/** onSearch(text): search (empty: close); onMore(); onOpen(message). */
export function bind(given) {
  handlers = given;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(timer);
    handlers.onSearch(input.value);
  });
  input.addEventListener('input', () => {
    clearTimeout(timer);
    const text = input.value.trim();
    if (!text) {
      handlers.onSearch('');
      return;
    }
    if (text.length < MIN_CHARS) return;
    timer = setTimeout(() => handlers.onSearch(input.value), SEARCH_DELAY_MS);
  });
  moreButton.addEventListener('click', () => handlers.onMore());
  closeButton.addEventListener('click', () => {
    close();
    input.focus();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !panel.hidden && (panel.contains(document.activeElement) || document.activeElement === input)) {
      close();
      input.focus();
    }
  });
}
