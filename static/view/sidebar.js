// The sidebar: the lobby, rooms and direct messages with their unread counts, who is
// online (drawn by people.js), the unread total (menu badge and tab title); on a phone,
// the drawer holding it.

import { byId, h, patchChildren, setText } from '../dom.js';
import * as conversations from '../conversations.js';
import * as presence from '../presence.js';
import * as identity from '../identity.js';
import * as people from './people.js';
import { lower } from '../rules.js';
import { coalesced } from '../coalesce.js';

const sidebar = byId('sidebar');
const lobbyList = byId('lobby-list');
const roomList = byId('room-list');
const dmList = byId('dm-list');
const menuToggle = byId('menu-toggle');
const menuUnread = byId('menu-unread');
const backdrop = byId('sidebar-backdrop');

let onRendered = () => {};

const badgeText = (n) => (n > 99 ? '99+' : String(n));

/** Draw on the next tick: many changes in a row draw once. */
export const schedule = coalesced(render, 0);

function convButton(conv) {
  const active = conv.key === conversations.activeKey();
  const label = conv.type === 'lobby' ? 'Lobby'
    : conv.type === 'dm' && identity.isMe(conv.peer) ? `${conv.peer} (you)` : conv.title;
  const button = h('button', {
    type: 'button',
    class: active ? 'conv-btn active' : 'conv-btn',
    'data-testid': `conv-${conv.key}`,
    'data-conv': conv.key,
    'aria-current': active ? 'true' : null,
  });
  if (conv.type === 'dm') {
    button.appendChild(h('span', { class: presence.isOnline(conv.peer) ? 'dot online' : 'dot', 'aria-hidden': 'true' }));
  }
  button.appendChild(h('span', { class: 'conv-name' }, label));
  if (conv.type === 'room' && conv.info && conv.info.private) {
    button.appendChild(h('span', { class: 'tag' }, 'private'));
  }
  // Unread and mention counts (docs/protocol.md §9.2): from the welcome, kept current as
  // messages arrive, cleared by reading here or in another tab (readMarker).
  if (conv.mentions > 0 && !active) {
    button.appendChild(h('span', { class: 'badge mention-badge', 'data-testid': `mentions-${conv.key}`, 'aria-hidden': 'true' },
      `@${conv.mentions > 1 ? badgeText(conv.mentions) : ''}`));
  }
  if (conv.unread > 0 && !active) {
    button.appendChild(h('span', { class: 'badge', 'data-testid': `unread-${conv.key}`, 'aria-hidden': 'true' },
      badgeText(conv.unread)));
    const mentioned = conv.mentions > 0 ? `, ${conv.mentions} mentioning you` : '';
    button.appendChild(h('span', { class: 'visually-hidden' }, `, ${conv.unread} unread${mentioned}`));
  }
  return h('li', { 'data-key': conv.key }, button);
}

// Updated in place, never rebuilt: the sidebar redraws on every message, unread count and
// presence change, and a button replaced between press and release would lose the click
// (dom.js). Clicks come through the one listener bind() puts on the sidebar.
function fill(list, nodes, emptyText) {
  patchChildren(list, nodes.length ? nodes : [h('li', { class: 'empty' }, emptyText)]);
}

export function render() {
  if (!identity.isSignedIn()) return; // the chat is hidden: nothing to show
  // A button drawn again stays the same node and keeps focus; one that had to move (the
  // order changed) loses it, and gets it back below.
  const focused = document.activeElement;
  const focusId = focused && sidebar.contains(focused) ? focused.getAttribute('data-testid') : null;

  const convs = conversations.all();
  patchChildren(lobbyList, [convButton(conversations.get('lobby'))]);
  const rooms = convs.filter((c) => c.type === 'room').sort((a, b) => lower(a.title).localeCompare(lower(b.title)));
  fill(roomList, rooms.map(convButton), 'No rooms yet.');
  const dms = convs.filter((c) => c.type === 'dm').sort((a, b) => b.maxId - a.maxId || lower(a.peer).localeCompare(lower(b.peer)));
  fill(dmList, dms.map(convButton), 'Pick someone below to start.');

  people.render();

  const total = convs.reduce((n, c) => n + (c.key === conversations.activeKey() ? 0 : c.unread), 0);
  menuUnread.hidden = total === 0;
  setText(menuUnread, badgeText(total));
  document.title = total ? `(${total}) Chat` : 'Chat';

  onRendered();

  if (focusId && !sidebar.contains(document.activeElement)) {
    const again = sidebar.querySelector(`[data-testid="${CSS.escape(focusId)}"]`);
    if (again) again.focus();
  }
}

export function resetTitle() {
  document.title = 'Chat';
}

const drawerOpen = () => document.body.classList.contains('drawer-open');

function setDrawer(open) {
  document.body.classList.toggle('drawer-open', open);
  menuToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
  backdrop.hidden = !open;
}

function openDrawer() {
  setDrawer(true);
  const current = sidebar.querySelector('[aria-current="true"]') || sidebar.querySelector('button');
  if (current) current.focus();
}

export function closeDrawer() {
  if (drawerOpen()) setDrawer(false);
}

/** onOpen(key): a conversation picked; onUser(name): someone online picked; onRendered(). */
export function bind(handlers) {
  onRendered = handlers.onRendered;
  menuToggle.addEventListener('click', () => {
    if (drawerOpen()) closeDrawer();
    else openDrawer();
  });
  backdrop.addEventListener('click', closeDrawer);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && drawerOpen()) {
      closeDrawer();
      menuToggle.focus();
    }
  });
  // The buttons are drawn again often: one listener for all of them.
  sidebar.addEventListener('click', (event) => {
    const conv = event.target.closest('[data-conv]');
    if (conv) {
      handlers.onOpen(conv.dataset.conv);
      return;
    }
    const user = event.target.closest('.user-btn');
    if (user) handlers.onUser(user.dataset.name);
  });
}
