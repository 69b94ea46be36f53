// The socket.io connection (docs/protocol.md "Transport and conventions", §1, §2.1): one
// client for the page (global `io` from /vendor/socket.io.min.js), its
// auth, timed reconnects, and requests answered by their ack or by a timeout.

const ACK_TIMEOUT_MS = 10000;
// Reconnect attempts are reported by socket.io's Manager, not by the socket.
const MANAGER_EVENTS = new Set(['reconnect_attempt']);

let socket = null;
let ready = false;        // welcomed on the current connection
let gen = 0;              // a new one at every welcome and disconnect: older acks are stale
let reconnectTimer = null;
let authPayload = () => undefined;
const handlers = [];

/** auth(): the `auth` object for the next connect, or undefined for none (a guest). */
export function configure({ auth }) {
  authPayload = auth;
}

/** Listen to a server event; handlers are bound when the socket is made. */
export function on(event, fn) {
  handlers.push([event, fn]);
}

/** Connect unless connected. False when the socket.io library did not load. */
export function connect() {
  if (typeof window.io !== 'function') return false;
  clearTimeout(reconnectTimer);
  if (!socket) {
    socket = window.io({
      autoConnect: false,
      auth: (cb) => cb(authPayload()),
      reconnectionDelay: 500,
      reconnectionDelayMax: 3000,
      timeout: 8000,
    });
    for (const [event, fn] of handlers) (MANAGER_EVENTS.has(event) ? socket.io : socket).on(event, fn);
  }
  if (!socket.connected) socket.connect();
  return true;
}

export function disconnect() {
  clearTimeout(reconnectTimer);
  if (socket) socket.disconnect();
}

/**
 * Try again in `ms` if `wanted()` still holds then. For the cases socket.io does not
 * retry by itself: a server-side disconnect, or a refusal that may pass (server full).
 */
export function reconnectIn(ms, wanted) {
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(() => {
    if (wanted() && socket && !socket.connected) socket.connect();
  }, ms);
}

/** socket.io is retrying by itself. */
export const isRetrying = () => !!socket && socket.active;

/** A connection's session starts (online: welcomed) or ends: acks of the old one are void. */
export function beginSession(online) {
  gen += 1;
  ready = online;
}

export const isReady = () => ready;
export const generation = () => gen;

/**
 * Send `event` and resolve with its ack. Never rejects: no connection, no answer in time
 * and a malformed answer resolve as failures with `noAnswer` set (the server never sends
 * those), so a caller may try the same request again.
 */
export function call(event, payload) {
  return new Promise((resolve) => {
    const fail = (code, message) => resolve({ ok: false, noAnswer: true, error: { code, message } });
    if (!socket || !ready) {
      fail('offline', 'Not connected.');
      return;
    }
    const args = payload === undefined ? [] : [payload];
    socket.timeout(ACK_TIMEOUT_MS).emit(event, ...args, (err, res) => {
      if (err) fail('timeout', 'No answer.');
      else if (!res || typeof res !== 'object') fail('invalid_response', 'Unexpected answer from the server.');
      else resolve(res);
    });
  });
}

/** Fire and forget; the empty ack keeps a refusal from coming back as an `error` event. */
export function notify(event, payload) {
  if (!ready) return;
  socket.emit(event, payload, () => {});
}
