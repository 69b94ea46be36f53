"""Random faults on real processes (issue 14; docs/protocol.md §2.3, §4, §11.2).

Three nodes share Redis and PostgreSQL. Six users (two per node at first) send to the
lobby, to a room of everyone, to a room of half of them and to their two neighbours by
DM, in small pipelined batches with clientIds, and retry each message until it is acked;
a listener per node only receives. Meanwhile the test kills nodes (SIGKILL) and stops
them (SIGTERM), restarting each after a moment, pauses one (SIGSTOP, then SIGCONT),
restarts Redis and restarts PostgreSQL (immediate shutdown), each at least once, with
traffic between the faults. A client whose node dies or stops answering goes to another
node with its token and `lastId`.

Then, from what each client saw (live `reply` events and replays after reconnects; what
only `history` could give is fetched with it at the end):

- every acked message is stored once, as acked, and every member of its conversation
  received it exactly once (repeats are counted, not deduplicated);
- each client received each conversation in increasing id order, across its reconnects;
- each sender's messages got ids in the order it sent them;
- nobody received a conversation it is not in.

Seeded: the seed is printed, and FAULT_SEED=<n> repeats the same fault schedule and
choices (thread timing still varies). FAULT_COUNT=<n> (at least 5) sets how many faults.
"""

import os
import random
import re
import time

import pytest
from support.actions import join
from support.client import disconnect_all
from support.delivery_check import (
    Reception,
    history_fill_problems,
    replies,
    send_order_problems,
    storage_problems,
    stored_messages,
)
from support.faults import KINDS, Faults
from support.names import dm_key, uname, uroom
from support.ordering import wait_until
from support.resilient import Recipient, Sender

pytestmark = [pytest.mark.scale, pytest.mark.alone]  # its timeouts assume a calm machine

SEED = int(os.environ.get("FAULT_SEED") or random.randrange(1 << 30))
FAULT_COUNT = max(len(KINDS), int(os.environ.get("FAULT_COUNT") or 8))
NODES = 3
SENDERS = 6
CALM = (1.5, 3.5)  # seconds of traffic before each fault
DRAIN_TIMEOUT = 60  # for the senders' last retries once the faults are over
SETTLE_TIMEOUT = 60  # for every client to have received everything
QUIET = 1.5  # seconds more, so that late repeats show (a catch-up look, a replay)


def test_random_faults_lose_nothing_repeat_nothing_and_keep_one_order(cluster,
                                                                       backing_services):
    print(f"FAULT_SEED={SEED} FAULT_COUNT={FAULT_COUNT}")
    rng = random.Random(SEED)
    nodes = cluster(NODES, env={"EVENT_RATE": "off", "SHUTDOWN_GRACE": "2"})
    _, postgres = backing_services
    faults = Faults(random.Random(rng.random()), nodes, cluster.redis, postgres)
    began = faults.began
    everyone, half = uroom("all"), uroom("half")
    names = [uname(f"f{i}") for i in range(SENDERS)]
    senders, listeners = [], []
    conversations = {}  # recipient -> the conversations it is in
    for i, name in enumerate(names):
        targets = [(None, "lobby"), (everyone, everyone)]
        for peer in (names[(i + 1) % SENDERS], names[(i - 1) % SENDERS]):
            targets.append((peer, dm_key(name, peer)))
        if i % 2 == 0:
            targets.append((half, half))
        senders.append(Sender(name, nodes, faults, random.Random(rng.random()), targets))
        conversations[senders[-1]] = {conv for _, conv in targets}
    for n in range(NODES):
        listener = Recipient(uname(f"l{n}"), nodes, faults, random.Random(rng.random()),
                             transport="polling" if n == 1 else "websocket")
        listeners.append(listener)
        conversations[listener] = {"lobby", everyone} | ({half} if n == 0 else set())
    recipients = senders + listeners
    figures = {}
    try:
        for i, r in enumerate(recipients):
            assert r.connect(first_node=i % NODES), f"{r.name}: {r.refusals}"
            for room in sorted(conversations[r] & {everyone, half}):
                join(r.current.client, room)
        for r in recipients:
            r.start()

        for kind in faults.plan(FAULT_COUNT):
            time.sleep(rng.uniform(*CALM))
            faults.inject(kind)
            print(faults.done[-1])
        time.sleep(rng.uniform(*CALM))
        for s in senders:
            s.stop_new.set()
        drained = wait_until(lambda: all(s.finished.is_set() or s.errors for s in senders),
                             DRAIN_TIMEOUT, interval=0.2)
        faulted = time.monotonic()
        assert drained, "senders still retrying after the faults: " + "; ".join(
            f"{s.name}: {len(s.unacked)} unacked, on node{s.current.node}, "
            f"last refusals {s.refusals[-3:]}" for s in senders if not s.finished.is_set())
        errors = [f"{r.name}: {e}" for r in recipients for e in r.errors]
        assert not errors, errors

        # What the store holds, read by a member of each conversation.
        stored = {}
        for conv in sorted(set().union(*conversations.values())):
            reader = next(r for r in recipients if conv in conversations[r] and r.healthy())
            stored[conv] = stored_messages(reader.current.client, conv)

        def outstanding():
            return sum(len(Reception(r, conversations[r], stored).outstanding())
                       for r in recipients)

        wait_until(lambda: outstanding() == 0, SETTLE_TIMEOUT, interval=0.5)
        time.sleep(QUIET)
        for r in recipients:
            r.stop(10)
            r.freeze()

        problems = storage_problems(senders, stored)
        for s in senders:
            problems += [f"{s.name}: {cid} refused for good: {ack!r}" for cid, ack in s.fatal]
            problems += send_order_problems(s)
        filled = 0
        for r in recipients:
            reception = Reception(r, conversations[r], stored, began)
            problems += reception.problems()
            more, count = history_fill_problems(reception, r.current.client)
            problems += more
            filled += count
        figures = {
            "messages": sum(len(v) for v in stored.values()),
            "emissions": sum(len(m.emissions) for s in senders for m in s.messages),
            "connections": sum(len(r.connections) for r in recipients),
            "history_filled": filled,
            "faults": faults.summary(),
            "fault_phase_s": round(faulted - began, 1),
        }
        chains = "\n".join(
            f"  {r.name}: " + ", ".join(f"node{c.node} lastId={c.last_id} "
                                        f"replies={len(replies(c.seen()))} "
                                        f"opened at {c.opened - began:.1f}s"
                                        for c in r.connections)
            for r in recipients)
        origin = {m.id: (s.name, [f"node{s.connections[e[0]].node}" for e in m.emissions])
                  for s in senders for m in s.messages if m.id is not None}
        named = sorted({int(x) for p in problems for x in re.findall(r"\b(\d{2,})\b", p)
                        if int(x) in origin})[:30]
        senders_of = "\n".join(f"  id {i}: sent by {origin[i][0]} through {origin[i][1]}"
                               for i in named)
        assert not problems, (
            f"FAULT_SEED={SEED}: {len(problems)} problem(s)\n" + "\n".join(problems[:60])
            + f"\nfaults (kind, what, seconds out, started at): {faults.done}"
            + f"\nconnections:\n{chains}\nsenders of the ids above:\n{senders_of}"
            + f"\nfigures: {figures}")
    finally:
        for r in recipients:
            r.stopping.set()
        faults.repair()
        disconnect_all([c for r in recipients for c in r.all_clients])
        figures["total_s"] = round(time.monotonic() - began, 1)
        print(f"FAULT_SEED={SEED} faults {faults.done} figures {figures}")
