"""The chat domain assembled: one object per concern, sharing one `Context`.

Every action validates its payload, checks who may do it, changes the store, and says
what should be sent to whom as a list of effects (`effects.py`). Choosing recipients
happens only in the domain, because it is a security decision; the transport applies the
effects to Socket.IO, and tests read them directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .bots import Bots
from .budgets import Budgets
from .changes import Changes
from .context import Context
from .identity import Identity, Later, at_once
from .live import GoingLive
from .models import Message
from .moderation import Moderation
from .modes import Mode, one_node
from .ports import GroupCommit, OneByOne, Publish, Runner, direct
from .reading import Reading
from .rooms import Rooms
from .sending import Sending, Signal
from .typing_status import TypingStatus

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store


class Chat:
    def __init__(self, store: Store, config: Config, publish: Publish, *,
                 mode: Mode | None = None, store_call: Runner = direct,
                 offload: Runner = direct, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 group_commit: GroupCommit = OneByOne,
                 on_accepted: Callable[[Message], None] = lambda message: None,
                 pause: Callable[[], None] = lambda: None,
                 later: Later = at_once,
                 signal: Callable[[], Signal] = threading.Event,
                 on_refused: Callable[[str], None] = lambda budget: None,
                 on_moderated: Callable[[str], None] = lambda action: None) -> None:
        mode = mode or one_node(config, monotonic)
        self.store = store
        self.presence = mode.presence
        self.limiter = mode.limiter
        self.budgets = Budgets(config, mode.budget_limiter, on_refused)
        self.ctx = ctx = Context(store, config, publish, mode.presence, store_call, offload,
                                 clock)
        self.identity = Identity(ctx, mode.limiter, mode.memberships, self.budgets, later,
                                 group_commit)
        self.moderation = Moderation(ctx, self.identity, mode.memberships, on_moderated)
        self.rooms = Rooms(ctx, self.identity.conn, mode.memberships, self.budgets,
                           self.moderation)
        self.sending = Sending(ctx, self.identity, self.rooms, mode.limiter, group_commit,
                               on_accepted, signal, mode.distribution, pause,
                               self.moderation)
        self.watching = self.identity.watching
        self.live = GoingLive(ctx, self.watching)
        self.reading = Reading(ctx, self.identity, self.rooms)
        self.changes = Changes(ctx, self.identity, self.reading, self.sending,
                               self.moderation)
        self.typing = TypingStatus(ctx, self.identity, self.rooms, self.moderation)
        self.bots = Bots(ctx, self.budgets, self.sending, self.rooms, self.reading)

    def charge_event(self, sid: str) -> None:
        """Any client event, before it is handled: `rate_limited` over the connection's or
        the user's event budget (docs/protocol.md §1.10)."""
        self.budgets.charge_event(self.identity.conn(sid))

    def start(self) -> None:
        """Prepare the store and learn how far message ids have gone."""
        self.ctx.store_call(self.store.create_schema)
        self.sending.distribution.start(self.ctx.store_call(self.store.newest_id) or 0)
