// The message box: Enter sends, Shift+Enter starts a new line; a counter near the length
// limit; one draft per conversation; and, just above it, who else is typing there.
// v2 (docs/protocol.md §8.2, §9.3): it also edits a message (Up arrow in an empty box edits
// my last one, Escape cancels) and answers one (replyTo), shown in a line above it; and
// typing `@` offers the conversation's members to mention. A member muted in a room (§10.2)
// sees until when instead of a box to write in.

import { byId, h, clear, setText, codePoints, clip } from '../dom.js';
import { TEXT_LIMIT } from '../rules.js';

const COUNTER_FROM = 1800;   // show the character counter from here on
const MAX_HEIGHT_PX = 200;

const form = byId('composer');
const input = byId('composer-input');
const counter = byId('char-counter');
const errorLine = byId('composer-error');
const typingLine = byId('typing-indicator');
const contextBar = byId('composer-context');
const contextText = byId('composer-context-text');
const cancelButton = byId('composer-cancel');
const mentionList = byId('mention-list');
const sendButton = byId('send-button');
const mutedLine = byId('composer-muted');

const QUOTE_CHARS = 80;
const MENTION_MAX = 8;
// `@` and what follows it up to the caret, at the start or after a character a name cannot
// hold (docs/protocol.md §1.3 names; §9.3 mentions).
const MENTION_AT_CARET = /(?:^|[^\p{L}\p{N}_.-])@([\p{L}\p{N}_.-]{0,32})$/u;

let drafts = new Map();
let mode = null;          // {type: 'edit' | 'reply', id, ...}: what Enter does besides sending
let stashed = '';         // the draft put aside while editing
let handlers = null;
let mentionState = null;  // {start, names, selected} while the list is open
let mentionAsk = 0;

export const text = () => input.value;

function update() {
  const n = codePoints(input.value.trim());
  if (n >= COUNTER_FROM) {
    const left = TEXT_LIMIT - n;
    setText(counter, left >= 0 ? `${left} characters left` : `${-left} characters over the limit`);
    counter.classList.toggle('over', left < 0);
  } else {
    setText(counter, '');
    counter.classList.remove('over');
  }
  // Grow with the text, up to a limit (CSSOM, which the page's CSP allows).
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight + 2, MAX_HEIGHT_PX)}px`;
}

export function focus(options) {
  input.focus(options);
}

/** Another conversation is opened: keep the draft of the one left, bring back its own. */
export function switchDraft(fromKey, toKey) {
  if (fromKey !== toKey) cancelMode();
  drafts.set(fromKey, input.value);
  setText(errorLine, '');
  input.value = drafts.get(toKey) || '';
  update();
}

/** The text was queued for sending. */
export function sent(key) {
  input.value = '';
  drafts.delete(key);
  if (mode && mode.type === 'reply') cancelMode();
  closeMentions();
  update();
}

// -- editing and replying (docs/protocol.md §8.2) --------------------------------------

function showContext(text) {
  setText(contextText, text);
  contextBar.hidden = false;
  contextBar.dataset.mode = mode ? mode.type : '';
}

/** Put message `msg` (mine) in the box to edit it; Enter saves, Escape cancels. */
export function startEdit(msg) {
  if (!mode || mode.type !== 'edit') stashed = input.value;
  mode = { type: 'edit', id: msg.id };
  input.value = String(msg.text ?? '');
  showContext('Editing your message · Enter saves · Escape cancels');
  setText(errorLine, '');
  update();
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

/** The next send answers `msg`. */
export function startReply(msg) {
  if (mode && mode.type === 'edit') {
    input.value = stashed;
    stashed = '';
  }
  mode = { type: 'reply', id: msg.id };
  showContext(`Replying to ${msg.from ?? '?'}: ${clip(msg.text, QUOTE_CHARS)}`);
  update();
  input.focus();
}

/** Back to plain sending; an edit gives the draft back. */
export function cancelMode() {
  if (!mode) return;
  if (mode.type === 'edit') {
    input.value = stashed;
    stashed = '';
  }
  mode = null;
  contextBar.hidden = true;
  setText(contextText, '');
  setText(errorLine, '');
  update();
}

/** The message being edited or answered is gone (deleted): stop. */
export function forgetMessage(id) {
  if (mode && mode.id === id) cancelMode();
}

/** text: why this user cannot write here now (muted until when, §10.2), or null. */
export function setMuted(text) {
  const muted = !!text;
  setText(mutedLine, text || '');
  mutedLine.hidden = !muted;
  if (input.disabled === muted) return;
  input.disabled = muted;
  sendButton.disabled = muted;
  if (muted) closeMentions();
}

// -- @ autocomplete (docs/protocol.md §9.3) --------------------------------------------

function closeMentions() {
  mentionAsk += 1;
  mentionState = null;
  mentionList.hidden = true;
  clear(mentionList);
  input.setAttribute('aria-expanded', 'false');
  input.removeAttribute('aria-activedescendant');
}

function drawMentions() {
  clear(mentionList);
  const { names, selected } = mentionState;
  names.forEach((name, i) => {
    mentionList.appendChild(h('li', {
      id: `mention-option-${i}`,
      role: 'option',
      class: i === selected ? 'mention-option selected' : 'mention-option',
      'aria-selected': i === selected ? 'true' : 'false',
      'data-testid': 'mention-option',
      'data-name': name,
      on: {
        mousedown: (event) => event.preventDefault(), // keep focus in the box
        click: () => acceptMention(i),
      },
    }, `@${name}`));
  });
  mentionList.hidden = false;
  input.setAttribute('aria-expanded', 'true');
  input.setAttribute('aria-activedescendant', `mention-option-${selected}`);
}

async function lookForMention() {
  const before = input.value.slice(0, input.selectionStart ?? input.value.length);
  const match = before.match(MENTION_AT_CARET);
  if (!match || !handlers.onMentionQuery) {
    closeMentions();
    return;
  }
  const prefix = match[1];
  const start = before.length - prefix.length - 1;
  mentionAsk += 1;
  const mine = mentionAsk;
  const names = (await handlers.onMentionQuery(prefix)).slice(0, MENTION_MAX);
  if (mine !== mentionAsk) return; // typed on meanwhile
  if (!names.length) {
    closeMentions();
    return;
  }
  mentionState = { start, names, selected: 0 };
  drawMentions();
}

function acceptMention(i) {
  if (!mentionState) return;
  const name = mentionState.names[i];
  const caret = input.selectionStart ?? input.value.length;
  const value = input.value;
  const inserted = `@${name} `;
  input.value = value.slice(0, mentionState.start) + inserted + value.slice(caret).replace(/^ /, '');
  const at = mentionState.start + inserted.length;
  closeMentions();
  input.focus();
  input.setSelectionRange(at, at);
  update();
  if (handlers.onInput) handlers.onInput(input.value);
}

/** Keys for the open list; true when the key was used. */
function mentionKey(event) {
  if (!mentionState) return false;
  const n = mentionState.names.length;
  if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
    mentionState.selected = (mentionState.selected + (event.key === 'ArrowDown' ? 1 : n - 1)) % n;
    drawMentions();
    return true;
  }
  if ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Tab') {
    acceptMention(mentionState.selected);
    return true;
  }
  if (event.key === 'Escape') {
    closeMentions();
    return true;
  }
  return false;
}

export function forgetDrafts() {
  drafts = new Map();
}

export function clearInput() {
  input.value = '';
}

/** title: null for the lobby (everyone reads it), else the conversation's title. */
export function setPlaceholder(title) {
  input.placeholder = title === null ? 'Message everyone…' : `Message ${title}…`;
}

export function showTyping(names) {
  let line = '';
  if (names.length === 1) line = `${names[0]} is typing…`;
  else if (names.length === 2) line = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) line = 'Several people are typing…';
  setText(typingLine, line);
}

async function submit() {
  const value = input.value;
  if (!value.trim()) {
    if (mode && mode.type === 'edit') setText(errorLine, 'A message cannot be empty: delete it from its menu instead.');
    return;
  }
  const n = codePoints(value.trim());
  if (n > TEXT_LIMIT) {
    setText(errorLine, `This message is ${n - TEXT_LIMIT} characters too long (at most ${TEXT_LIMIT}).`);
    return;
  }
  setText(errorLine, '');
  closeMentions();
  if (mode && mode.type === 'edit') {
    const editing = mode;
    const error = await handlers.onEdit(editing.id, value);
    if (mode !== editing) return;
    if (error) setText(errorLine, error);
    else cancelMode();
    return;
  }
  handlers.onSubmit(value, mode && mode.type === 'reply' ? { replyTo: mode.id } : {});
}

/**
 * onSubmit(text, {replyTo?}): a message to send; onEdit(id, text) resolves to an error
 * text or null; onEditLast(): Up arrow in the empty box; onInput(text): a keystroke;
 * onBlur(): left empty; onMentionQuery(prefix) resolves to names to offer.
 */
export function bind(given) {
  handlers = given;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
    input.focus();
  });
  cancelButton.addEventListener('click', () => {
    cancelMode();
    input.focus();
  });
  input.addEventListener('keydown', (event) => {
    if (event.isComposing) return;
    if (mentionKey(event)) {
      event.preventDefault();
      return;
    }
    if (event.key === 'Enter' && !event.shiftKey && !event.altKey) {
      event.preventDefault();
      submit();
    } else if (event.key === 'ArrowUp' && input.value === '' && !mode && !event.shiftKey) {
      event.preventDefault();
      handlers.onEditLast();
    } else if (event.key === 'Escape' && mode) {
      event.preventDefault();
      cancelMode();
    }
  });
  input.addEventListener('input', () => {
    update();
    setText(errorLine, '');
    handlers.onInput(input.value);
    lookForMention();
  });
  input.addEventListener('click', () => {
    if (mentionState) lookForMention();
  });
  input.addEventListener('blur', () => {
    closeMentions();
    if (!input.value.trim()) handlers.onBlur();
  });
}
