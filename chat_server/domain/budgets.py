"""Budgets: what one connection, one user or one client address may do to everyone else.

docs/protocol.md §1.10 and §5. Sends have their own bucket (`sending`, `RATE_LIMIT`).
Here, each a token bucket that starts full; over it, `rate_limited`:

- every client event, per connection and per user (`EVENT_RATE`), sends included;
- new rooms, per user (`ROOM_RATE`): a room is permanent once a registered user made it;
- password checks, per client address (`PASSWORD_RATE`) and per target (the name signed
  in to, the private room joined, the Admin UI: `PASSWORD_TARGET_RATE`). The address is
  charged first, so an address over its budget cannot spend a target's any further.

How many events one connection may have in flight at once is the transport's to count
(`handlers.SocketHandlers.admit`): the domain never sees events that are still queued.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import RateLimited
from .ratelimit import Key, RateLimiter

if TYPE_CHECKING:
    from ..config import Config, RateLimit
    from .ports import LimiterPort
    from .presence import Connection

# Makes the bucket of one budget (`name`) from its limit (None: off): `RateLimiter` on one
# node, buckets shared in Redis with several (`cluster.node.ClusterNode.budget_limiter`).
LimiterFactory = Callable[["RateLimit | None", str], "LimiterPort"]

EVENTS = "events"
ROOMS = "rooms"
PASSWORD_ADDRESS = "password_address"
PASSWORD_TARGET = "password_target"


def local_limiters(limit: RateLimit | None, name: str) -> LimiterPort:
    """One node: every budget in this process's memory."""
    return RateLimiter(limit)


class Budgets:
    def __init__(self, config: Config, limiter_for: LimiterFactory = local_limiters,
                 on_refused: Callable[[str], None] = lambda budget: None) -> None:
        self.events = limiter_for(config.event_rate, EVENTS)
        self.rooms = limiter_for(config.room_rate, ROOMS)
        self.password_addresses = limiter_for(config.password_rate, PASSWORD_ADDRESS)
        self.password_targets = limiter_for(config.password_target_rate, PASSWORD_TARGET)
        self.on_refused = on_refused  # metrics: the name of the budget that said no

    def charge_event(self, conn: Connection) -> None:
        """Any client event: a token from the connection's and from the user's bucket."""
        if not self.events.acquire(("sid", conn.sid), ("user", conn.user.key)):
            self._refuse(EVENTS, "You are doing too much at once; wait a moment.")

    def charge_new_room(self, conn: Connection) -> None:
        if not self.rooms.acquire(("user", conn.user.key)):
            self._refuse(ROOMS, "You are creating rooms too fast; wait a minute.")

    def charge_password_check(self, address: str, target: Key) -> None:
        """Before checking a password: a slot of the address's budget, then of the
        target's (`("name", key)`, `("room", key)` or `("admin", namespace)`)."""
        if not self.password_addresses.acquire(("addr", address)):
            self._refuse(PASSWORD_ADDRESS, "Too many password attempts from your address; "
                                           "wait a minute and try again.")
        if not self.password_targets.acquire(target):
            self._refuse(PASSWORD_TARGET, "Too many password attempts for this name or room; "
                                          "wait a minute and try again.")

    def prune(self) -> None:
        """Drop the buckets that are full again (the same as none): closed connections,
        addresses and targets that stopped trying."""
        for limiter in (self.events, self.rooms, self.password_addresses,
                        self.password_targets):
            limiter.prune()

    def _refuse(self, budget: str, message: str) -> None:
        self.on_refused(budget)
        raise RateLimited(message)
