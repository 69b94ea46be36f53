// Signing in and out, and the life of the connection (docs/protocol.md §1):
// the welcome, refused connections, lost ones, and other tabs signing out. v2: a user
// banned from the server (§10.4) is told why, by `banned {by}` before the server closes
// the connection or by the connect error `banned` (§1.6), and the page stops trying.

import * as connection from './connection.js';
import * as identity from './identity.js';
import * as conversations from './conversations.js';
import * as presence from './presence.js';
import * as directory from './directory.js';
import * as watching from './watching.js';
import * as outbox from './outbox.js';
import * as typing from './typing.js';
import * as history from './history.js';
import * as reading from './reading.js';
import * as moderation from './moderation.js';
import * as store from './storage.js';
import * as chat from './chat.js';
import * as signin from './view/signin.js';
import * as header from './view/header.js';
import * as sidebar from './view/sidebar.js';
import * as status from './view/status.js';
import * as messages from './view/messages.js';
import * as composer from './view/composer.js';
import * as searchView from './view/search.js';
import { CONNECT_ERRORS } from './errors.js';
import { isGuestName } from './rules.js';

/**
 * The one place a session starts over: a welcome, a lost connection and a sign-out all
 * come through here. online: welcomed, so sends may go; forget: the identity changes, so
 * its conversations, who is online, its unsent messages and drafts go too.
 */
export function resetSession({ online = false, forget = false } = {}) {
  connection.beginSession(online);
  outbox.abort();
  typing.reset();
  reading.reset();
  // A watch list belongs to one connection (docs/protocol.md §7): a new one watches
  // nothing until the page sends it again. The pages of listUsers are asked again after
  // the welcome; until then (reconnecting) the list shown stays.
  watching.reset();
  if (online || forget) directory.reset({ forget });
  if (!forget) return;
  banned = null;
  moderation.reset();
  identity.forgetProgress();
  conversations.reset();
  presence.reset();
  outbox.reset();
  composer.forgetDrafts();
  composer.cancelMode();
  searchView.reset();
}

// Banned from the server (§10.4): {by} (null when the connect error told it), or null.
let banned = null;

function bannedText() {
  const by = banned && banned.by ? ` by ${banned.by}` : '';
  return `You have been banned from this chat server${by}. You cannot connect; `
    + 'ask its admins if you think this is a mistake.';
}

/** Say so, and try no more: a reconnect would only be refused again (§1.6). */
function showBanned() {
  connection.disconnect();
  status.showBanner('banned', bannedText());
  header.showError(bannedText());
}

/** `banned {by}`: a server admin banned this user; the server closes the connection next. */
export function onBanned(ev) {
  banned = { by: ev && typeof ev.by === 'string' ? ev.by : null };
  showBanned();
}

function showChat() {
  signin.hide();
  header.showChat(identity.current().name);
}

function showSignIn() {
  header.hideChat();
  status.hideBanner();
  sidebar.resetTitle();
  signin.show();
}

function connect() {
  if (connection.connect()) return;
  const text = 'The chat library did not load. Please reload the page.';
  if (identity.isSignedIn()) status.showBanner('offline', text);
  else signin.note(text);
}

const reconnectIn = (ms) => connection.reconnectIn(ms, identity.isSignedIn);

/** request: {name, password} or {guest: true}. */
export function signIn(request) {
  identity.startSignIn(request);
  signin.setBusy(true);
  connect();
}

/**
 * explicit: the person asked, so the server revokes this sign-in's token first (docs/
 * protocol.md §1.5; offline, it expires unused) and their unsent messages go too (a
 * guest's always do).
 */
export async function signOut({ explicit }) {
  const me = identity.signOut();
  if (me && explicit && connection.isReady()) await connection.call('signOut');
  resetSession({ forget: true });
  connection.disconnect();
  if (me && (explicit || isGuestName(me.name))) outbox.forgetStored(me.name);
  messages.clearAll();
  composer.clearInput();
  signin.setBusy(false);
  signin.showError('form', '');
  showSignIn();
}

/** This sign-in was revoked, here or in another tab (signOut), or everywhere. */
export function onSignedOut() {
  if (identity.isSignedIn()) signOut({ explicit: false });
}

export function onWelcome(w) {
  if (!w || typeof w !== 'object' || typeof w.name !== 'string') return;
  const firstShow = !header.chatShown();
  const sameUser = identity.isMe(w.name);
  resetSession({ online: true, forget: !sameUser });
  identity.welcomed(w);
  banned = null;
  moderation.onWelcome(w); // blocked (§10.5)
  signin.signedIn();
  presence.welcome(w); // users, online, usersTruncated (§7): truncated asks listUsers
  // Rooms: exactly the ones this identity is in now.
  for (const conv of conversations.syncRooms(w.rooms)) {
    chat.removeConversation(conv.key, `You are no longer in ${conv.title}.`);
  }
  identity.settleBaseline(conversations.noteLastIds(w.conversations));
  outbox.restore();
  showChat();
  status.showBanner('online');
  if (firstShow || !sameUser) chat.openConversation(conversations.activeKey(), false);
  else chat.refreshOpen();
  history.ensureLoaded(conversations.active());
  reading.viewed();
  outbox.pump();
  const from = identity.replayFrom();
  if (w.replayTruncated === true && from !== null) history.catchUp(from);
}

// How long to wait before retrying a refused resume: longer when the server counts our
// attempts (CONNECT_RATE, docs/protocol.md §1.6), so retrying does not keep the budget spent.
const RETRY_MS = { rate_limited: 10000 };

export function onConnectError(err) {
  const data = err && err.data;
  let code = data && typeof data === 'object' ? data.code : null;
  if (!code && err && CONNECT_ERRORS[err.message]) code = err.message;
  if (!code) {
    // Could not reach the server (or a transport error): the client retries by itself.
    const text = 'Cannot reach the chat server. Retrying…';
    if (identity.isSignedIn()) status.showBanner('reconnecting', text);
    else if (identity.isSigningIn()) signin.note(text);
    if (!connection.isRetrying() && (identity.isSignedIn() || identity.isSigningIn())) reconnectIn(2000);
    return;
  }
  const known = CONNECT_ERRORS[code];
  const text = known ? known.text : (data && data.message) || 'The server refused the connection.';
  if (code === 'banned' && identity.isSignedIn() && !identity.isSigningIn()) {
    // A saved identity that is banned (after a reload, or a ban while away): no retry. The
    // identity stays, so that a reload connects again once the ban is lifted.
    if (!banned) banned = { by: null };
    showBanned();
    return;
  }
  if (identity.isSignedIn() && !identity.isSigningIn()) {
    // Resuming a saved identity.
    if (code !== 'bad_token' && code !== 'invalid_payload') {
      // Not about who we are (server full, too many connections, store down, ...): keep
      // the identity, retry.
      status.showBanner('reconnecting', `${text} Retrying…`);
      reconnectIn(RETRY_MS[code] ?? 4000);
      return;
    }
    // bad_token, or invalid_payload: the saved session cannot be used (a corrupt token).
    const wasGuest = isGuestName(identity.current().name);
    signOut({ explicit: false });
    signin.showError('form', wasGuest
      ? 'Your guest session has ended. Pick a name, or continue as a new guest.'
      : CONNECT_ERRORS.bad_token.text);
    return;
  }
  // A fresh sign-in was refused: say why, next to the field concerned.
  signin.setBusy(false);
  identity.abandonSignIn();
  signin.showError(known ? known.field : 'form', text);
}

export function onDisconnect(reason) {
  resetSession();
  if (!identity.isSignedIn() || reason === 'io client disconnect') return;
  if (banned) {
    showBanned();
    return;
  }
  status.showBanner('reconnecting', 'Connection lost. Reconnecting…');
  // socket.io does not retry by itself after the server closed the connection.
  if (reason === 'io server disconnect') reconnectIn(1000);
}

export function onReconnectAttempt(n) {
  if (identity.isSignedIn()) status.showBanner('reconnecting', `Connection lost. Reconnecting… (attempt ${n})`);
}

/** Another tab signed out, or signed in as someone else. */
export function onStorage(event) {
  if (event.key !== store.IDENTITY_KEY && event.key !== null) return;
  const saved = store.loadIdentity();
  const here = identity.isSignedIn();
  if (!saved && here) {
    signOut({ explicit: false });
    signin.showError('form', 'You signed out in another tab.');
  } else if (saved && here && !identity.isMe(saved.name)) {
    window.location.reload();
  } else if (saved && here) {
    identity.takeToken(saved.token);
  } else if (saved && !here && !identity.isSigningIn()) {
    window.location.reload();
  }
}

export function boot() {
  const saved = store.loadIdentity();
  if (!saved) {
    showSignIn();
    return;
  }
  identity.resume(saved);
  outbox.restore();
  const key = store.loadActive() || 'lobby';
  // A room or DM from before the reload: it is confirmed (or dropped) by the welcome.
  conversations.ensureFromKey(key);
  showChat();
  status.showBanner('connecting', 'Connecting…');
  chat.openConversation(key, false);
  connect();
}
