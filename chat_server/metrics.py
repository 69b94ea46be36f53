"""Prometheus metrics and the event-loop lag probe.

Counters are bumped where things happen (transport, domain hooks); gauges that describe
current state (connections, users, rooms) are read from the live objects at scrape time,
so they can never drift from the truth.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

    from .domain.ports import Runner

M = TypeVar("M", bound=MetricWrapperBase)
T = TypeVar("T")
State = Callable[[], dict[str, Any]]  # current figures: connections, users, rooms...


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # (metric, label) -> labelled child, of the metric's own class
        self._children: dict[tuple[MetricWrapperBase, str], Any] = {}
        self.messages_accepted = Counter(
            "chat_messages_accepted", "Messages stored and acked, by kind.", ["kind"],
            registry=r)
        self.messages_delivered = Counter(
            "chat_messages_delivered",
            "Message deliveries to connections of this node at emit time, by kind.", ["kind"],
            registry=r)
        self.acks = Counter("chat_acks", "Answers to client events, by result code.",
                            ["code"], registry=r)
        self.rate_limited = Counter("chat_rate_limited", "Sends refused by the rate limit.",
                                    registry=r)
        self.connections_refused = Counter(
            "chat_connections_refused", "Refused connections, by code.", ["code"], registry=r)
        self.refused_by_budget = Counter(
            "chat_refused_by_budget",
            "Requests refused by a budget (docs/protocol.md §1.10): events, window, rooms, "
            "password_address, password_target, password_busy.", ["budget"], registry=r)
        self.pruned = Counter(
            "chat_messages_pruned", "Messages and changes deleted by retention (RETENTION_DAYS).",
            registry=r)
        self.moderated = Counter(
            "chat_moderation_actions", "Moderation actions (docs/protocol.md §10), by action.",
            ["action"], registry=r)
        self.caught_up = Counter(
            "chat_catch_up_messages",
            "Messages this node delivered from the store, not from Redis: after a gap in "
            "what the other nodes published, or an outage of Redis (docs/protocol.md §11).",
            registry=r)
        self.store_seconds = Histogram(
            "chat_store_seconds", "Time of each store call, queueing included.", ["call"],
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
            registry=r)
        self.loop_lag = Gauge("chat_event_loop_lag_seconds",
                              "How late the last event-loop probe woke up.", registry=r)
        self.loop_delay = Histogram(
            "chat_event_loop_delay_seconds",
            "How late each event-loop heartbeat woke up (one every 50 ms).",
            buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5), registry=r)
        self.loop_lag_max = Gauge("chat_event_loop_lag_max_seconds",
                                  "Largest event-loop lag seen since start.", registry=r)

    def count(self, counter: Counter, label: str, amount: float = 1) -> None:
        """`counter.labels(label).inc(amount)`; this runs for every message."""
        self._child(counter, label).inc(amount)

    def _child(self, metric: M, label: str) -> M:
        """`metric.labels(label)`, looked up once (the library's lookup is not cheap)."""
        child = self._children.get((metric, label))
        if child is None:
            child = self._children[(metric, label)] = metric.labels(label)
        return child

    def watch(self, state: State) -> None:
        """Register `state()` -> dict of current figures, read at each scrape."""
        self.registry.register(_StateCollector(state))

    def timed(self, store_call: Runner) -> Runner:
        """Wrap a store runner so every call is timed under its method's name."""
        histogram = self.store_seconds

        def call(fn: Callable[..., T], *args: Any) -> T:
            started = time.perf_counter()
            try:
                return store_call(fn, *args)
            finally:
                self._child(histogram, getattr(fn, "__name__", "call")).observe(
                    time.perf_counter() - started)

        return call

    def probe_loop(self, sleep: Callable[[float], object], interval: float = 0.05) -> None:
        """Run forever in a greenlet: a hub busy with blocking work wakes it up late."""
        worst = 0.0
        while True:
            started = time.perf_counter()
            sleep(interval)
            lag = max(0.0, time.perf_counter() - started - interval)
            worst = max(worst, lag)
            self.loop_lag.set(lag)
            self.loop_delay.observe(lag)
            self.loop_lag_max.set(worst)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector:
    def __init__(self, state: State) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        figures = self.state()
        connections = GaugeMetricFamily("chat_connections",
                                        "Connections to this node, by transport.",
                                        labels=["transport"])
        for transport, count in sorted(figures["connections"].items()):
            connections.add_metric([transport], count)
        yield connections
        yield GaugeMetricFamily("chat_users_online", "Users online (all nodes when scaled).",
                                value=figures["users"])
        yield GaugeMetricFamily("chat_rooms", "Rooms that exist.", value=figures["rooms"])
        if "redis_up" in figures:
            yield GaugeMetricFamily("chat_redis_up", "1 when Redis answers.",
                                    value=figures["redis_up"])


def authorized(environ: WSGIEnvironment, token: str) -> bool:
    """`Authorization: Bearer <METRICS_TOKEN>`, compared in constant time."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.encode())
