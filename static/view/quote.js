// The quote at the top of a reply (docs/protocol.md §8.4 `replyTo`): who wrote the message
// it answers and the start of its text, or that it was deleted. A click on it shows that
// message (view/messages.js reports it).

import { h, clip } from '../dom.js';
import * as conversations from '../conversations.js';

const QUOTE_CHARS = 140;

export function quoteNode(conv, m) {
  const entry = conv ? conversations.findEntry(conv, m.replyTo) : null;
  const target = entry ? entry.msg : null;
  let who = '';
  let what = 'an earlier message';
  if (target) {
    who = target.from ?? '?';
    what = target.deleted ? 'This message was deleted.' : clip(target.text, QUOTE_CHARS);
  }
  return h('button', {
    type: 'button',
    class: 'reply-quote',
    'data-testid': 'reply-quote',
    'data-reply-to': m.replyTo,
    title: 'Show the message this answers',
  },
  who ? h('span', { class: 'quote-from' }, who) : null,
  h('span', { class: target && target.deleted ? 'quote-text deleted' : 'quote-text' }, what));
}
