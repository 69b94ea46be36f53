// A message's reactions (docs/protocol.md §8.4): one button per emoji with its count, who
// reacted in its title, pressed when one of them is me. A click toggles mine
// (view/messages.js reports it).

import { h } from '../dom.js';
import * as identity from '../identity.js';

// `names` lists at most 50 of those who reacted (§8.4): `count` may be more.
const namesOf = (r) => (Array.isArray(r.names) ? r.names : []);

/** I am among those who reacted to `m` with `emoji`. */
export function reactedByMe(m, emoji) {
  const r = (Array.isArray(m.reactions) ? m.reactions : []).find((x) => x.emoji === emoji);
  return !!r && namesOf(r).some((n) => identity.isMe(n));
}

export function reactionsNode(m) {
  const list = Array.isArray(m.reactions) ? m.reactions.filter((r) => r && r.count > 0) : [];
  if (!list.length) return null;
  return h('div', { class: 'reactions', 'data-testid': 'reactions' },
    list.map((r) => {
      const names = namesOf(r);
      const mine = names.some((n) => identity.isMe(n));
      const others = r.count - names.length;
      const who = names.map((n) => (identity.isMe(n) ? `${n} (you)` : n)).join(', ')
        + (others > 0 ? ` and ${others} more` : '');
      return h('button', {
        type: 'button',
        class: mine ? 'reaction mine' : 'reaction',
        'data-testid': 'reaction',
        'data-key': r.emoji, // each chip stays itself when the message is patched (dom.js)
        'data-emoji': r.emoji,
        'data-action': 'toggle-reaction',
        'aria-pressed': mine ? 'true' : 'false',
        title: `${who} reacted with ${r.emoji}`,
        'aria-label': `${r.emoji} ${r.count}: ${who}`,
      }, h('span', { class: 'reaction-emoji' }, r.emoji), ' ',
      h('span', { class: 'reaction-count', 'data-testid': 'reaction-count' }, String(r.count)));
    }));
}
