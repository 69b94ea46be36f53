"""The store's read paths at scale (issue 15): `search` over a million messages and the
`welcome` snapshot of a user in 100 conversations with unread counts, on SQLite.

Builds its own database (users, rooms, DMs and N messages whose words follow a Zipf-like
law, so some words are everywhere and most are rare), then times, in this process, the
store calls the server makes: `readable_conversations` + `search` (the scope check
included) and `snapshot`. No sockets: this isolates the database work that the targets
name ("p99 at most 50 ms", "at most 5 ms of server time").

    python bench/store.py --messages 1000000            # about 2 minutes to build
    python bench/store.py --db /tmp/chat-1m.db --reuse  # time an existing one again
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chat_server import schema
from chat_server.store import Store

logger = logging.getLogger("bench.store")

VOCABULARY = 20_000
ROOMS = 300
USERS = 2_000
BENCH_ROOMS = 60  # the measured user's rooms; with 39 DMs and the lobby: 100 conversations
BENCH_DMS = 39


def word(n: int) -> str:
    """A pronounceable word for rank n (rank 0 the most frequent)."""
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pu", "da", "fe"]
    out = []
    n += 1
    while n:
        n, r = divmod(n, len(syllables))
        out.append(syllables[r])
    return "".join(out)


def zipf_rank(rng: random.Random) -> int:
    return min(int(rng.paretovariate(1.1)) - 1, VOCABULARY - 1)


def build(url: str, count: int, seed: int) -> None:
    rng = random.Random(seed)
    store = Store(url)
    store.create_schema()
    now = int(time.time() * 1000)
    with store.engine.begin() as conn:
        conn.execute(schema.users.insert(), [
            {"id": i, "name": f"user{i}", "key": f"user{i}", "guest": False, "gone": False,
             "created_at": now, "skeleton": f"user{i}"} for i in range(1, USERS + 1)])
        conn.execute(schema.rooms.insert(), [
            {"id": r, "name": f"#room{r}", "key": f"#room{r}", "owner_id": 1, "created_at": now}
            for r in range(1, ROOMS + 1)])
        members = [{"room_id": r, "user_id": 1} for r in range(1, BENCH_ROOMS + 1)]
        members += [{"room_id": r, "user_id": u} for r in range(1, ROOMS + 1)
                    for u in rng.sample(range(2, USERS + 1), 20)]
        conn.execute(schema.memberships.insert(), members)
        dms = [f"dm:user1:user{peer}" if f"user{peer}" > "user1" else f"dm:user{peer}:user1"
               for peer in range(2, 2 + BENCH_DMS)]
        others = [f"dm:user{a}:user{a + 1}" for a in range(100, 1100)]
        conn.execute(schema.dm_members.insert(), [
            {"conv_key": key, "user_id": int(part[4:])}
            for key in dms + others for part in key.split(":")[1:]])
    conversations = ["lobby"] * 20 + [f"#room{r}" for r in range(1, ROOMS + 1)] + dms + others
    started = time.monotonic()
    chunk = 20_000
    for start in range(0, count, chunk):
        rows = []
        for _ in range(min(chunk, count - start)):
            conv = rng.choice(conversations)
            author = rng.randint(1, USERS)
            text = " ".join(word(zipf_rank(rng)) for _ in range(rng.randint(3, 14)))
            rows.append({"conv_key": conv, "conversation": conv,
                         "kind": "direct" if conv.startswith("dm:") else
                         "room" if conv.startswith("#") else "broadcast",
                         "from_user_id": author, "from_name": f"user{author}",
                         "from_sid": "bench", "text": text, "ts": now})
        with store.engine.begin() as conn:
            conn.execute(schema.messages.insert(), rows)
        logger.info("%d messages stored (%.0f s)", start + len(rows),
                    time.monotonic() - started)
    with store.engine.begin() as conn:  # the user read most conversations up to somewhere
        newest = conn.execute(sa.select(sa.func.max(schema.messages.c.id))).scalar() or 0
        conn.execute(schema.read_markers.insert(), [
            {"user_id": 1, "conv_key": key, "last_read": newest - rng.randint(0, 50_000)}
            for key in ["lobby", *(f"#room{r}" for r in range(1, BENCH_ROOMS + 1)), *dms]
            if rng.random() < 0.8])
    store.close()


def query_words(rng: random.Random, kind: str) -> list[str]:
    """common: 1-2 of the 21 most frequent words (each in 2-99% of the messages); rare:
    a rare word and a common one; prefix: a word and the first 3 letters of another."""
    if kind == "common":
        return [word(rng.randint(0, 20)) for _ in range(rng.randint(1, 2))]
    if kind == "rare":
        return [word(rng.randint(1000, VOCABULARY - 1)), word(rng.randint(0, 200))]
    return [word(rng.randint(0, 500)), word(rng.randint(0, 3000))[:3]]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 2), "mean_ms": round(
                statistics.fmean(ordered) * 1000, 2), "count": len(ordered)}


def measure(url: str, queries: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed + 1)
    store = Store(url)
    store.create_schema()
    with store.engine.begin() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(schema.messages)).scalar()
    searches: list[float] = []
    kinds: dict[str, int] = {"common": 0, "rare": 0, "prefix": 0}
    by_kind: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(queries):  # the user in 100 conversations searches all it can read
        kind = rng.choice(list(kinds))
        kinds[kind] += 1
        words = query_words(rng, kind)
        started = time.perf_counter()
        keys = store.readable_conversations(1)
        store.search(words, keys, None, 20)
        searches.append(time.perf_counter() - started)
        by_kind[kind].append(searches[-1])
    # Scopes that hold few of the matches, each kind of words again (own random stream:
    # the mix above stays the one measured before): the same user searching one of its
    # conversations (`conversation` given; a room or DM holds 0.07% of the messages), and
    # users in the lobby and their few rooms (about 1.7%).
    scoped_rng = random.Random(seed + 2)
    scoped: dict[str, list[float]] = {}
    own = store.readable_conversations(1)
    for _ in range(queries):
        kind = scoped_rng.choice(["common", "rare", "prefix"])
        words = query_words(scoped_rng, kind)
        if scoped_rng.random() < 0.5:
            name, user, conversation = "one_conversation", 1, scoped_rng.choice(own)
        else:
            name, user, conversation = "small_scope_user", scoped_rng.randint(
                BENCH_DMS + 2, USERS), None
        started = time.perf_counter()
        keys = store.readable_conversations(user)
        if conversation is not None:
            assert conversation in keys
            keys = [conversation]
        store.search(words, keys, None, 20)
        scoped.setdefault(f"{name}_{kind}", []).append(time.perf_counter() - started)
    welcomes = []
    for _ in range(200):
        started = time.perf_counter()
        snap = store.snapshot(1, None, 1000)
        welcomes.append(time.perf_counter() - started)
    store.close()
    return {"messages": total, "conversations_of_user": len(snap.conversations),
            "unread_of_user": sum(c.unread for c in snap.conversations),
            "search": percentiles(searches), "search_queries": kinds,
            "search_by_kind": {kind: percentiles(found) for kind, found in by_kind.items()
                               if found},
            "search_scoped": {kind: percentiles(found) for kind, found in sorted(
                scoped.items())},
            "search_all": percentiles(searches + [t for found in scoped.values()
                                                  for t in found]),
            "welcome_snapshot": percentiles(welcomes),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def table(results: dict) -> str:
    """p50/p95/p99 per query class, as text."""
    rows = [("search, all of user 1's 100 conversations", results["search"])]
    rows += [(f"  {kind}", found) for kind, found in results["search_by_kind"].items()]
    rows += [(f"search, {kind}", found) for kind, found in results["search_scoped"].items()]
    rows += [("search, every class", results["search_all"]),
             ("welcome snapshot", results["welcome_snapshot"])]
    lines = [f"{'class':45} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"]
    lines += [f"{name:45} {r['count']:>4} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} "
              f"{r['max_ms']:>8}" for name, r in rows]
    lines.append(f"load average before/after: {results['load_average_before_after']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", help="SQLite file (default: a new temporary one)")
    parser.add_argument("--reuse", action="store_true", help="time an existing --db as is")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = Path(args.db or Path(tempfile.mkdtemp()) / "bench.db")
    url = f"sqlite:///{path}"
    if not args.reuse:
        path.unlink(missing_ok=True)
        build(url, args.messages, args.seed)
    load_before = os.getloadavg()
    results = measure(url, args.queries, args.seed)
    results["load_average_before_after"] = [round(load_before[0], 2),
                                            round(os.getloadavg()[0], 2)]
    results["sqlite"] = sqlite3.sqlite_version
    print(json.dumps(results, indent=2))
    print(table(results), file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
