"""python-socketio's client manager, with each connection's rooms indexed.

The library finds a connection's rooms by walking every room of the namespace (a copy of
the whole table, then a membership test per room) on each disconnect and each
`rooms(sid)`. With a room per user (`user:`) and per watch list (`watch:`), that walk is
O(users online) per disconnect and O(N^2) for a disconnect storm: 10,000 clients that
drop at once took minutes. Here every enter and leave also updates `sid -> rooms`.

A disconnecting connection also leaves its rooms at once (`pre_disconnect`): the library
keeps it in them until its disconnect handler returns, and a handler that waits (for the
store) would otherwise go on receiving, and queueing for a socket that is gone, every
broadcast of a storm, among them the other leavers' `userLeft`.
"""

from __future__ import annotations

from typing import Any

import socketio

from ._checks import has


class IndexedRooms(socketio.Manager):
    """Relies on `BaseManager.basic_enter_room(sid, namespace, room, eio_sid)`,
    `basic_leave_room(sid, namespace, room)`, `basic_disconnect(sid, namespace)`,
    `pre_disconnect(sid, namespace)`, `get_rooms(sid, namespace)` and on the attributes
    `callbacks`, `pending_connect` and `pending_disconnect` (what `basic_disconnect` tidies
    besides the rooms). `None` is the library's room of connected sids."""

    _index: dict[tuple[str, str], set[Any]] | None = None  # (namespace, sid) -> rooms

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
