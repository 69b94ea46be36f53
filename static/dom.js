// Small DOM helpers. Everything that may come from a user (names, room names, message
// text) goes into the page through text nodes only; nothing here parses HTML.

/**
 * Build an element. `props` keys:
 *   class / text / dataset / on (event map) / any other key becomes an attribute
 *   (boolean true -> empty attribute, false/null/undefined -> omitted).
 * `children` may be nodes or strings (strings become text nodes).
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'on') {
      for (const [type, fn] of Object.entries(value)) node.addEventListener(type, fn);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export const byId = (id) => document.getElementById(id);

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function setText(node, text) {
  node.textContent = text == null ? '' : String(text);
}

/**
 * Make `parent`'s children what `wanted` (an array of nodes, as built with h()) describes,
 * reusing the nodes already there rather than replacing them: an element with the same tag
 * and data-key (or, lacking one, data-testid), or else one of the same tag in the same place
 * (text nodes likewise), is brought up to date in place (attributes, then its own children),
 * and only what is new, gone or out of order is inserted, removed or moved. data-key is for
 * rows that carry no test id of their own (a list's <li> around its button): keyed, a row
 * follows its item when the order changes instead of having its button swapped out.
 *
 * Why not clear and rebuild: a browser fires `click` only if the element the button went
 * down on is still in the document when it comes up (Blink forgets the pressed node when it
 * is removed). A list redrawn by replacing its nodes, on some unrelated news arriving between
 * press and release, would swallow that click without a trace.
 *
 * Only attributes and text are carried over: listeners given to h() on the new nodes are
 * not, so a list patched this way takes its clicks through one listener on the list that
 * reads the target's data-* attributes (as view/members.js does).
 */
export function patchChildren(parent, wanted) {
  const keyed = new Map();
  for (const child of parent.childNodes) {
    const key = patchKey(child);
    if (key !== null && !keyed.has(key)) keyed.set(key, child);
  }
  let next = parent.firstChild; // every child before this one has been matched
  for (const want of wanted) {
    const key = patchKey(want);
    let have = null;
    if (key !== null) {
      have = keyed.get(key) || null;
      keyed.delete(key);
    } else if (next && patchKey(next) === null && next.nodeName === want.nodeName) {
      have = next;
    }
    if (!have) {
      parent.insertBefore(want, next);
    } else {
      if (have === next) next = next.nextSibling;
      else parent.insertBefore(have, next); // moved: only when the order changed
      patchNode(have, want);
    }
  }
  while (next) {
    const after = next.nextSibling;
    parent.removeChild(next);
    next = after;
  }
}

/**
 * Bring element `have` (in the document) up to date with `want` (as built with h()) in
 * place: its attributes, then its children as patchChildren does. For a single item redrawn
 * on news, where replacing it would lose a click straddling the redraw.
 */
export function patchElement(have, want) {
  patchNode(have, want);
}

function patchKey(node) {
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const key = node.getAttribute('data-key');
  if (key !== null) return `${node.nodeName} key=${key}`; // never equal to a test id's form
  const id = node.getAttribute('data-testid');
  return id === null ? null : `${node.nodeName}:${id}`;
}

function patchNode(have, want) {
  if (have.nodeType !== Node.ELEMENT_NODE) {
    if (have.nodeValue !== want.nodeValue) have.nodeValue = want.nodeValue;
    return;
  }
  for (const attr of [...have.attributes]) {
    if (!want.hasAttribute(attr.name)) have.removeAttribute(attr.name);
  }
  for (const attr of want.attributes) {
    if (have.getAttribute(attr.name) !== attr.value) have.setAttribute(attr.name, attr.value);
  }
  patchChildren(have, [...want.childNodes]);
}

// A URL candidate: http(s):// followed by anything up to whitespace or an angle bracket.
const URL_CANDIDATE = /\bhttps?:\/\/[^\s<>"']+/gi;
// Punctuation that usually ends a sentence rather than a link.
const TRAILING = /[.,;:!?)\]}'"]+$/;

/**
 * Turn message text into a fragment of text nodes and, for http(s) URLs only, anchors.
 * The anchor's href is the URL as parsed by the browser; its visible text is a text node.
 */
export function linkify(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_CANDIDATE)) {
    let raw = match[0];
    const trail = raw.match(TRAILING);
    if (trail) raw = raw.slice(0, raw.length - trail[0].length);
    const start = match.index;
    let url = null;
    try {
      url = new URL(raw);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    if (start > last) frag.appendChild(document.createTextNode(text.slice(last, start)));
    const a = document.createElement('a');
    a.href = url.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    a.textContent = raw;
    frag.appendChild(a);
    last = start + raw.length;
  }
  if (last < text.length) frag.appendChild(document.createTextNode(text.slice(last)));
  return frag;
}

/** `text` cut to its first `max` code points, with "…" when it was longer. */
export function clip(text, max) {
  const chars = [...String(text ?? '')];
  return chars.length > max ? `${chars.slice(0, max).join('')}…` : chars.join('');
}

/** Length in Unicode code points, as the server counts it. */
export function codePoints(text) {
  let n = 0;
  // eslint-disable-next-line no-unused-vars
  for (const _ of text) n += 1;
  return n;
}

export function formatTime(ms) {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (sameDay) return time;
  return `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}
