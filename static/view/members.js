// The open room's member list (docs/protocol.md §10): everyone in it with their role
// (owner, moderator, member), who is online, who is muted and until when; and a menu on a
// member with what this user may do to them by the table of §10.1-10.2 (make moderator or
// member, kick, ban, mute for a while, unmute). A server admin's actions (§10.4) are shown
// once the page knows it is one, and otherwise behind "Server admin…" for registered users
// (the server says no to anyone else, and that is shown). Bans seen here can be lifted,
// and anyone can be unbanned by name. Names reach the page as text only (dom.js).

import { byId, h, patchChildren, setText } from '../dom.js';
import * as conversations from '../conversations.js';
import * as moderation from '../moderation.js';
import * as presence from '../presence.js';
import * as identity from '../identity.js';
import { lower, NAME_RE } from '../rules.js';

const CONFIRM_MS = 5000;
const ROLE_ORDER = { owner: 0, moderator: 1, member: 2 };

const toggle = byId('members-toggle');
const panel = byId('member-panel');
const heading = byId('member-heading');
const errorLine = byId('member-error');
const list = byId('member-list');
const bannedBox = byId('member-banned');
const bannedList = byId('member-banned-list');
const unbanForm = byId('unban-form');
const unbanName = byId('unban-name');

let handlers = null;
let shown = null;          // the room drawn
let menuFor = null;        // lower name of the member whose menu is open
let adminOpen = false;     // "Server admin…" unfolded in that menu
let armed = null;          // {action, name}: a ban asks for a second click
let armTimer = null;
let busy = false;

function disarm() {
  clearTimeout(armTimer);
  armed = null;
}

function closeMenu() {
  menuFor = null;
  adminOpen = false;
  disarm();
}

/** What the menu on `name` offers: [{action, label, arg?, danger?, confirm?}], in rows. */
function menuRows(conv, name) {
  const role = moderation.roleOf(conv, name);
  const self = identity.isMe(name);
  const byRole = moderation.actionsOn(conv, name);
  const asAdmin = moderation.isAdmin() || adminOpen;
  const all = moderation.actionsOn(conv, name, { asAdmin });
  const rows = [];
  rows.push([{ action: 'message', label: self ? 'Notes to yourself' : 'Message' }]);
  if (byRole.setRole) {
    rows.push([role === 'moderator'
      ? { action: 'role', arg: 'member', label: 'Make member' }
      : { action: 'role', arg: 'moderator', label: 'Make moderator' }]);
  }
  if (all.remove) {
    rows.push([
      { action: 'kick', label: 'Kick' },
      { action: 'ban', label: 'Ban', danger: true, confirm: 'Click again to ban' },
    ]);
    rows.push([
      ...moderation.MUTE_CHOICES.map((c) => ({ action: 'mute', arg: c.seconds, label: `Mute ${c.label}` })),
      { action: 'mute', arg: 0, label: 'Unmute' },
    ]);
  }
  if (all.banUser) {
    rows.push([
      { action: 'banUser', arg: true, label: 'Ban from server', danger: true, confirm: 'Click again to ban from the server' },
      { action: 'banUser', arg: false, label: 'Lift server ban' },
    ]);
  }
  // Not known to be an admin: a registered user may try (§10.4); the server decides.
  if (!self && !moderation.isAdmin() && !adminOpen && moderation.mayBeAdmin()) {
    rows.push([{ action: 'admin', label: 'Server admin…' }]);
  }
  return rows;
}

function actionButton(item, name) {
  const isArmed = armed && armed.name === lower(name) && armed.action === `${item.action}:${item.arg}`;
  const classes = ['menu-item'];
  if (item.danger) classes.push('danger-text');
  if (isArmed) classes.push('armed');
  const suffix = item.arg === undefined ? '' : `-${item.arg}`;
  return h('button', {
    type: 'button',
    class: classes.join(' '),
    'data-testid': `member-action-${item.action}${suffix}`,
    'data-action': item.action,
    'data-arg': item.arg === undefined ? null : String(item.arg),
    'data-confirm': item.confirm ? 'true' : null,
    disabled: busy,
  }, isArmed ? item.confirm : item.label);
}

function memberNode(conv, name) {
  const role = moderation.roleOf(conv, name);
  const self = identity.isMe(name);
  const online = presence.isOnline(name);
  const until = moderation.mutedUntil(conv.key, name);
  const open = menuFor === lower(name);
  const tags = [];
  if (role !== 'member') tags.push(h('span', { class: `tag role-${role}`, 'data-testid': 'member-role' }, role));
  if (until) {
    tags.push(h('span', { class: 'tag muted-tag', 'data-testid': 'member-muted' },
      `muted until ${moderation.untilText(until)}`));
  }
  if (self) tags.push(h('span', { class: 'tag' }, 'you'));
  return h('li', {
    class: open ? 'member open' : 'member',
    'data-testid': `member-${lower(name)}`,
    'data-name': name,
    'data-role': role,
  },
  h('div', { class: 'member-row' },
    h('span', { class: online ? 'dot online' : 'dot', 'aria-hidden': 'true' }),
    h('span', { class: 'member-name' }, name),
    h('span', { class: 'visually-hidden' }, online ? ', online' : ', offline'),
    ...tags,
    h('button', {
      type: 'button',
      class: 'msg-menu-button member-menu-button',
      'data-action': 'menu',
      'data-testid': 'member-menu',
      'aria-expanded': open ? 'true' : 'false',
      'aria-label': `Actions for ${name}`,
      title: 'Message, or moderate',
    }, '⋯')),
  open ? h('div', { class: 'msg-menu member-menu', 'data-testid': 'member-actions', role: 'group', 'aria-label': `Actions for ${name}` },
    menuRows(conv, name).map((row) => h('div', { class: 'menu-row' }, row.map((item) => actionButton(item, name)))))
    : null);
}

function sortedMembers(conv) {
  const names = new Map();
  for (const n of conv.members || []) if (typeof n === 'string') names.set(lower(n), n);
  const info = conv.info || {};
  // The owner and moderators are members (ROOM_INFO, §10.1) even before the list is known.
  if (info.owner) names.set(lower(info.owner), names.get(lower(info.owner)) || info.owner);
  for (const n of info.moderators || []) names.set(lower(n), names.get(lower(n)) || n);
  return [...names.values()].sort((a, b) => (ROLE_ORDER[moderation.roleOf(conv, a)] - ROLE_ORDER[moderation.roleOf(conv, b)])
    || lower(a).localeCompare(lower(b)));
}

/** May this user lift bans here (by its role, or as a known or would-be admin)? */
function mayUnban(conv) {
  const role = moderation.myRole(conv);
  return role === 'owner' || role === 'moderator' || moderation.isAdmin();
}

/** Draw the panel for `conv` (the open conversation); hidden for anything but a room. */
export function render(conv) {
  const isRoom = conv && conv.type === 'room';
  toggle.hidden = !isRoom;
  if (!isRoom) {
    panel.hidden = true;
    toggle.setAttribute('aria-expanded', 'false');
    shown = null;
    return;
  }
  if (shown !== conv.key) {
    closeMenu();
    setText(errorLine, '');
    shown = conv.key;
  }
  const names = sortedMembers(conv);
  const count = Number.isInteger(conv.info && conv.info.members) ? conv.info.members : names.length;
  setText(toggle, `Members (${count})`);
  toggle.setAttribute('aria-expanded', panel.hidden ? 'false' : 'true');
  if (panel.hidden) return;
  const focused = panel.contains(document.activeElement) ? document.activeElement : null;
  const focusedTestId = focused ? focused.dataset.testid : null;
  const focusedMember = focusedTestId ? focused.closest('[data-name]') : null;
  const focusedName = focusedMember ? lower(focusedMember.dataset.name) : null;

  setText(heading, `Members of ${conv.title}`);
  // Updated in place, never rebuilt: this redraws on every presence change and room event,
  // and a member's row replaced between press and release would lose the click (dom.js).
  const rows = conv.members ? [] : [h('li', { class: 'empty' }, 'Loading…')];
  for (const name of names) rows.push(memberNode(conv, name));
  patchChildren(list, rows);

  const banned = moderation.bannedIn(conv.key);
  const canUnban = mayUnban(conv);
  bannedBox.hidden = !canUnban && !(moderation.mayBeAdmin() && adminOpen);
  patchChildren(bannedList, banned.map((name) => h('li', {
    class: 'banned-member', 'data-testid': `banned-${lower(name)}`, 'data-name': name,
  },
  h('span', { class: 'member-name' }, name), ' ',
  h('button', {
    type: 'button', class: 'menu-item', 'data-action': 'unban', 'data-testid': 'member-action-unban', disabled: busy,
  }, 'Unban'))));
  // The focused control is normally still there; one that was moved or redrawn gets it back.
  if (focusedTestId && !panel.contains(document.activeElement)) {
    const scope = focusedName ? list.querySelector(`[data-testid="member-${CSS.escape(focusedName)}"]`) : panel;
    const again = scope && scope.querySelector(`[data-testid="${CSS.escape(focusedTestId)}"]`);
    if (again) again.focus();
  }
}

/** A refusal or failure of the last action (empty: none). */
export function showError(text) {
  setText(errorLine, text || '');
}

function redraw() {
  const conv = conversations.active();
  if (conv) render(conv);
}

function open(value) {
  panel.hidden = !value;
  toggle.setAttribute('aria-expanded', value ? 'true' : 'false');
  if (!value) closeMenu();
  const conv = conversations.active();
  if (value && conv) handlers.onShow(conv);
  redraw();
}

async function run(action, name, arg) {
  busy = true;
  panel.setAttribute('aria-busy', 'true'); // until the answer (then the menu closes, or says why not)
  redraw();
  const text = await handlers.onAction(action, name, arg);
  busy = false;
  panel.removeAttribute('aria-busy');
  showError(text);
  if (!text && action !== 'message') closeMenu();
  redraw();
}

function onClick(event) {
  const button = event.target.closest('button[data-action]');
  if (!button || button.disabled) return;
  const holder = button.closest('[data-name]');
  const name = holder ? holder.dataset.name : null;
  const action = button.dataset.action;
  if (!name) return;
  if (action === 'menu') {
    const k = lower(name);
    const opening = menuFor !== k;
    closeMenu();
    if (opening) menuFor = k;
    showError('');
    redraw();
    return;
  }
  if (action === 'admin') {
    adminOpen = true;
    redraw();
    return;
  }
  let arg = button.dataset.arg;
  if (action === 'mute') arg = Number(arg);
  else if (action === 'banUser') arg = arg === 'true';
  if (button.dataset.confirm === 'true') {
    const key = `${action}:${button.dataset.arg}`;
    if (!armed || armed.name !== lower(name) || armed.action !== key) {
      // Banning keeps someone out: ask for a second click, as closing a room does.
      disarm();
      armed = { action: key, name: lower(name) };
      armTimer = setTimeout(() => {
        armed = null;
        redraw();
      }, CONFIRM_MS);
      redraw();
      return;
    }
    disarm();
  }
  if (action === 'message') {
    closeMenu();
    handlers.onMessage(name);
    return;
  }
  run(action, name, arg);
}

/**
 * onShow(conv): the panel opened (members may need asking for); onAction(action, name,
 * arg) resolves to an error text or '' (action: role | kick | ban | unban | mute |
 * banUser); onMessage(name): open a DM.
 */
export function bind(given) {
  handlers = given;
  toggle.addEventListener('click', () => open(panel.hidden));
  panel.addEventListener('click', onClick);
  panel.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && menuFor !== null) {
      const k = menuFor;
      closeMenu();
      redraw();
      const again = list.querySelector(`[data-testid="member-${CSS.escape(k)}"] [data-action="menu"]`);
      if (again) again.focus();
    }
  });
  unbanForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = unbanName.value.trim();
    if (!NAME_RE.test(name)) {
      showError('Enter the name of the user to let back in.');
      unbanName.focus();
      return;
    }
    await run('unban', name);
    if (!errorLine.textContent) unbanName.value = '';
  });
}
