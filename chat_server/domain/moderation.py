"""Moderation and blocks (docs/protocol.md §10): room roles, kick, ban, mute, server
admins banning users, and users blocking each other's direct messages.

Every decision goes through `authorization` (one table). Every action is logged (who,
what, whom, where) and counted (`on_moderated`), and announced as a `roomEvent` to the
room's members and every tab of the user concerned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import authorization as authz
from . import payloads
from .context import Context
from .effects import Close, Disconnect, Effect, Emit, Exit, room_target, user_target
from .errors import Blocked, Forbidden, Muted, NotFound
from .identity import Identity
from .models import Room, User
from .ports import Memberships
from .presence import Connection
from .validation import fold

logger = logging.getLogger(__name__)

MUTE_MAX = 604_800  # seconds


class Moderation:
    def __init__(self, ctx: Context, identity: Identity, memberships: Memberships,
                 on_moderated: Callable[[str], None] = lambda action: None) -> None:
        self.ctx = ctx
        self.identity = identity
        self.memberships = memberships
        self.on_moderated = on_moderated  # metrics: the action's name
        self.admin_keys = frozenset(fold(name) for name in ctx.config.admins)

    # -- who someone is, here ---------------------------------------------------------

    def is_admin(self, user: User) -> bool:
        """A name listed in ADMINS, registered with a password (§10.4)."""
        return user.key in self.admin_keys and not user.guest and bool(user.password_hash)

    def role(self, user: User, room: Room | None) -> str:
        """The user's role in the room (or `member` of a conversation without roles)."""
        if room is None:
            return authz.MEMBER
        found = self.ctx.store_call(self.ctx.store.role_in, room.id, user.id)
        return found or authz.OUTSIDER

    def may(self, action: str, actor: User, target: User | None, room: Room | None) -> bool:
        """The table's answer, an admin counting as the stronger of its two roles. No
        target: the room itself (closeRoom), or a user gone since (a guest)."""
        if target is None:
            target_role = authz.OWNER if action == "closeRoom" else authz.OUTSIDER
        elif self.is_admin(target):
            target_role = authz.ADMIN
        else:
            target_role = self.role(target, room)
        roles = [self.role(actor, room)]
        if self.is_admin(actor):
            roles.append(authz.ADMIN)
        return any(authz.allowed(action, role, target_role) for role in roles)

    def require(self, action: str, actor: User, target: User | None, room: Room | None) -> None:
        if not self.may(action, actor, target, room):
            raise Forbidden(authz.refusal(action))

    # -- room roles, kick, ban, mute -----------------------------------------------------

    def set_role(self, sid: str, payload: object) -> dict[str, Any]:
        conn, room, target, request = self._room_action(payload, sid, role=True)
        self._require_member(target, room)
        self.require("setRole", conn.user, target, room)
        if not self.ctx.store_call(self.ctx.store.set_role, room.id, target.id, request.role):
            return {}  # the role it has already
        self._done("setRole", conn, target, room, [
            self._event(room, "role", target, conn, role=request.role)])
        return {}

    def kick(self, sid: str, payload: object) -> dict[str, Any]:
        conn, room, target, _ = self._room_action(payload, sid)
        self._require_member(target, room)
        self.require("kick", conn.user, target, room)
        self.memberships.forget(target.id, room.key)
        change = self.ctx.store_call(self.ctx.store.remove_member, room.id, target.id)
        self.memberships.forget(target.id, room.key)
        effects: list[Effect] = [self._event(room, "kicked", target, conn),
                                 *self._removed(room, target, change, conn)]
        self._done("kick", conn, target, room, effects)
        return {}

    def ban(self, sid: str, payload: object) -> dict[str, Any]:
        conn, room, target, request = self._room_action(payload, sid, on=True)
        self.require("ban", conn.user, target, room)
        self.memberships.forget(target.id, room.key)
        change = self.ctx.store_call(self.ctx.store.ban_from_room, room.id, target.id,
                                     conn.user.name, request.on, self.ctx.now_ms())
        self.memberships.forget(target.id, room.key)
        effects: list[Effect] = [
            self._event(room, "banned" if request.on else "unbanned", target, conn)]
        if change is not None:
            effects += self._removed(room, target, change, conn)
        self._done("ban" if request.on else "unban", conn, target, room, effects)
        return {}

    def mute(self, sid: str, payload: object) -> dict[str, Any]:
        conn, room, target, request = self._room_action(payload, sid, seconds=True)
        self._require_member(target, room)
        self.require("mute", conn.user, target, room)
        until = self.ctx.now_ms() + request.seconds * 1000 if request.seconds else None
        self.ctx.store_call(self.ctx.store.mute, room.id, target.id, until)
        self._done("mute" if until else "unmute", conn, target, room, [
            self._event(room, "muted", target, conn, until=until)])
        return {}

    def check_not_muted(self, user: User, room: Room) -> None:
        """Typing in a room: `forbidden` while muted there (§10.2). A send is checked by
        the group commit instead (`NewMessage.mute_room_id`)."""
        until = self.ctx.store_call(self.ctx.store.muted_until, room.id, user.id)
        if until is not None and until > self.ctx.now_ms():
            raise Muted()

    # -- the server: banUser; blocks --------------------------------------------------------

    def ban_user(self, sid: str, payload: object) -> dict[str, Any]:
        conn = self.identity.conn(sid)
        name, on = payloads.parse_user_switch(payload)
        target = self.identity.peer_by_name(name)
        self.require("banUser", conn.user, target, None)
        self.ctx.store_call(self.ctx.store.ban_user, target.id, conn.user.name, on,
                            self.ctx.now_ms())
        effects: list[Effect] = []
        if on:
            effects = self.close_banned(target.key, conn.user.name)
        self._done("banUser" if on else "unbanUser", conn, target, None, effects)
        return {}

    def close_banned(self, user_key: str, by: str) -> list[Effect]:
        """A banned user's connections, everywhere: told `banned {by}`, then closed."""
        sids = self.ctx.presence.sids_of(user_key)
        return [Emit("banned", {"by": by}, [user_target(user_key)]), Disconnect(sids)]

    def apply_bans_since(self, since: int) -> int:
        """Bans written by others (the admin command, another node): this node closes its
        own connections of each user banned at or after `since`. Returns the next `since`."""
        for key, by, ts in self.ctx.store_call(self.ctx.store.bans_since, since):
            here = [sid for sid in self.ctx.presence.sids_of(key)
                    if self.ctx.presence.get(sid) is not None]
            if here:
                logger.info("closing %d connections of %s, banned by %s", len(here), key, by)
                self.ctx.publish([Emit("banned", {"by": by}, here, local=True),
                                  Disconnect(here)])
            # Not ts + 1: another ban of the same millisecond may commit after this read.
            # Reading the last millisecond again finds its users' connections closed.
            since = max(since, ts)
        return since

    def block(self, sid: str, payload: object) -> dict[str, Any]:
        conn = self.identity.conn(sid)
        name, on = payloads.parse_user_switch(payload)
        target = self.identity.peer_by_name(name)
        if target.id == conn.user.id:
            raise Forbidden("You cannot block yourself.")
        self.ctx.store_call(self.ctx.store.block, conn.user.id, target.id, on)
        logger.info("%s %s %s", conn.user.name, "blocked" if on else "unblocked", target.name)
        return {"blocked": self.ctx.store_call(self.ctx.store.blocked_names, conn.user.id)}

    def check_not_blocked(self, sender: User, recipient: User) -> None:
        """DM typing to someone who blocks the sender: `forbidden` (§10.5). A DM itself is
        checked by the group commit instead (`NewMessage.check_blocks`)."""
        if recipient.id != sender.id and self.ctx.store_call(
                self.ctx.store.blocks, recipient.id, sender.id):
            raise Blocked()

    # -- shared ----------------------------------------------------------------------------

    def _room_action(self, payload: object, sid: str, role: bool = False, on: bool = False,
                     seconds: bool = False) -> tuple[Connection, Room, User,
                                                     payloads.RoomAction]:
        conn = self.identity.conn(sid)
        request = payloads.parse_room_action(payload, role=role, on=on, seconds=seconds,
                                               max_seconds=MUTE_MAX)
        room = self.ctx.store_call(self.ctx.store.room_by_key, fold(request.room))
        if room is None:
            raise NotFound("No such room.")
        target = self.identity.peer_by_name(request.name)
        if target.id == conn.user.id:
            raise Forbidden("You cannot do that to yourself.")
        return conn, room, target, request

    def _require_member(self, target: User, room: Room) -> None:
        if self.role(target, room) == authz.OUTSIDER:
            raise NotFound("No such member.")

    def _event(self, room: Room, what: str, target: User, by: Connection,
               **extra: object) -> Emit:
        data = {"room": room.name, "event": what, "name": target.name, "by": by.user.name,
                **extra}
        return Emit("roomEvent", data, [room_target(room.key), user_target(target.key)])

    def _removed(self, room: Room, target: User, change: Any, by: Connection) -> list[Effect]:
        """The target leaves the room on every tab; ownership passes, or the room goes."""
        effects: list[Effect] = [Exit(self.ctx.presence.sids_of(target.key),
                                      room_target(room.key))]
        if change.deleted:
            effects.append(Close(room_target(room.key)))
        elif change.new_owner:
            effects.append(Emit("roomEvent", {"room": room.name, "event": "owner",
                                              "name": change.new_owner, "by": by.user.name},
                                [room_target(room.key)]))
        return effects

    def _done(self, action: str, conn: Connection, target: User, room: Room | None,
              effects: list[Effect]) -> None:
        """Audit (who, what, whom, where), count, then announce."""
        logger.info("moderation: %s %s %s%s", conn.user.name, action, target.name,
                    f" in {room.name}" if room else "")
        self.on_moderated(action)
        self.ctx.publish(effects)
