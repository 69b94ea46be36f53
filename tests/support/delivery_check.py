"""The checker of the fault test: from what every client saw, is everything that was acked
delivered to every member exactly once, in id order, and stored once?

It reads `support.resilient` records: each recipient's chain of connections (with the
lastId each was opened with, and the events each received before the client gave it up),
and each sender's messages with every emission and ack. Repeats are counted, never
deduplicated away.

What a client could legitimately miss: when it reconnects with `lastId` L, the replay
brings every message above L (§1.9); a message of conversation C at or below L that the
earlier connections had not received (they had got C only up to s < L) can only be read
with `history` (§4). Those are fetched with `history` at the end; any other message of
the client's conversations must have arrived exactly once.
"""

import itertools

from support.checks import ok
from support.resilient import RETRYABLE


def stored_messages(client, conversation, page=100):
    """Every stored message of `conversation`, oldest first, read with `history`."""
    messages, after = [], 0
    while True:
        got = ok(client.call("history", {"conversation": conversation, "after": after,
                                         "limit": page}, timeout=30))["messages"]
        messages += got
        if len(got) < page:
            return messages
        after = got[-1]["id"]


def replies(events):
    """[(conversation, id)] of the `reply` events, in arrival order."""
    return [(p.get("conversation"), p.get("id")) for n, p in events
            if n == "reply" and isinstance(p, dict)]


def _few(items, n=8):
    items = list(items)
    return f"{items[:n]}" + (f" (+{len(items) - n} more)" if len(items) > n else "")


def storage_problems(senders, stored):
    """Nothing stored twice, every acked message stored as acked, nothing unknown stored.
    `stored`: {conversation: [MESSAGE, ...]} read with `history`."""
    problems = []
    by_text = {}
    for conversation, messages in stored.items():
        ids = [m["id"] for m in messages]
        if ids != sorted(set(ids)):
            problems.append(f"history of {conversation} is not in strict id order: "
                            f"{_few(ids)}")
        for m in messages:
            by_text.setdefault(m["text"], []).append((conversation, m["id"]))
    known = {}
    for sender in senders:
        for msg in sender.messages:
            known[msg.text] = (sender, msg)
    for text, places in by_text.items():
        if len(places) > 1:
            problems.append(f"stored {len(places)} times: {text!r} at {places}")
        if text not in known:
            problems.append(f"stored but never sent: {text!r} at {places}")
    for sender in senders:
        for msg in sender.messages:
            places = by_text.get(msg.text, [])
            if len(msg.ids) > 1:
                problems.append(f"{msg.cid}: acked with several ids {sorted(msg.ids)}")
            if msg.id is None:
                if msg.errors and msg.errors[-1] not in RETRYABLE:
                    continue  # refused for good: reported with the sender's fatal acks
                problems.append(f"{msg.cid}: never acked (emitted {len(msg.emissions)} "
                                f"times; stored at {places})")
                continue
            if (msg.conversation, msg.id) not in places:
                problems.append(f"{msg.cid}: acked as id {msg.id} in {msg.conversation} "
                                f"but history has it at {places}")
    return problems


def send_order_problems(sender):
    """A sender's messages got ids in the order it sent them. Compared: two messages whose
    first emission was acked `ok` (so that emission stored it), where the first was either
    emitted earlier on the same connection (§11: a connection's sends are numbered in
    order) or acked before the second was emitted (ids grow in commit order)."""
    firsts = []
    for msg in sender.messages:
        if not msg.emissions:
            continue
        conn, place, emitted, ack, acked = msg.emissions[0]
        if isinstance(ack, dict) and ack.get("ok") is True:
            firsts.append((msg, conn, place, emitted, acked, ack["message"]["id"]))
    wrong = []
    for a in firsts:
        for b in firsts:
            if a[0] is b[0]:
                continue
            before = (a[1] == b[1] and a[2] < b[2]) or a[4] < b[3]
            if before and not a[5] < b[5]:
                wrong.append(f"{a[0].cid} (sent first, id {a[5]}) and {b[0].cid} (sent "
                             f"after it, id {b[5]})")
    if not wrong:
        return []
    return [f"{sender.name}: {len(wrong)} pair(s) of its messages numbered against send "
            f"order (of {len(firsts)} compared), e.g. " + "; ".join(wrong[:3])]


class Reception:
    """What one recipient received, across its connections, of its conversations."""

    def __init__(self, recipient, conversations, stored, began=None):
        self.recipient = recipient
        self.conversations = conversations  # the conversation keys it is a member of
        self.stored = stored
        self.counts = {}  # (conversation, id) -> times received
        self.chains = {}  # conversation -> [(id, connection index)] in arrival order
        self.foreign = []  # replies of conversations it is not in
        self.began = began  # time.monotonic() of the test's start, for reports
        self.when = {}  # (conversation, id) -> [(connection, seconds after its opening)]
        self.gaps = set()  # (conversation, id) it may only get by history
        seen_max = {}  # conversation -> highest id received by the connections so far
        for conn in recipient.connections:
            if conn.last_id is not None:
                for conv in conversations:
                    below = seen_max.get(conv, 0)
                    for m in stored.get(conv, ()):
                        if below < m["id"] <= conn.last_id:
                            self.gaps.add((conv, m["id"]))
            got = replies(conn.seen())
            times = conn.reply_times()[:len(got)] if began is not None else []
            for k, (conv, mid) in enumerate(got):
                if k < len(times):
                    self.when.setdefault((conv, mid), []).append(
                        (conn.index, round(times[k] - conn.opened, 3)))
                if conv not in conversations:
                    self.foreign.append((conv, mid, conn.index))
                    continue
                self.counts[(conv, mid)] = self.counts.get((conv, mid), 0) + 1
                self.chains.setdefault(conv, []).append((mid, conn.index))
                seen_max[conv] = max(seen_max.get(conv, 0), mid)

    def outstanding(self):
        """Messages it should have received and has not (yet)."""
        return [(conv, m["id"]) for conv in self.conversations
                for m in self.stored.get(conv, ())
                if (conv, m["id"]) not in self.counts and (conv, m["id"]) not in self.gaps]

    def history_needed(self):
        return sorted(key for key in self.gaps if key not in self.counts)

    def problems(self):
        who = self.recipient.name
        problems = []
        stored_ids = {(conv, m["id"]) for conv in self.conversations
                      for m in self.stored.get(conv, ())}
        dupes = {k: n for k, n in self.counts.items() if n > 1}
        if dupes:
            problems.append(f"{who}: received {len(dupes)} message(s) more than once "
                            f"(conversation, id: times): {_few(sorted(dupes.items()))}")
        missing = self.outstanding()
        if missing:
            problems.append(f"{who}: never received {len(missing)} message(s): "
                            f"{_few(sorted(missing))}")
        unknown = sorted(k for k in self.counts if k not in stored_ids)
        if unknown:
            problems.append(f"{who}: received ids that history does not have: "
                            f"{_few(unknown)}")
        if self.foreign:
            problems.append(f"{who}: received replies of conversations it is not in: "
                            f"{_few(self.foreign)}")
        for conv, chain in sorted(self.chains.items()):
            back = [(a, b) for a, b in itertools.pairwise(chain) if b[0] <= a[0]]
            if back:
                (a, ca), (b, cb) = back[0]
                problems.append(f"{who}, {conv}: {len(back)} time(s) not in increasing id "
                                f"order, first id {b} (connection {cb}) after {a} "
                                f"(connection {ca}); received (connection, seconds after "
                                f"it opened): {a} {self.when.get((conv, a))}, "
                                f"{b} {self.when.get((conv, b))}")
        return problems


def history_fill_problems(reception, client):
    """Fetch with `history` what the recipient could only get that way; it must be there."""
    needed = reception.history_needed()
    by_conv = {}
    for conv, mid in needed:
        by_conv.setdefault(conv, []).append(mid)
    problems = []
    for conv, ids in by_conv.items():
        got, after = set(), min(ids) - 1
        while after < max(ids):
            page = ok(client.call("history", {"conversation": conv, "after": after,
                                              "limit": 100}, timeout=30))["messages"]
            if not page:
                break
            got.update(m["id"] for m in page)
            after = page[-1]["id"]
        lost = sorted(set(ids) - got)
        if lost:
            problems.append(f"{reception.recipient.name}: history of {conv} lacks {lost}")
    return problems, len(needed)
