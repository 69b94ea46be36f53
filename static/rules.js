// What the server accepts (docs/protocol.md §1, §2.4, §2.7), checked
// in the page too, so that a mistake is explained before anything is sent.

export const TEXT_LIMIT = 2000; // code points per message (the server's default)
export const NAME_RE = /^[\p{L}\p{N}_.-]{1,32}$/u;
export const ROOM_RE = /^#[\p{L}\p{N}_-]{1,32}$/u;
// The shape of a Socket.IO sid: a name like this cannot be registered (§1.3 v2). Names
// registered before that rule still sign in, so the page lets a name + password through.
export const SID_SHAPE_RE = /^[A-Za-z0-9_-]{20}$/;

// Names and rooms compare case-insensitively: lower-case is the key everywhere.
export const lower = (s) => String(s ?? '').toLowerCase();
export const isGuestName = (name) => lower(name).startsWith('guest-');
