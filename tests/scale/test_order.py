"""One order everywhere (issue 14; docs/protocol.md §4, §11.2): clients on different nodes
pipeline their sends, and still

- each connection's sends get ids in the order it sent them;
- every recipient, on every node, receives each conversation's messages in increasing id
  order, each exactly once, and none missing of those that were acked.

Several rounds: in each, every sender emits 15-30 `message`s (lobby) and `sendMessage`s
(a room all of them are in, and direct messages to its two neighbours, whose other senders
are on other nodes), all at once without waiting for acks. A user also has a second tab
on each other node, and a listener that sends nothing sits on each node (every other one
long-polling). A run's choices come from a printed seed (ORDER_SEED=<n> repeats them).
"""

import itertools
import os
import random
import threading

import pytest
from support.actions import join
from support.client import ChatClient, disconnect_all
from support.names import dm_key, uid, uname, uroom
from support.ordering import (
    direct_send,
    lobby_send,
    pipeline,
    reply_ids,
    sequence_problems,
    wait_until,
)

pytestmark = pytest.mark.scale

SEED = int(os.environ.get("ORDER_SEED") or random.randrange(1 << 30))
ROUNDS = 4
SENDERS_PER_NODE = 2
ACK_TIMEOUT = 30  # seconds for a round's acks; on a loaded 2-core machine, not a bound
DELIVERY_TIMEOUT = 30  # seconds for every recipient to have every message of a round
QUIET = 0.5  # seconds more, so that a late duplicate shows


class Member:
    """A connection of the test: which user it is, on which node, and what it received."""

    def __init__(self, client, user, node, role):
        self.client, self.user, self.node, self.role = client, user, node, role

    def __repr__(self):
        return f"{self.role} {self.user} on node{self.node}"


def connect(made, node, auth, transport="websocket"):
    """A client connected to `node`, added to `made` (which teardown disconnects)."""
    client = ChatClient()
    made.append(client)
    client.connect(node.url, auth=auth, transport=transport, timeout=15)
    return client


@pytest.mark.parametrize("node_count", [2, 3])
def test_pipelined_sends_keep_send_order_and_one_id_order_everywhere(cluster, node_count):
    print(f"ORDER_SEED={SEED}")
    rng = random.Random(SEED * 10 + node_count)
    nodes = cluster(node_count)
    room = uroom("order")
    made = []
    try:
        senders = []
        for s in range(SENDERS_PER_NODE * node_count):
            n = s % node_count  # neighbours in the ring are on different nodes
            transport = "polling" if s == 1 else "websocket"
            c = connect(made, nodes[n], {"name": uname(f"s{s}")}, transport)
            senders.append(Member(c, c.name, n + 1, "sender"))
        listeners = [Member(connect(made, nodes[n], {"name": uname(f"l{n}")},
                                    "polling" if n % 2 else "websocket"),
                            None, n + 1, "listener") for n in range(node_count)]
        for m in listeners:
            m.user = m.client.name
        first = senders[0]
        tabs = [Member(connect(made, nodes[n], {"token": first.client.token}), first.user,
                       n + 1, "second tab of")
                for n in range(node_count) if n + 1 != first.node]
        members = senders + listeners + tabs
        for m in members:
            join(m.client, room)

        ring = [m.user for m in senders]
        dm_of = {}  # conversation -> the users in it
        for i, name in enumerate(ring):
            peer = ring[(i + 1) % len(ring)]
            dm_of[dm_key(name, peer)] = {name.lower(), peer.lower()}

        def audience(conversation, member):
            if conversation in ("lobby", room):
                return True
            return member.user.lower() in dm_of[conversation]

        marks = {id(m): m.client.mark() for m in members}
        expected = {}  # conversation -> every acked id, across rounds
        for round_no in range(ROUNDS):
            plans = []
            for i, m in enumerate(senders):
                sends, convs = [], []
                for k in range(rng.randint(15, 30)):
                    cid = f"r{round_no}-s{i}-{k}-{uid(6)}"
                    text = f"{cid} from {m.user}"
                    target = rng.choice(["lobby", "room", "next", "previous"])
                    if target == "lobby":
                        sends.append(lobby_send(text, cid))
                        convs.append("lobby")
                    elif target == "room":
                        sends.append(direct_send(room, text, cid))
                        convs.append(room)
                    else:
                        peer = ring[(i + (1 if target == "next" else -1)) % len(ring)]
                        sends.append(direct_send(peer, text, cid))
                        convs.append(dm_key(m.user, peer))
                plans.append((sends, convs))

            acks = [None] * len(senders)
            failures = []
            start = threading.Barrier(len(senders))

            def run(i, start=start, acks=acks, plans=plans, failures=failures):
                try:
                    start.wait(30)
                    acks[i] = pipeline(senders[i].client, plans[i][0], ACK_TIMEOUT)
                except BaseException as exc:  # reported below, with the others
                    failures.append(f"{senders[i]}: {exc}")

            threads = [threading.Thread(target=run, args=(i,), daemon=True)
                       for i in range(len(senders))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(ACK_TIMEOUT + 40)
            assert not failures, f"seed {SEED}, round {round_no}: {failures}"

            # Send order: each connection's acked ids grow in the order it sent.
            order_errors = []
            for i, m in enumerate(senders):
                ids = []
                for (_event, payload), ack, conv in zip(plans[i][0], acks[i], plans[i][1],
                                                       strict=True):
                    assert isinstance(ack, dict) and ack.get("ok") is True, \
                        f"seed {SEED}, round {round_no}: {m} got {ack!r} for {payload!r}"
                    msg = ack["message"]
                    assert msg["conversation"] == conv, (msg, conv)
                    assert msg["text"] == payload.get("text", payload.get("content")), msg
                    ids.append(msg["id"])
                    expected.setdefault(conv, []).append(msg["id"])
                backwards = [(a, b) for a, b in itertools.pairwise(ids) if b <= a]
                if backwards:
                    order_errors.append(f"{m}: ids in send order {ids} "
                                        f"({len(backwards)} step(s) backwards, first "
                                        f"{backwards[0]})")
            for conv in expected:
                expected[conv].sort()

            # Delivery: every recipient has every acked message of its conversations.
            def wanted(m):
                return {c: ids for c, ids in expected.items() if audience(c, m)}

            def complete(m):
                got = reply_ids(m.client.all_events(marks[id(m)]))
                return all(set(ids) <= set(got.get(c, ())) for c, ids in wanted(m).items())

            wait_until(lambda: all(complete(m) for m in members), DELIVERY_TIMEOUT)
            wait_until(lambda: False, QUIET)
            problems = []
            for m in members:
                got = reply_ids(m.client.all_events(marks[id(m)]))
                want = wanted(m)
                for conv in sorted(set(got) | set(want)):
                    for p in sequence_problems(got.get(conv, []), want.get(conv, [])):
                        problems.append(f"{m}, {conv}: {p}")
            report = []
            if order_errors:
                report += ["a connection's sends were not numbered in the order it sent "
                           "them:", *order_errors]
            if problems:
                report += ["recipients did not get each conversation once each, in id "
                           "order:", *problems[:40]]
            assert not report, (f"seed {SEED}, round {round_no} ({node_count} nodes):\n"
                                + "\n".join(report))
        total = sum(len(ids) for ids in expected.values())
        print(f"{ROUNDS} rounds, {len(senders)} senders, {len(members)} connections, "
              f"{total} messages")
    finally:
        disconnect_all(made)
