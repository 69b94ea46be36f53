"""Rooms: creating, joining, leaving and closing them, and who is a member."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import security, validation
from .budgets import Budgets
from .context import Context
from .effects import Close, Effect, Emit, Enter, Exit, room_event, room_target
from .errors import BadPassword, Forbidden, NotFound
from .models import Room, User
from .ports import Memberships
from .presence import Connection
from .validation import fold
from .watching import quiet_room

if TYPE_CHECKING:
    from .moderation import Moderation

logger = logging.getLogger(__name__)


class MembershipCache:
    """One node: every membership change goes through this process, which forgets what
    it changes before and after the store call, so a lookup racing it cannot leave a
    stale entry."""

    def __init__(self) -> None:
        self._rooms: dict[int, dict[str, Room]] = {}  # self._rooms[user_id][room_key]

    def known(self, user_id: int, room_key: str) -> Room | None:
        return self._rooms.get(user_id, {}).get(room_key)

    def remember(self, user_id: int, room: Room) -> None:
        self._rooms.setdefault(user_id, {})[room.key] = room

    def forget(self, user_id: int | None = None, room_key: str | None = None) -> None:
        if user_id is not None and room_key is not None:
            self._rooms.get(user_id, {}).pop(room_key, None)
        elif user_id is not None:
            self._rooms.pop(user_id, None)
        else:
            for rooms in self._rooms.values():
                rooms.pop(room_key or "", None)


class NoMembershipCache:
    """Several nodes: other processes change memberships, so the store is always asked."""

    def known(self, user_id: int, room_key: str) -> Room | None:
        return None

    def remember(self, user_id: int, room: Room) -> None:
        pass

    def forget(self, user_id: int | None = None, room_key: str | None = None) -> None:
        pass


class Rooms:
    def __init__(self, ctx: Context, conn: Callable[[str], Connection],
                 memberships: Memberships, budgets: Budgets | None = None,
                 moderation: Moderation | None = None) -> None:
        self.ctx = ctx
        self._conn = conn  # sid -> its Connection, or Forbidden
        self.memberships = memberships
        self.budgets = budgets or Budgets(ctx.config)
        self.moderation = moderation  # bans and who may close (§10); None: v1 rules

    def member_room(self, user: User, name: str) -> Room:
        """The room `name` if `user` is a member: else `not_found` or `forbidden`."""
        key = fold(validation.check_room_name(name))
        room = self.memberships.known(user.id, key)
        if room is not None:
            return room
        room, member = self.ctx.store_call(self.ctx.store.room_for, key, user.id)
        if room is None:
            raise NotFound("No such room.")
        if not member:
            raise Forbidden("You are not a member of that room.")
        self.memberships.remember(user.id, room)
        return room

    def join_room(self, sid: str, payload: object) -> dict:
        return self.join_room_as(self._conn(sid), payload)

    def join_room_as(self, conn: Connection, payload: object) -> dict:
        """`joinRoom` as `conn`, which may also be a bot's HTTP identity (`bots.py`)."""
        request = validation.parse_join_room(payload)
        store, call = self.ctx.store, self.ctx.store_call
        user, key = conn.user, fold(request.room)
        room = call(store.room_by_key, key)
        if room is None:
            self.budgets.charge_new_room(conn)  # before the hash: creating costs the most
            password_hash = None
            if request.password is not None:
                password_hash = self.ctx.offload(security.hash_password, request.password)
            room = call(store.create_room, request.room, key, user.id, password_hash)
            if room is not None:
                logger.info("room %s created by %s", room.name, user.name)
                return self._after_join(conn, room, joined=True)
            room = call(store.room_by_key, key)  # someone created it meanwhile: join it
            if room is None:
                raise NotFound("The room was closed meanwhile.")
        if call(store.is_member, room.id, user.id):
            return self._after_join(conn, room, joined=False)
        if call(store.banned_from_room, room.id, user.id):
            raise Forbidden("You are banned from this room.")
        if room.private:
            if request.password is None:
                raise BadPassword("Wrong or missing password for this private room.")
            self.budgets.charge_password_check(conn.address, ("room", room.key))
            if not self.ctx.offload(security.verify_password, room.password_hash,
                                    request.password):
                raise BadPassword("Wrong or missing password for this private room.")
        return self._after_join(conn, room, joined=call(store.add_member, room.id, user.id))

    def _after_join(self, conn: Connection, room: Room, joined: bool) -> dict:
        store, call = self.ctx.store, self.ctx.store_call
        room = call(store.room_by_key, room.key) or room
        names = call(store.member_names, room.id)
        history = call(store.history, room.key, None, None, 50)
        if joined:
            effects: list[Effect] = [
                Enter(self.ctx.presence.sids_of(conn.user.key), room_target(room.key))]
            if not quiet_room(room, self.ctx.config.presence_limit):
                effects.append(room_event(room, "joined", conn.user.name))
            self.ctx.publish(effects)
        return {"room": room.to_wire(), "members": names,
                "history": [m.to_wire() for m in history]}

    def leave_room(self, sid: str, payload: object) -> None:
        conn = self._conn(sid)
        room = self.member_room(conn.user, validation.parse_room(payload))
        self.memberships.forget(conn.user.id, room.key)
        change = self.ctx.store_call(self.ctx.store.remove_member, room.id, conn.user.id)
        self.memberships.forget(conn.user.id, room.key)
        if change.deleted:
            self.memberships.forget(room_key=room.key)
        target = room_target(room.key)
        effects: list[Effect] = []
        if not quiet_room(change.room, self.ctx.config.presence_limit):
            effects.append(room_event(room, "left", conn.user.name))
        if change.new_owner and not change.deleted:  # v2 (§10.3): ownership passing is told
            effects.append(Emit("roomEvent", {"room": room.name, "event": "owner",
                                              "name": change.new_owner,
                                              "by": conn.user.name}, [target]))
        effects.append(Exit(self.ctx.presence.sids_of(conn.user.key), target))
        if change.deleted:
            effects.append(Close(target))
        self.ctx.publish(effects)

    def close_room(self, sid: str, payload: object) -> None:
        conn = self._conn(sid)
        key = fold(validation.check_room_name(validation.parse_room(payload)))
        room = self.ctx.store_call(self.ctx.store.room_by_key, key)
        if room is None:
            raise NotFound("No such room.")
        if self.moderation is not None:
            self.moderation.require("closeRoom", conn.user, None, room)
        elif room.owner is None or fold(room.owner) != conn.user.key:
            raise Forbidden("Only the room's owner may close it.")
        self.memberships.forget(room_key=room.key)
        self.ctx.store_call(self.ctx.store.delete_room, room.id)
        self.memberships.forget(room_key=room.key)
        logger.info("room %s closed by %s", room.name, conn.user.name)
        self.ctx.publish([room_event(room, "closed", conn.user.name),
                          Close(room_target(room.key))])

    def list_rooms(self, sid: str) -> list[dict]:
        conn = self._conn(sid)
        rooms = self.ctx.store_call(self.ctx.store.visible_rooms, conn.user.id)
        return [room.to_wire() for room in rooms]
