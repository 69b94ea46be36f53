// The users the page shows are the users it watches (docs/protocol.md §7). Above
// PRESENCE_LIMIT the server tells a connection of arrivals and departures (addChat,
// userLeft) only for the users that connection watches: its DM peers, and the names of
// its last `watchUsers`. So whenever the set the page shows changes (the names in the
// user list, the DM conversations), the page sends that set, at most 500 names, DM peers
// first. The watch list belongs to a connection: after a reconnect it is sent again.
// Below the limit everyone hears of everyone and nothing is sent.

import { call, generation, isReady } from './connection.js';
import * as presence from './presence.js';
import * as directory from './directory.js';
import * as conversations from './conversations.js';
import { lower } from './rules.js';
import { coalesced } from './coalesce.js';

export const WATCH_MAX = 500; // §7: names per watchUsers
const SETTLE_MS = 50;         // several changes in a row send once
const RETRY_MS = 5000;        // a refused watchUsers (rate_limited, say) is tried again

let sent = null;  // the set last sent on this connection (its names, lower-case, joined)
let asked = 0;    // the newest request: only its ack says who is online

/** The names to watch: DM peers, then the user list, each once, at most WATCH_MAX. */
export function wanted() {
  const names = [];
  const seen = new Set();
  const add = (name) => {
    const key = lower(name);
    if (!name || seen.has(key) || names.length >= WATCH_MAX) return;
    seen.add(key);
    names.push(name);
  };
  for (const conv of conversations.all()) if (conv.type === 'dm') add(conv.peer);
  for (const name of directory.shown()) add(name);
  return names;
}

/** A new connection: it watches nothing yet. */
export function reset() {
  schedule.cancel();
  sent = null;
  asked += 1;
}

/** Something the page shows changed: send the watch list soon, if it changed. */
export const schedule = coalesced(sync, SETTLE_MS);

async function sync() {
  if (!presence.isTruncated() || !isReady()) return;
  const names = wanted();
  const key = names.map(lower).sort().join('\n');
  if (key === sent) return;
  sent = key;
  asked += 1;
  const mine = asked;
  const gen = generation();
  const res = await call('watchUsers', { names });
  if (gen !== generation()) return; // that connection is gone; the next welcome sends again
  if (!res.ok) {
    if (mine !== asked) return;
    sent = null; // not taken: try again in a while, or at the next change
    setTimeout(schedule, RETRY_MS);
    return;
  }
  if (mine === asked) presence.settle(names, res.users);
}
