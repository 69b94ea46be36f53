// The message box: Enter sends, Shift+Enter starts a new line; a counter near the length
// limit; one draft per conversation; and, just above it, who else is typing there.

import { byId, setText, codePoints } from '../dom.js';
import { TEXT_LIMIT } from '../rules.js';

const COUNTER_FROM = 1800;   // show the character counter from here on
const MAX_HEIGHT_PX = 200;

const form = byId('composer');
const input = byId('composer-input');
const counter = byId('char-counter');
const errorLine = byId('composer-error');
const typingLine = byId('typing-indicator');

let drafts = new Map();

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
  drafts.set(fromKey, input.value);
  setText(errorLine, '');
  input.value = drafts.get(toKey) || '';
  update();
}

/** The text was queued for sending. */
export function sent(key) {
  input.value = '';
  drafts.delete(key);
  update();
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

function submit(onSubmit) {
  const value = input.value;
  if (!value.trim()) return;
  const n = codePoints(value.trim());
  if (n > TEXT_LIMIT) {
    setText(errorLine, `This message is ${n - TEXT_LIMIT} characters too long (at most ${TEXT_LIMIT}).`);
    return;
  }
  setText(errorLine, '');
  onSubmit(value);
}

/** onSubmit(text): a message to send; onInput(text): a keystroke; onBlur(): left empty. */
export function bind({ onSubmit, onInput, onBlur }) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit(onSubmit);
    input.focus();
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey) {
      event.preventDefault();
      submit(onSubmit);
    }
  });
  input.addEventListener('input', () => {
    update();
    setText(errorLine, '');
    onInput(input.value);
  });
  input.addEventListener('blur', () => {
    if (!input.value.trim()) onBlur();
  });
}
