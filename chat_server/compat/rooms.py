"""python-socketio's client manager, with each connection's rooms indexed.

The library finds a connection's rooms by walking every room of the namespace (a copy of
the whole table, then a membership test per room) on each disconnect and each
`rooms(sid)`. With a room per user (`user:`) and per watch list (`watch:`), that walk is
O(users online) per disconnect and O(N^2) for a disconnect storm: 10,000 clients that
drop at once took minutes. Here every enter and leave also updates `sid -> rooms`.

The library's lists of connections half-way through connecting or disconnecting are
looked up with `in` on every `is_connected` and emptied with `remove`: O(N) each, O(N^2)
for a storm. Here they are insertion-ordered dicts with the two list methods it uses.

A disconnecting connection also leaves its rooms at once (`pre_disconnect`): the library
keeps it in them until its disconnect handler returns, and a handler that waits (for the
store) would otherwise go on receiving, and queueing for a socket that is gone, every
broadcast of a storm, among them the other leavers' `userLeft`.
"""

from __future__ import annotations

from typing import Any

import socketio

from ._checks import has


class _Sids(dict[str, None]):
    """A pending list of the library's (`append`, `remove`, `in`, `len`, iteration), with
    O(1) `in` and `remove`."""

    def append(self, sid: str) -> None:
        self[sid] = None

    def remove(self, sid: str) -> None:
        del self[sid]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, dict)) else False


class _PendingByNamespace(dict[str, _Sids]):
    """`pending_connect` / `pending_disconnect`: namespace -> `_Sids`; the library stores
    a new `[]` per namespace, which becomes a `_Sids` here."""

    def __setitem__(self, namespace: str, sids: Any) -> None:
        super().__setitem__(namespace, sids if isinstance(sids, _Sids)
                            else _Sids((sid, None) for sid in sids))


class IndexedRooms(socketio.Manager):
    """Relies on `BaseManager.basic_enter_room(sid, namespace, room, eio_sid)`,
    `basic_leave_room(sid, namespace, room)`, `basic_disconnect(sid, namespace)`,
    `pre_disconnect(sid, namespace)`, `get_rooms(sid, namespace)` and on the attributes
    `callbacks`, `pending_connect` and `pending_disconnect` (what `basic_disconnect` tidies
    besides the rooms; namespace -> a list the library only appends to, removes from and
    tests with `in`). `None` is the library's room of connected sids."""

    _index: dict[tuple[str, str], set[Any]] | None = None  # (namespace, sid) -> rooms

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_connect = _PendingByNamespace()
        self.pending_disconnect = _PendingByNamespace()

    @property
    def room_index(self) -> dict[tuple[str, str], set[Any]]:
        if self._index is None:
            self._index = {}
        return self._index

    def basic_enter_room(self, sid: str, namespace: str, room: Any,
                         eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.room_index.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self.room_index.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.room_index[(namespace, sid)]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [room for room in self.room_index.get((namespace, sid), ()) if room is not None]

    def pre_disconnect(self, sid: str, namespace: str) -> Any:
        eio_sid = super().pre_disconnect(sid, namespace)
        for room in list(self.room_index.get((namespace, sid), ())):
            if room is not None and room != sid:
                self.basic_leave_room(sid, namespace, room)
        return eio_sid

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        for room in list(self.room_index.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]


def problems() -> list[str | None]:
    base = socketio.base_manager.BaseManager
    manager = socketio.Manager()
    return [
        has(base, "basic_enter_room", ("self", "sid", "namespace", "room", "eio_sid")),
        has(base, "basic_leave_room", ("self", "sid", "namespace", "room")),
        has(base, "basic_disconnect", ("self", "sid", "namespace")),
        has(base, "pre_disconnect", ("self", "sid", "namespace")),
        has(base, "get_rooms", ("self", "sid", "namespace")),
        *(None if isinstance(getattr(manager, name, None), dict)
          else f"socketio.Manager().{name} is not a dict"
          for name in ("callbacks", "pending_connect", "pending_disconnect")),
    ]
