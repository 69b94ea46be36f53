// What the server accepts (docs/protocol.md §1, §2.4, §2.7), checked
// in the page too, so that a mistake is explained before anything is sent.

export const TEXT_LIMIT = 2000; // code points per message (the server's default)
export const NAME_RE = /^[\p{L}\p{N}_.-]{1,32}$/u;
export const ROOM_RE = /^#[\p{L}\p{N}_-]{1,32}$/u;

// Names and rooms compare case-insensitively: lower-case is the key everywhere.
export const lower = (s) => String(s ?? '').toLowerCase();
export const isGuestName = (name) => lower(name).startsWith('guest-');
