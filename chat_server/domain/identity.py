"""Who a connection is: guests, registered names, tokens and passwords; who is online."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from . import names, security, validation
from .budgets import Budgets
from .context import Context
from .effects import Disconnect, Emit, room_event
from .errors import (
    BadPassword,
    BadToken,
    Banned,
    Forbidden,
    InvalidName,
    NameTaken,
    NotFound,
    ServerFull,
)
from .models import NewUser, User
from .ports import GroupCommit, LimiterPort, Memberships, OneByOne, Submitter
from .presence import Connection
from .validation import Auth, fold
from .watching import Watching, quiet_room

logger = logging.getLogger(__name__)

Later = Callable[..., object]  # later(seconds, fn, *args): run fn(*args) after a delay


def at_once(seconds: float, fn: Callable[..., object], *args: object) -> None:
    """A `Later` for tests and tools: the delay has passed already."""
    fn(*args)


class Identity:
    def __init__(self, ctx: Context, limiter: LimiterPort, memberships: Memberships,
                 budgets: Budgets | None = None, later: Later = at_once,
                 group_commit: GroupCommit = OneByOne) -> None:
        self.ctx = ctx
        self.limiter = limiter
        self.memberships = memberships
        self.budgets = budgets or Budgets(ctx.config)  # password checks (§1.10)
        self.later = later
        self._signed_out: set[int] = set()  # guests who signed out: no grace for them
        self.watching = Watching(ctx, self.conn)  # who hears of arrivals and departures
        # New names and guests of a connect storm share one transaction per batch.
        self._registrations: Submitter[NewUser, User | NameTaken] = group_commit(
            self._register_batch)

    def _register_batch(self, batch: list[NewUser]) -> list[User | NameTaken]:
        return self.ctx.store_call(self.ctx.store.create_users, batch)

    def _register(self, new: NewUser) -> User:
        result = self._registrations.submit(new)
        if isinstance(result, NameTaken):
            raise result
        return result

    def retire_leftover_guests(self) -> int:
        """One node, at start: no guest has a connection, so every guest on record is gone
        (with several nodes, guests elsewhere are alive: see `reap`)."""
        retired = self.ctx.store_call(self.ctx.store.retire_all_guests)
        if retired:
            logger.info("retired %d guests left over from the last run", retired)
        return retired

    # -- connecting --------------------------------------------------------------------

    def connect(self, sid: str, auth: object, transport: str = "",
                address: str = "") -> Connection:
        """Identify a new connection; raises a ChatError that refuses it."""
        parsed = validation.parse_auth(auth)
        presence = self.ctx.presence
        if len(presence) >= self.ctx.config.max_connections:
            raise ServerFull()
        user, token, new = self._identify(parsed, address)
        if not new and self.ctx.store_call(self.ctx.store.user_banned, user.id):
            raise Banned()  # docs/protocol.md §1.6, §10.4 (a guest's resume token too)
        # `new`: registered just now, so in no room and no DM yet (`live.GoingLive`).
        conn = Connection(sid, user, token, time.monotonic(), transport, address,
                          {"last_id": parsed.last_id, "new": new})
        presence.add(conn)
        return conn

    def _identify(self, auth: Auth, address: str = "") -> tuple[User, str, bool]:
        """The user, its token, and whether it was registered by this connect."""
        store, call = self.ctx.store, self.ctx.store_call
        if auth.token is not None:
            now = self.ctx.now_ms()
            used_since = now - int(self.ctx.config.token_ttl * 86_400_000)
            user = call(store.user_by_token, security.hash_token(auth.token), used_since, now)
            if user is None or (auth.name is not None and fold(auth.name) != user.key):
                raise BadToken()
            return user, auth.token, False
        if auth.name is None:
            return self._new_guest()
        validation.check_user_name(auth.name)
        key = fold(auth.name)
        user = call(store.user_by_key, key)
        token = security.new_token()
        if user is None:
            validation.check_new_user_name(auth.name)  # names registered earlier still sign in
            password_hash = None
            if auth.password is not None:
                password_hash = self.ctx.offload(security.hash_password, auth.password)
            user = self._register(NewUser(
                auth.name, key, False, security.hash_token(token), password_hash,
                names.skeleton(auth.name), self.ctx.now_ms()))
            logger.info("registered name %s", user.name)
            return user, token, True
        if auth.password is None or user.password_hash is None:
            raise NameTaken()
        self.budgets.charge_password_check(address, ("name", key))
        if not self.ctx.offload(security.verify_password, user.password_hash, auth.password):
            raise BadPassword()
        call(store.add_session, user.id, security.hash_token(token), self.ctx.now_ms())
        return user, token, False

    def _new_guest(self) -> tuple[User, str, bool]:
        token = security.new_token()
        for _ in range(5):
            name = validation.GUEST_PREFIX + security.guest_suffix()
            try:
                user = self._register(NewUser(name, name, True, security.hash_token(token),
                                              None, None, self.ctx.now_ms()))
                return user, token, True
            except NameTaken:
                continue
        raise InvalidName("Could not pick a guest name; try again.")

    # -- leaving -----------------------------------------------------------------------

    def sign_out(self, sid: str, payload: object) -> None:
        """`signOut`: revoke this connection's token (or every token of the user, and
        always for a guest, who is gone at once); the connections using a revoked token
        are told `signedOut` and closed (docs/protocol.md §1.5)."""
        conn = self.conn(sid)
        everywhere = validation.parse_sign_out(payload) or conn.user.guest
        store, call, presence = self.ctx.store, self.ctx.store_call, self.ctx.presence
        if conn.user.guest:
            self._signed_out.add(conn.user.id)  # gone once its connections close
        if everywhere:
            call(store.revoke_sessions, conn.user.id)
            sids = presence.sids_of(conn.user.key)
        else:
            call(store.revoke_session, security.hash_token(conn.token))
            sids = presence.sids_with_token(conn.user.key, conn.token)
        logger.info("%s signed out%s (%d connections)", conn.user.name,
                    " everywhere" if everywhere else "", len(sids))
        self.ctx.publish([Emit("signedOut", {}, sids), Disconnect(sids)])

    def disconnect(self, sid: str) -> None:
        conn, last = self.ctx.presence.remove(sid)
        if conn is None:
            return
        self.limiter.forget(("sid", sid))
        if last:
            self.limiter.forget(("user", conn.user.key))
            self._user_left(sid, conn.user)

    def _user_left(self, sid: str, user: User) -> None:
        """The user's last connection closed. A guest stays for `GUEST_GRACE` seconds
        (docs/protocol.md §1.2), so a reload or a short loss of network keeps it; then,
        unless it came back meanwhile, it is gone (or at once, after `signOut`)."""
        self.ctx.publish([self.watching.departure(sid, user)])
        self.memberships.forget(user_id=user.id)  # fetched again if the user comes back
        if not user.guest:
            return
        grace = self.ctx.config.guest_grace
        if user.id in self._signed_out or grace <= 0:
            self._retire(user)
        else:
            self.later(grace, self._retire_unless_back, user)

    def _retire_unless_back(self, user: User) -> None:
        try:
            if self.ctx.presence.online_user(user.key) is None:
                self._retire(user)
        except Exception:  # runs on its own: a failure must be logged, not lost
            logger.exception("could not retire guest %s", user.name)

    def _retire(self, user: User) -> None:
        self._signed_out.discard(user.id)
        changes = self.ctx.store_call(self.ctx.store.retire_guest, user.id)
        self.memberships.forget(user_id=user.id)
        logger.info("guest %s is gone", user.name)
        limit = self.ctx.config.presence_limit
        self.ctx.publish([room_event(change.room, "left", user.name) for change in changes
                          if not change.deleted and not quiet_room(change.room, limit)])

    def reap(self) -> None:
        """Several nodes: forget the connections of nodes that stopped beating."""
        for sid, user, last in self.ctx.presence.reap():
            logger.info("reaped sid=%s user=%s of a dead node", sid, user.name)
            if last:
                self._user_left(sid, user)

    # -- looking people up -------------------------------------------------------------

    def conn(self, sid: str) -> Connection:
        conn = self.ctx.presence.get(sid)
        if conn is None:  # the transport only calls us for live sids
            raise Forbidden("This connection is not signed in.")
        return conn

    def peer(self, dest: str) -> User:
        """The user a direct message goes to: an online sid, or a user name."""
        other = self.ctx.presence.user_of_sid(dest)
        if other is not None:
            return other
        return self.peer_by_name(dest)

    def peer_by_name(self, name: str) -> User:
        if not validation.valid_user_name(name):
            raise NotFound("No such user.")
        key = fold(name)
        user = self.ctx.presence.online_user(key) or self.ctx.store_call(
            self.ctx.store.user_by_key, key)
        if user is None:
            raise NotFound("No such user.")
        return user

    def list_users(self, sid: str, payload: object = None) -> dict[str, Any]:
        """Online users by case-folded name, one page (docs/protocol.md §7): those whose
        name starts with `prefix`, after `after`, at most `limit`; `next` when more remain.
        The presence keeps the keys sorted, so a page costs its own length."""
        self.conn(sid)
        page = validation.parse_list_users(payload)
        users = self.ctx.presence.users_page(page.prefix, page.after, page.limit + 1)
        answer: dict[str, Any] = {"users": users[:page.limit]}
        if len(users) > page.limit:
            answer["next"] = users[page.limit - 1]["name"]
        return answer
