// The connection banner and the toast: short notes on the page's state (both are live
// regions in index.html, so screen readers announce them).

import { byId, setText } from '../dom.js';

const TOAST_MS = 6000;

const banner = byId('conn-banner');
const toastBox = byId('toast');
let toastTimer = null;

/** kind: 'online' hides the banner; 'connecting', 'reconnecting' or 'offline' show `text`. */
export function showBanner(kind, text) {
  // Pending messages say "Sending…" or "Waiting for connection…" by this (style.css).
  document.body.dataset.conn = kind === 'online' ? 'online' : 'offline';
  banner.dataset.state = kind;
  if (kind === 'online') {
    banner.hidden = true;
    setText(banner, '');
    return;
  }
  setText(banner, text);
  banner.hidden = false;
}

/** Signed out: no connection to speak of. */
export function hideBanner() {
  banner.hidden = true;
}

export function toast(text) {
  setText(toastBox, text);
  toastBox.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    toastBox.hidden = true;
  }, TOAST_MS);
}
