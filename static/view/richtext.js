// Message text as the page shows it: text nodes and http(s) links (dom.js linkify), with
// mentions (docs/protocol.md §9.3) as highlighted text. Never HTML.

import { h, linkify } from '../dom.js';
import * as identity from '../identity.js';
import * as presence from '../presence.js';
import { lower } from '../rules.js';

const MENTION_RE = /@([\p{L}\p{N}_.-]{1,32})/gu;

/** Whom a message mentions, lower-cased: the server's list, or after an edit a guess. */
function mentionSet(conv, m) {
  if (Array.isArray(m.mentions)) return new Set(m.mentions.map(lower));
  const names = new Set([lower(identity.current() && identity.current().name)]);
  if (conv) {
    for (const name of conv.members || []) names.add(lower(name));
    if (conv.peer) names.add(lower(conv.peer));
    for (const e of conv.entries) if (e.msg && e.msg.from) names.add(lower(e.msg.from));
  }
  for (const u of presence.list()) names.add(lower(u.name));
  return names;
}

/** `text` split into text nodes and <mark>s for the names in `names`. */
function withMentions(text, names) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(MENTION_RE)) {
    let name = match[1];
    // "@bob." ends a sentence: try the name without its trailing dots too.
    while (name && !names.has(lower(name)) && name.endsWith('.')) name = name.slice(0, -1);
    if (!name || !names.has(lower(name))) continue;
    const before = match.index > 0 ? text[match.index - 1] : '';
    if (before && /[\p{L}\p{N}_.-]/u.test(before)) continue; // an address, not a mention
    if (match.index > last) frag.appendChild(document.createTextNode(text.slice(last, match.index)));
    const me = identity.isMe(name);
    frag.appendChild(h('mark', {
      class: me ? 'mention me' : 'mention',
      'data-testid': me ? 'mention-me' : 'mention',
    }, `@${name}`));
    last = match.index + 1 + name.length;
  }
  if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
  return frag;
}

/** Message text as text nodes, links and mentions: never HTML. */
export function richText(conv, m) {
  const linked = linkify(String(m.text ?? ''));
  const names = mentionSet(conv, m);
  if (!names.size) return linked;
  for (const node of [...linked.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE) node.replaceWith(withMentions(node.data, names));
  }
  return linked;
}
