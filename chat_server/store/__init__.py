"""Durable storage behind a narrow interface: SQLAlchemy Core, one code path for SQLite and
PostgreSQL.

Every method is blocking and must run off the event loop (see `runtime.Lane`). Each
method is one transaction, so a caller never sees half of a change. The parts: `base`
(engine, transactions, schema upgrades), `users`, `rooms`, `messages`, `welcome` (the
connect path's reads), `reading`, `moderation`.
"""

from .base import RoomChange, Snapshot
from .moderation import ModerationStore
from .reading import ReadingStore
from .users import UserStore
from .welcome import WelcomeStore


class Store(UserStore, WelcomeStore, ReadingStore, ModerationStore):
    """The chat's durable state."""


__all__ = ["RoomChange", "Snapshot", "Store"]
