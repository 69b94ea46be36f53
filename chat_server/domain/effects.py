"""What the domain asks the transport to do, and the names of the audiences it sends to.

Audiences map one-to-one onto Socket.IO rooms: every live connection is in `lobby`, in
its user's room (all tabs of one identity) and in the rooms of the chat rooms it is in.
"""

from dataclasses import dataclass, field

from .models import Room
from .validation import dm_user_keys


def lobby() -> str:
    return "lobby"


def user_target(user_key: str) -> str:
    return "user:" + user_key


def room_target(room_key: str) -> str:
    return "room:" + room_key


def watch_target(user_key: str) -> str:
    """The connections that named the user in `watchUsers` (docs/protocol.md §7)."""
    return "watch:" + user_key


def targets_of(conv_key: str) -> list[str]:
    """Who reads a conversation: everyone, a room's members, or both sides of a DM."""
    if conv_key == "lobby":
        return [lobby()]
    if conv_key.startswith("#"):
        return [room_target(conv_key)]
    first, second = dm_user_keys(conv_key)  # a key's parts are lower-case, not user keys
    return [user_target(first)] if first == second else [user_target(first),
                                                         user_target(second)]


@dataclass(frozen=True)
class Emit:
    event: str
    data: object  # the event's payload, JSON-able
    to: list[str]  # audiences or sids
    skip: list[str] = field(default_factory=list)  # sids that must not receive it
    local: bool = False  # to this node's connections only (each node sends its own)


@dataclass(frozen=True)
class Enter:
    sids: list[str]
    audience: str


@dataclass(frozen=True)
class Exit:
    sids: list[str]
    audience: str


@dataclass(frozen=True)
class Close:
    audience: str


@dataclass(frozen=True)
class Disconnect:
    """Close these connections (on any node), once what was sent to them went out."""

    sids: list[str]


@dataclass(frozen=True)
class Hold:
    """Keep what is sent to this connection from now on, until `Release`: it is going live,
    already in its rooms, while its replay is read (docs/protocol.md §1.9)."""

    sid: str


@dataclass(frozen=True)
class Release:
    """Send `first` (event, payload) to the connection held, then what was kept meanwhile,
    minus any `reply`/`update` whose id is at most `upto` (the replay had it)."""

    sid: str
    first: list[tuple[str, object]]
    upto: int


Effect = Emit | Enter | Exit | Close | Disconnect | Hold | Release


def room_event(room: Room, what: str, name: str) -> Emit:
    """`roomEvent` to a room's members (docs/protocol.md §3)."""
    return Emit("roomEvent", {"room": room.name, "event": what, "name": name},
                [room_target(room.key)])
