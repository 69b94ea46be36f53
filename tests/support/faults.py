"""Faults injected into a running cluster (real processes): chat nodes killed (SIGKILL),
stopped (SIGTERM) or paused (SIGSTOP/SIGCONT), Redis and PostgreSQL restarted.

`Faults` draws a schedule from a seeded random generator, carries it out and keeps the
figures (what was done, when, for how long). While a fault lasts, `down` names what is
out, so that clients prefer other nodes.
"""

import os
import signal
import threading
import time

KINDS = ("sigkill", "sigterm", "pause", "redis", "postgres")


class Faults:
    """A seeded schedule of faults on `nodes` (ServerProcess), `redis` (RedisServer) and
    `postgres` (PostgresServer)."""

    def __init__(self, rng, nodes, redis, postgres):
        self.rng = rng
        self.nodes = nodes
        self.redis = redis
        self.postgres = postgres
        self.down = set()  # node indexes out of service right now (killed, stopped, paused)
        self.done = []  # (kind, target, seconds out, started at: seconds since `began`)
        self.began = time.monotonic()
        self._lock = threading.Lock()
        self._paused = None

    def plan(self, count):
        """`count` fault kinds: each kind at least once, the rest drawn at random."""
        kinds = list(KINDS) + [self.rng.choice(KINDS) for _ in range(max(0, count - len(KINDS)))]
        self.rng.shuffle(kinds)
        return kinds

    def up_nodes(self):
        with self._lock:
            return [i for i in range(len(self.nodes)) if i not in self.down]

    def inject(self, kind):
        """Carry out one fault and its repair; return once everything is back."""
        rng = self.rng
        if kind in ("sigkill", "sigterm", "pause"):
            i = rng.randrange(len(self.nodes))
            node = self.nodes[i]
            with self._lock:
                self.down.add(i)
            out = rng.uniform(0.5, 3.0)
            started = time.monotonic()
            try:
                if kind == "sigkill":
                    node.kill()
                    time.sleep(out)
                    node.start(timeout=60)
                elif kind == "sigterm":
                    node.stop()  # SIGTERM: finishes the sends in flight, then exits
                    time.sleep(out)
                    node.start(timeout=60)
                else:
                    self._paused = node.proc.pid
                    os.kill(node.proc.pid, signal.SIGSTOP)
                    # from shorter than a sender's ack timeout to well over it (its
                    # senders then leave for another node) and over PRESENCE_TTL
                    time.sleep(out * 2.5)
                    os.kill(node.proc.pid, signal.SIGCONT)
                    self._paused = None
            finally:
                with self._lock:
                    self.down.discard(i)
            self.done.append((kind, f"node{i + 1}", round(time.monotonic() - started, 1),
                              round(started - self.began, 1)))
        elif kind == "redis":
            started = time.monotonic()
            self.redis.stop()
            time.sleep(rng.uniform(0.5, 3.0))
            self.redis.start()
            self.done.append((kind, "redis", round(time.monotonic() - started, 1),
                              round(started - self.began, 1)))
        elif kind == "postgres":
            started = time.monotonic()
            self.postgres.kill()  # immediate: open transactions are cut off
            time.sleep(rng.uniform(0.5, 2.0))
            self.postgres.restart()
            self.done.append((kind, "postgres", round(time.monotonic() - started, 1),
                              round(started - self.began, 1)))
        else:
            raise ValueError(kind)

    def repair(self):
        """Whatever happens to the test, leave every process running and none paused."""
        if self._paused is not None:
            try:
                os.kill(self._paused, signal.SIGCONT)
            except OSError:
                pass
        if self.redis.proc is None or self.redis.proc.poll() is not None:
            self.redis.start()
        if self.postgres.proc is None or self.postgres.proc.poll() is not None:
            self.postgres.restart()
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                node.start(timeout=60)

    def summary(self):
        counts = {}
        for kind, *_ in self.done:
            counts[kind] = counts.get(kind, 0) + 1
        return counts
