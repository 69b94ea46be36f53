// Searching messages (docs/protocol.md §9.4): every conversation this user can read, newest
// first, a page at a time (`before` = the smallest id so far). A result opens its
// conversation around the message found (history before/after, history.js loadAround).

import { call } from './connection.js';
import * as view from './view/search.js';
import { ackErrorText } from './errors.js';

const PAGE = 20;

let query = '';
let results = [];
let more = false;
let asked = 0;

async function fetchPage(before) {
  asked += 1;
  const mine = asked;
  const payload = { query, limit: PAGE };
  if (before !== undefined) payload.before = before;
  view.showLoading();
  const res = await call('search', payload);
  if (mine !== asked) return; // a newer search
  if (!res.ok) {
    view.showError(`Search failed: ${ackErrorText(res.error)}`);
    return;
  }
  const page = (Array.isArray(res.messages) ? res.messages : []).filter((m) => m && Number.isSafeInteger(m.id));
  results = results.concat(page);
  more = page.length >= PAGE;
  view.showResults(query, results, more);
}

export function run(text) {
  query = String(text ?? '').trim();
  results = [];
  more = false;
  if (!query) {
    asked += 1;
    view.close();
    return;
  }
  fetchPage();
}

export function loadMore() {
  if (!more || !results.length) return;
  fetchPage(Math.min(...results.map((m) => m.id)));
}
