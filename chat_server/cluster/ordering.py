"""One order on every node: messages are delivered in id order, whatever node stored them
and whatever order Redis brought them in (docs/protocol.md §4, §11).

Ids are handed out under one PostgreSQL lock (`store.messages.insert_messages`), so once a
message is visible in the store, every smaller id is settled: stored, or never to be
(a rolled-back insert burns its sequence value). Each node therefore keeps one number,
`upto`, below which it has delivered everything, and a few messages that came early:

- its own commits are offered at once, and everybody's arrive on a Redis channel;
- the next id (`upto + 1`) is delivered as soon as it is known, with everything after it
  that is already here;
- a gap that lasts longer than `GAP_WAIT` is filled from the store, which also settles
  ids that were burned.

While Redis is away the channel is silent, so the node reads the store every second: users
of different nodes keep hearing each other, a little late; when Redis is back it reads
once more and carries on. Nothing is ever delivered twice: an id at or below `upto` is
dropped on arrival.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import runtime
from ..domain.effects import Emit, targets_of
from ..domain.models import Message

if TYPE_CHECKING:
    from redis import Redis

    from ..domain.ports import Publish

logger = logging.getLogger(__name__)

CHANNEL = "chat:messages"


class Sequencer:
    """Delivers committed messages on this node in increasing id order, with no gap."""

    GAP_WAIT = 0.05  # seconds a gap may last before the store is asked
    READ_AT_ONCE = 1000

    def __init__(self, read_after: Callable[[int, int], list[Message]], publish: Publish,
                 later: Callable[..., object] = runtime.spawn_after,
                 on_caught_up: Callable[[int], None] = lambda count: None) -> None:
        self.read_after = read_after  # (after id, limit) -> stored messages, by id
        self.publish = publish
        self.later = later
        self.on_caught_up = on_caught_up  # how many messages came from the store
        self.upto = 0
        self.pending: dict[int, Message] = {}
        self._fill_due = False
        self._reading = False

    def start(self, newest: int) -> None:
        self.upto = newest

    def delivered_mark(self) -> int:
        return self.upto

    def offer(self, messages: list[Message]) -> None:
        """Messages known to be committed (ours, or from the channel), in any order."""
        for message in messages:
            if message.id > self.upto:
                self.pending[message.id] = message
        self._deliver(self._contiguous())
        if self.pending and not self._fill_due:
            self._fill_due = True
            self.later(self.GAP_WAIT, self._fill_gap)

    def _contiguous(self) -> list[Message]:
        ready = []
        while self.upto + 1 in self.pending:
            message = self.pending.pop(self.upto + 1)
            ready.append(message)
            self.upto = message.id
        return ready

    def _deliver(self, messages: list[Message]) -> None:
        if messages:
            self.publish([Emit(m.event, m.to_wire(), targets_of(m.conv_key), local=True)
                          for m in messages])

    def _fill_gap(self) -> None:
        self._fill_due = False
        if self.pending:
            self.catch_up()

    def catch_up(self) -> int:
        """Read what was stored after `upto` and deliver it with what waited, in order.
        Returns how many messages came from the store rather than the channel."""
        if self._reading:
            return 0
        self._reading = True
        try:
            found = self.read_after(self.upto, self.READ_AT_ONCE)
        except Exception as error:
            logger.warning("could not read missed messages from the store: %s", error)
            self.later(1.0, self._fill_gap)
            return 0
        finally:
            self._reading = False
        fresh = [m for m in found if m.id > self.upto and m.id not in self.pending]
        for message in found:
            if message.id > self.upto:
                self.pending[message.id] = message
        ready = self._contiguous()
        if found and found[-1].id > self.upto:
            # Everything up to the newest stored id is settled: what is still missing
            # below it was burned, never stored.
            top = found[-1].id
            ready += [self.pending.pop(i) for i in sorted(self.pending) if i <= top]
            self.upto = top
            ready += self._contiguous()
        self._deliver(ready)
        if fresh:
            self.on_caught_up(len(fresh))
        if self.pending and not self._fill_due:
            self._fill_due = True
            self.later(self.GAP_WAIT, self._fill_gap)
        return len(fresh)


class MessageChannel:
    """The Redis channel that carries each node's commits to the others' `Sequencer`."""

    def __init__(self, redis: Redis, sequencer: Sequencer) -> None:
        self.redis = redis
        self.sequencer = sequencer
        self.connected = False  # subscribed and listening: /readyz reports it

    def committed(self, messages: list[Message]) -> None:
        """Our own commits: delivered here at once, then told to the other nodes. With
        Redis away they learn of them from the store."""
        self.sequencer.offer(messages)
        try:
            self.redis.publish(CHANNEL, json.dumps([dataclasses.asdict(m) for m in messages]))
        except Exception as error:
            logger.debug("could not publish %d messages: %s", len(messages), error)

    def start(self, newest: int) -> None:
        self.sequencer.start(newest)

    def listen(self) -> None:
        """For as long as the server runs: feed the sequencer from the channel; while
        Redis is away, from the store every second."""
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self.connected = True
                self.sequencer.catch_up()  # what was stored while we were not listening
                while True:
                    item = pubsub.get_message(timeout=1.0)
                    if item is not None and item.get("type") == "message":
                        self.sequencer.offer(_messages(item["data"]))
            except Exception as error:
                if self.connected:
                    logger.warning("message channel lost (%s); reading the store until "
                                   "Redis is back", error)
                self.connected = False
                self.sequencer.catch_up()
                runtime.sleep(1.0)


def _messages(raw: bytes | str) -> list[Message]:
    rows: list[dict[str, Any]] = json.loads(raw)
    return [Message(**row) for row in rows]
