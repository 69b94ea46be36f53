"""What the domain runs on, as small typed interfaces.

`app.py` picks one implementation of each port for the mode it runs in (one node, or
several sharing Redis and PostgreSQL, see `modes.py`); the domain never asks which.
Tests pass plain callables and the one-node implementations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from .effects import Effect
    from .models import Message, Room, User
    from .presence import Connection

T = TypeVar("T")


class Runner(Protocol):
    """Runs a blocking call somewhere the event loop does not wait for it (`store_call`
    on the store's lane, `offload` on an OS thread) and returns its result."""

    def __call__(self, fn: Callable[..., T], /, *args: Any) -> T: ...


def direct(fn: Callable[..., T], /, *args: Any) -> T:
    """A `Runner` for tests and tools: just call it."""
    return fn(*args)


Item = TypeVar("Item")
Result = TypeVar("Result")
Item_contra = TypeVar("Item_contra", contravariant=True)
Result_co = TypeVar("Result_co", covariant=True)


class Submitter(Protocol[Item_contra, Result_co]):
    """Group commit: `submit` waits for this item's result; the server gathers the items
    submitted meanwhile into one batch, one transaction (`runtime.Batcher`)."""

    def submit(self, item: Item_contra,
               queued: Callable[[], None] | None = None) -> Result_co: ...


GroupCommit = Callable[[Callable[[list[Any]], list[Any]]], Submitter[Any, Any]]


class OneByOne(Generic[Item, Result]):
    """A `GroupCommit` for tests and tools: each item is a batch of its own."""

    def __init__(self, process: Callable[[list[Item]], list[Result]]) -> None:
        self.process = process

    def submit(self, item: Item, queued: Callable[[], None] | None = None) -> Result:
        if queued is not None:
            queued()
        return self.process([item])[0]


Publish = Callable[["list[Effect]"], None]  # hands effects to the transport, in order


class PresencePort(Protocol):
    """Who is online: `presence.Presence` (one node) or `cluster.presence.RedisPresence`."""

    def add(self, conn: Connection) -> bool: ...
    def remove(self, sid: str) -> tuple[Connection | None, bool]: ...
    def get(self, sid: str) -> Connection | None: ...
    def local_sids(self) -> list[str]: ...
    def user_of_sid(self, sid: str) -> User | None: ...
    def sids_of(self, user_key: str) -> list[str]: ...
    def sids_with_token(self, user_key: str, token: str) -> list[str]: ...
    def online_user(self, user_key: str) -> User | None: ...
    def users(self) -> list[dict]: ...
    def online_count(self) -> int: ...
    def users_of(self, user_keys: Iterable[str]) -> list[dict]: ...
    def users_page(self, prefix: str, after: str | None, limit: int) -> list[dict]: ...
    def reap(self) -> list[tuple[str, User, bool]]: ...
    def __len__(self) -> int: ...


class LimiterPort(Protocol):
    """Token buckets: `ratelimit.RateLimiter` or `cluster.ratelimit.SharedRateLimiter`."""

    def acquire(self, *keys: tuple[str, str]) -> bool: ...
    def refund(self, *keys: tuple[str, str]) -> None: ...
    def forget(self, key: tuple[str, str]) -> None: ...
    def prune(self) -> None: ...


class Memberships(Protocol):
    """Rooms each user was found to be a member of, so a send to a room needs no store
    round trip: `rooms.MembershipCache` (one node) or `rooms.NoMembershipCache`."""

    def known(self, user_id: int, room_key: str) -> Room | None: ...
    def remember(self, user_id: int, room: Room) -> None: ...
    def forget(self, user_id: int | None = None, room_key: str | None = None) -> None: ...


class Distribution(Protocol):
    """How committed messages reach their readers, in id order: `sending.LocalDistribution`
    (one node) or `cluster.ordering.MessageChannel` (several nodes)."""

    def start(self, newest: int) -> None: ...
    def committed(self, messages: list[Message]) -> None: ...
