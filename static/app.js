// The chat page: plain ES modules, no framework, no build step; the wire protocol is
// docs/protocol.md (a Socket.IO v4 client, the global `io`).
//
// Models own the state and report changes with on(): identity, presence, conversations,
// outbox, typing (history.js pages conversations in; directory.js pages in who is online
// when there are too many to list, docs/protocol.md §7). Views (view/) draw and report
// what the user does through bind(); they read models but change none. Controllers
// (session, chat, rooms, watching) turn one into the other. This file only connects them.
//
// v2 (docs/protocol.md §8, §9): changes.js applies `update`s and edits, deletes and reacts;
// reading.js marks the open conversation read and takes readMarker/read; mentions.js offers
// names to `@`; search.js searches. conversations.js holds the read state they change.
//
// v2 (docs/protocol.md §10): moderation.js holds roles, mutes, bans seen and blocks, takes
// the moderation roomEvents and sends setRole/kick/ban/mute/banUser/block; safety.js turns
// the member panel (view/members.js) and the DM header into those requests and draws what
// they change (a muted member's composer says until when); session.js takes `banned`.
//
// Rendering rule: user-controlled strings (names, room names, message text) reach the DOM
// only as text nodes (see dom.js); nothing assigns HTML.

import * as connection from './connection.js';
import * as identity from './identity.js';
import * as presence from './presence.js';
import * as directory from './directory.js';
import * as watching from './watching.js';
import * as conversations from './conversations.js';
import * as outbox from './outbox.js';
import * as typing from './typing.js';
import * as history from './history.js';
import * as session from './session.js';
import * as chat from './chat.js';
import * as rooms from './rooms.js';
import * as changes from './changes.js';
import * as reading from './reading.js';
import * as mentions from './mentions.js';
import * as search from './search.js';
import * as moderation from './moderation.js';
import * as safety from './safety.js';
import * as signin from './view/signin.js';
import * as header from './view/header.js';
import * as sidebar from './view/sidebar.js';
import * as people from './view/people.js';
import * as panels from './view/panels.js';
import * as messages from './view/messages.js';
import * as pending from './view/pending.js';
import * as composer from './view/composer.js';
import * as searchView from './view/search.js';
import * as members from './view/members.js';

connection.configure({ auth: identity.authPayload });
connection.on('welcome', session.onWelcome);
connection.on('signedOut', session.onSignedOut);
connection.on('connect_error', session.onConnectError);
connection.on('disconnect', session.onDisconnect);
connection.on('reconnect_attempt', session.onReconnectAttempt);
connection.on('reply', chat.onReply);
connection.on('addChat', chat.onUserJoined);
connection.on('userLeft', chat.onUserLeft);
connection.on('onlineCount', chat.onOnlineCount);
connection.on('typing', chat.onTyping);
connection.on('roomEvent', rooms.onRoomEvent);
connection.on('error', chat.onServerError);
connection.on('update', changes.onUpdate);
connection.on('readMarker', reading.onReadMarker);
connection.on('read', reading.onRead);
connection.on('banned', session.onBanned);

conversations.on('message', chat.onNewMessage);
conversations.on('entry', messages.insert);
conversations.on('entries', chat.onEntries);
conversations.on('status', chat.onHistoryStatus);
conversations.on('changed', sidebar.schedule);
conversations.on('updated', messages.refresh);
conversations.on('seen', messages.showSeen);
// What the open conversation shows is read (docs/protocol.md §9.1).
conversations.on('entry', reading.viewed);
conversations.on('entries', reading.viewed);
conversations.on('status', reading.viewed);
presence.on('changed', chat.onPresenceChanged);
// Above PRESENCE_LIMIT (docs/protocol.md §7) the user list is paged in by listUsers, and
// what the page shows (that list, the DMs) is what it watches.
presence.on('truncated', directory.refresh);
presence.on('truncated', watching.schedule);
directory.on('changed', sidebar.schedule);
directory.on('changed', watching.schedule);
conversations.on('changed', watching.schedule);
moderation.on('changed', safety.onChanged);
moderation.on('removed', rooms.onRemoved);
typing.on('changed', chat.onTypingChanged);
outbox.on('queued', chat.onQueued);
outbox.on('failed', chat.onSendFailed);
outbox.on('gone', pending.remove);
outbox.on('error', pending.markError);
history.init({ underfilled: messages.underfilled });

signin.bind({ onSignIn: session.signIn, onGuest: () => session.signIn({ guest: true }) });
header.bind({
  onSignOut: () => session.signOut({ explicit: true }),
  onLeave: rooms.leaveRoom,
  onClose: rooms.closeRoom,
  onBlock: safety.toggleBlock,
  onBanUser: safety.banPeer,
});
members.bind({ onShow: safety.onShowMembers, onAction: safety.memberAction, onMessage: safety.messageMember });
sidebar.bind({ onOpen: chat.openConversation, onUser: chat.openDm, onRendered: chat.onSidebarRendered });
people.bind({ onSearch: directory.search, onMore: directory.more });
panels.bind({
  onJoin: rooms.joinRoom,
  onOpen: chat.openConversation,
  onBrowse: rooms.browseRooms,
  onDm: chat.openDmByName,
});
composer.bind({
  onSubmit: chat.send,
  onEdit: changes.edit,
  onEditLast: changes.editLast,
  onInput: chat.onComposerInput,
  onBlur: chat.onComposerLeft,
  onMentionQuery: mentions.candidates,
});
messages.bind({
  onScrollTop: chat.loadOlder,
  onScrollBottom: chat.loadNewer,
  onJump: chat.jumpToReplied,
  onReply: changes.startReply,
  onEdit: changes.startEdit,
  onDelete: changes.remove,
  onReact: changes.react,
});
pending.bind({ onRetry: outbox.retry, onDiscard: chat.discardFailed });
searchView.bind({ onSearch: search.run, onMore: search.loadMore, onOpen: chat.openSearchResult });
reading.init();
window.addEventListener('storage', session.onStorage);

session.boot();
