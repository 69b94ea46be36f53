// The sign-in form: a name (with an optional password), or a guest. The name is checked
// as the server would (docs/protocol.md §1); each refusal is shown beside the
// field it is about.

import { byId, setText } from '../dom.js';
import { NAME_RE, SID_SHAPE_RE, isGuestName } from '../rules.js';
import { CONNECT_ERRORS, SID_NAME_TEXT } from '../errors.js';

const view = byId('signin-view');
const form = byId('signin-form');
const nameInput = byId('signin-name');
const passwordInput = byId('signin-password');
const submitButton = byId('signin-submit');
const guestButton = byId('guest-button');
const errorOf = {
  name: byId('signin-name-error'),
  password: byId('signin-password-error'),
  form: byId('signin-error'),
};

export function show() {
  view.hidden = false;
  nameInput.focus();
}

export function hide() {
  view.hidden = true;
}

/** field: 'name', 'password' or 'form'; the other fields' errors are cleared. */
export function showError(field, text) {
  for (const [key, node] of Object.entries(errorOf)) setText(node, key === field ? text : '');
  nameInput.setAttribute('aria-invalid', field === 'name' ? 'true' : 'false');
  passwordInput.setAttribute('aria-invalid', field === 'password' ? 'true' : 'false');
  if (field === 'name') nameInput.focus();
  else if (field === 'password') passwordInput.focus();
}

/** A note under the form that leaves the fields' own errors as they are. */
export function note(text) {
  setText(errorOf.form, text);
}

export function setBusy(busy) {
  submitButton.disabled = busy;
  guestButton.disabled = busy;
  submitButton.textContent = busy ? 'Signing in…' : 'Start chatting';
}

export function signedIn() {
  passwordInput.value = '';
  setBusy(false);
}

/** onSignIn({name, password}) once the name looks valid; onGuest(). */
export function bind({ onSignIn, onGuest }) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    const password = passwordInput.value;
    showError('form', '');
    if (!name) {
      showError('name', 'Enter a name, or continue as a guest.');
      return;
    }
    if (!NAME_RE.test(name) || isGuestName(name)) {
      showError('name', CONNECT_ERRORS.invalid_name.text);
      return;
    }
    // Without a password this can only be a registration, which the server refuses; with
    // one it may be a sign-in to a name registered before that rule (docs/protocol.md §1.3).
    if (!password && SID_SHAPE_RE.test(name)) {
      showError('name', SID_NAME_TEXT);
      return;
    }
    onSignIn({ name, password });
  });
  guestButton.addEventListener('click', () => {
    showError('form', '');
    onGuest();
  });
}
