"""The chat domain: identities, rooms, permissions and messages. No sockets here.

Every action validates its payload, checks who may do it, changes the store, and says
what should be sent to whom as a list of effects (see `effects.py`). Choosing recipients
happens only here, in one place, because it is a security decision. The transport layer
applies the effects to Socket.IO; tests can read them directly.
"""

import logging
import time

from . import security, validation
from .effects import Close, Emit, Enter, Exit, lobby, room_target, targets_of, user_target
from .errors import (BadPassword, BadToken, ChatError, Forbidden, InvalidName, NameTaken,
                     NotFound, RateLimited, ServerFull)
from .models import NewMessage
from .presence import Connection, Presence
from .ratelimit import RateLimiter
from .validation import fold

logger = logging.getLogger(__name__)


def _direct(fn, *args, **kwargs):
    return fn(*args, **kwargs)


class Chat:
    """One node's chat service.

    `store_call(fn, *args)` runs a store method (off the event loop in the server);
    `offload(fn, *args)` runs CPU-heavy work such as password hashing; `publish(effects)`
    hands effects to the transport. Tests pass plain callables for all three.
    """

    def __init__(self, store, config, publish, store_call=_direct, offload=_direct,
                 clock=time.time, monotonic=time.monotonic, presence=None, later=None,
                 limiter=None, pause=lambda: None):
        self.store = store
        self.config = config
        self.publish = publish
        self.store_call = store_call
        self.offload = offload
        self.clock = clock
        # Several nodes share presence (and deliver through Redis) when `presence` is given.
        self.scaled = presence is not None
        self.presence = presence if presence is not None else Presence()
        self.later = later  # later(seconds, fn, *args): run fn after a delay (scaled mode)
        self.pause = pause  # pause(): let other work run (the event loop) before going on
        # One node: the rooms each user was found to be a member of, so sends to a room
        # and its history need no store round trip. Every membership change goes through
        # this process and forgets what it changes (before and after the store call, so a
        # lookup racing it cannot leave a stale entry). With several nodes other processes
        # change memberships, so scaled mode always asks the store.
        self._member_of = {}  # self._member_of[user_id][room_key] = Room
        self.limiter = limiter or RateLimiter(config.rate_limit, monotonic)
        # Highest message id this node has handed to the transport; see `go_live`.
        self.delivered_mark = 0
        self.submit = self._submit_now
        self.on_accepted = lambda message: None  # a hook for metrics

    def _now_ms(self):
        return int(self.clock() * 1000)

    def start(self):
        """Prepare the store; guests of an earlier run have no connection, so they are gone."""
        self.store_call(self.store.create_schema)
        if not self.scaled:  # with several nodes, guests elsewhere are alive: see reap()
            retired = self.store_call(self.store.retire_all_guests)
            if retired:
                logger.info("retired %d guests left over from the last run", retired)
        self.delivered_mark = self.store_call(self.store.newest_id) or 0

    # -- connecting --------------------------------------------------------------------

    def connect(self, sid, auth, transport="", address=""):
        """Identify a new connection; raises a ChatError that refuses it."""
        parsed = validation.parse_auth(auth)
        if len(self.presence) >= self.config.max_connections:
            raise ServerFull()
        user, token = self._identify(parsed)
        if user.guest and parsed.token is not None and \
                self.presence.online_user(user.key) is None:
            raise BadToken()  # a guest's token lives only while one of its tabs does
        conn = Connection(sid, user, token, time.monotonic(), transport, address,
                          {"last_id": parsed.last_id})
        self.presence.add(conn)
        return conn

    def _identify(self, auth):
        if auth.token is not None:
            user = self.store_call(self.store.user_by_token, security.hash_token(auth.token))
            if user is None or (auth.name is not None and fold(auth.name) != user.key):
                raise BadToken()
            return user, auth.token
        if auth.name is None:
            return self._new_guest()
        validation.check_new_user_name(auth.name)
        key = fold(auth.name)
        user = self.store_call(self.store.user_by_key, key)
        token = security.new_token()
        if user is None:
            password_hash = None
            if auth.password is not None:
                password_hash = self.offload(security.hash_password, auth.password)
            user = self.store_call(self.store.create_user, auth.name, key, False,
                                   security.hash_token(token), password_hash)
            logger.info("registered name %s", user.name)
            return user, token
        if auth.password is None or user.password_hash is None:
            raise NameTaken()
        if not self.offload(security.verify_password, user.password_hash, auth.password):
            raise BadPassword()
        self.store_call(self.store.add_session, user.id, security.hash_token(token))
        return user, token

    def _new_guest(self):
        token = security.new_token()
        for _ in range(5):
            name = validation.GUEST_PREFIX + security.guest_suffix()
            try:
                user = self.store_call(self.store.create_user, name, name, True,
                                       security.hash_token(token))
                return user, token
            except NameTaken:
                continue
        raise InvalidName("Could not pick a guest name; try again.")

    def go_live(self, sid):
        """Send `welcome` (and replay) and start delivering live events to `sid`.

        Messages are committed in a batch and then delivered, so a snapshot read from the
        store may hold messages not yet delivered. Replay keeps only what was delivered
        when the snapshot was read; the rest reaches the client live, because nothing
        yields between the check and entering the rooms: on one node, no gap and no
        duplicate. With several nodes a client may get a message twice (see `_catch_up`).
        """
        conn = self.presence.get(sid)
        if conn is None:
            return
        last_id = conn.extra.get("last_id")
        limit = self.config.replay_limit
        users = self.presence.users()
        for _ in range(10):
            mark = self.delivered_mark
            snap = self.store_call(self.store.snapshot, conn.user.id, last_id, limit)
            if mark == self.delivered_mark:
                break
        if self.presence.get(sid) is None:  # gone while we read
            return
        replay = snap.replay[:limit]
        if not self.scaled:
            replay = [m for m in replay if m.id <= mark]
        welcome = {
            "sid": sid, "name": conn.user.name, "token": conn.token,
            "rooms": [room.to_wire() for room in snap.rooms],
            "users": users,
            "conversations": [{"conversation": name, "lastId": newest}
                              for name, newest in snap.conversations],
        }
        if last_id is not None:
            welcome["replayTruncated"] = len(snap.replay) > limit
        effects = [Enter([sid], lobby()), Enter([sid], user_target(conn.user.key))]
        effects += [Enter([sid], room_target(room.key)) for room in snap.rooms]
        effects.append(Emit("welcome", welcome, [sid]))
        effects += [Emit("reply", m.to_wire(), [sid]) for m in replay]
        effects.append(Emit("addChat", {"sid": sid, "name": conn.user.name}, [lobby()],
                            skip=[sid]))
        self.publish(effects)
        if self.scaled and last_id is not None and self.later is not None:
            newest = max([last_id, *(m.id for m in replay)])
            self.later(self.CATCH_UP_AFTER, self._catch_up, sid, newest)

    # With several nodes, a message committed elsewhere while this client was going live
    # may have been published before its rooms were joined. A second look a moment later
    # sends what it could have missed; clients drop the ids they already have.
    CATCH_UP_AFTER = 1.0

    def _catch_up(self, sid, after):
        conn = self.presence.get(sid)
        if conn is None:
            return
        snap = self.store_call(self.store.snapshot, conn.user.id, after,
                               self.config.replay_limit)
        if self.presence.get(sid) is not None and snap.replay:
            self.publish([Emit("reply", m.to_wire(), [sid])
                          for m in snap.replay[:self.config.replay_limit]])

    def disconnect(self, sid):
        conn, last = self.presence.remove(sid)
        if conn is None:
            return
        user = conn.user
        self.limiter.forget(("sid", sid))
        if not last:
            return
        self.limiter.forget(("user", user.key))
        self._user_left(sid, user)

    def _user_left(self, sid, user):
        effects = [Emit("userLeft", {"sid": sid, "name": user.name}, [lobby()])]
        self._member_of.pop(user.id, None)  # fetched again if the user comes back
        if user.guest:
            changes = self.store_call(self.store.retire_guest, user.id)
            self._member_of.pop(user.id, None)
            for change in changes:
                if not change.deleted:
                    effects.append(self._room_event(change.room, "left", user.name))
        self.publish(effects)

    def reap(self):
        """Scaled mode: forget the connections of nodes that stopped beating."""
        for sid, user, last in self.presence.reap():
            logger.info("reaped sid=%s user=%s of a dead node", sid, user.name)
            if last:
                self._user_left(sid, user)

    # -- sending -----------------------------------------------------------------------

    def _conn(self, sid):
        conn = self.presence.get(sid)
        if conn is None:  # the transport only calls us for live sids
            raise Forbidden("This connection is not signed in.")
        return conn

    def send_lobby(self, sid, payload):
        """`message`: to everyone. Returns the stored MESSAGE (the original, for a retry)."""
        conn = self._conn(sid)
        send = self._parse_send(conn, validation.parse_message, payload)
        return self._send(conn, send, lambda: ("lobby", "lobby", "broadcast", None, None))

    def send_message(self, sid, payload):
        """`sendMessage`: to a room the sender is in, or directly to a user."""
        conn = self._conn(sid)
        send = self._parse_send(conn, validation.parse_send_message, payload)

        def destination():
            if send.dest.startswith("#"):
                room = self._member_room(conn.user, send.dest)
                return room.key, room.name, "room", room.name, None
            peer = self._peer(send.dest)
            conv = validation.dm_key(conn.user.name, peer.name)
            return conv, conv, "direct", peer.name, peer.id

        return self._send(conn, send, destination)

    def _parse_send(self, conn, parse, payload):
        """Every attempt counts, a malformed one too (it has no clientId one could trust)."""
        try:
            return parse(payload, self.config.max_text_length)
        except ChatError:
            self._charge(conn)  # over the limit, it is `rate_limited` like any other
            raise

    def _send(self, conn, send, destination):
        """Charge the rate limit, find the destination, store and deliver.

        A retry of a clientId this user already had accepted gets its original MESSAGE,
        not counted: on the way in, the store finds it and the token is given back
        (`_commit`); and when the send fails first, over the limit or because its
        destination is gone (the DM peer's sid went offline, the sender left the room),
        one store lookup tells a retry from a new send. A fresh send pays for no lookup.
        """
        try:
            self._charge(conn)
            where = destination()
        except (RateLimited, NotFound, Forbidden) as error:
            if send.client_id is None:
                raise
            original = self.store_call(self.store.message_by_client_id, conn.user.id,
                                       send.client_id)
            if original is None:
                raise
            if not isinstance(error, RateLimited):
                self.limiter.refund(("sid", conn.sid), ("user", conn.user.key))
            return original
        return self._commit(conn, send, *where)

    def _charge(self, conn):
        """Take a token from the connection's and the user's buckets, or refuse the send."""
        if not self.limiter.acquire(("sid", conn.sid), ("user", conn.user.key)):
            raise RateLimited()

    def _peer(self, dest):
        """The user a direct message goes to: an online sid, or a user name."""
        other = self.presence.user_of_sid(dest)
        if other is not None:
            return other
        return self._peer_by_name(dest)

    def _commit(self, conn, send, conv_key, conversation, kind, to, to_user_id):
        item = NewMessage(
            conv_key=conv_key, conversation=conversation, kind=kind, from_user_id=conn.user.id,
            from_name=conn.user.name, from_sid=conn.sid, to=to, to_user_id=to_user_id,
            text=send.text, ts=self._now_ms(), client_id=send.client_id)
        message, duplicate = self.submit(item)
        if duplicate:
            self.limiter.refund(("sid", conn.sid), ("user", conn.user.key))
        return message

    def _submit_now(self, item):
        return self.commit_batch([item])[0]

    # Messages delivered per turn of the event loop: a batch of 500 broadcasts to 1,000
    # clients at once would hold the loop for half a second.
    DELIVER_AT_ONCE = 16

    def commit_batch(self, items):
        """Store a batch in one transaction, then deliver each new message in id order.

        Delivery pauses between groups of messages; `delivered_mark` says how far it got,
        so a client going live meanwhile replays up to there and gets the rest live.
        """
        results = self.store_call(self.store.insert_messages, items)
        fresh = [message for message, duplicate in results if not duplicate]
        for start in range(0, len(fresh), self.DELIVER_AT_ONCE):
            if start:
                self.pause()
            group = fresh[start:start + self.DELIVER_AT_ONCE]
            self.publish([Emit("reply", m.to_wire(), targets_of(m.conv_key)) for m in group])
            self.delivered_mark = max(self.delivered_mark, group[-1].id)
            for message in group:
                self.on_accepted(message)
        return results

    # -- rooms -------------------------------------------------------------------------

    def _room(self, name):
        room = self.store_call(self.store.room_by_key, fold(validation.check_room_name(name)))
        if room is None:
            raise NotFound("No such room.")
        return room

    def _member_room(self, user, name):
        key = fold(validation.check_room_name(name))
        room = self._member_of.get(user.id, {}).get(key)
        if room is not None:
            return room
        room, member = self.store_call(self.store.room_for, key, user.id)
        if room is None:
            raise NotFound("No such room.")
        if not member:
            raise Forbidden("You are not a member of that room.")
        if not self.scaled:
            self._member_of.setdefault(user.id, {})[key] = room
        return room

    def _forget_room(self, room_key):
        for rooms in self._member_of.values():
            rooms.pop(room_key, None)

    def _room_event(self, room, what, name):
        return Emit("roomEvent", {"room": room.name, "event": what, "name": name},
                    [room_target(room.key)])

    def join_room(self, sid, payload):
        conn = self._conn(sid)
        request = validation.parse_join_room(payload)
        user, key = conn.user, fold(request.room)
        room = self.store_call(self.store.room_by_key, key)
        joined = True
        if room is None:
            password_hash = None
            if request.password is not None:
                password_hash = self.offload(security.hash_password, request.password)
            room = self.store_call(self.store.create_room, request.room, key, user.id,
                                   password_hash)
            if room is None:  # someone created it meanwhile: join it instead
                room = self.store_call(self.store.room_by_key, key)
                if room is None:
                    raise NotFound("The room was closed meanwhile.")
            else:
                logger.info("room %s created by %s", room.name, user.name)
                return self._after_join(conn, room, created=True)
        if self.store_call(self.store.is_member, room.id, user.id):
            joined = False
        else:
            if room.private and not (request.password is not None and self.offload(
                    security.verify_password, room.password_hash, request.password)):
                raise BadPassword("Wrong or missing password for this private room.")
            joined = self.store_call(self.store.add_member, room.id, user.id)
        return self._after_join(conn, room, created=joined)

    def _after_join(self, conn, room, created):
        room = self.store_call(self.store.room_by_key, room.key) or room
        names = self.store_call(self.store.member_names, room.id)
        history = self.store_call(self.store.history, room.key, None, None, 50)
        if created:
            self.publish([Enter(self.presence.sids_of(conn.user.key), room_target(room.key)),
                          self._room_event(room, "joined", conn.user.name)])
        return {"room": room.to_wire(), "members": names,
                "history": [m.to_wire() for m in history]}

    def leave_room(self, sid, payload):
        conn = self._conn(sid)
        room = self._member_room(conn.user, validation.parse_room(payload))
        self._member_of.get(conn.user.id, {}).pop(room.key, None)
        change = self.store_call(self.store.remove_member, room.id, conn.user.id)
        self._member_of.get(conn.user.id, {}).pop(room.key, None)
        if change.deleted:
            self._forget_room(room.key)
        target = room_target(room.key)
        effects = [self._room_event(room, "left", conn.user.name),
                   Exit(self.presence.sids_of(conn.user.key), target)]
        if change.deleted:
            effects.append(Close(target))
        self.publish(effects)

    def close_room(self, sid, payload):
        conn = self._conn(sid)
        room = self._room(validation.parse_room(payload))
        if room.owner is None or fold(room.owner) != conn.user.key:
            raise Forbidden("Only the room's owner may close it.")
        self._forget_room(room.key)
        self.store_call(self.store.delete_room, room.id)
        self._forget_room(room.key)
        logger.info("room %s closed by %s", room.name, conn.user.name)
        self.publish([self._room_event(room, "closed", conn.user.name),
                      Close(room_target(room.key))])

    def list_rooms(self, sid):
        conn = self._conn(sid)
        return [room.to_wire() for room in self.store_call(self.store.visible_rooms,
                                                           conn.user.id)]

    def list_users(self, sid):
        self._conn(sid)
        return self.presence.users()

    # -- reading -----------------------------------------------------------------------

    def history(self, sid, payload):
        conn = self._conn(sid)
        query = validation.parse_history(payload)
        conv_key = self._readable(conn.user, query.conversation)
        found = self.store_call(self.store.history, conv_key, query.before, query.after,
                                query.limit)
        return [m.to_wire() for m in found]

    def _readable(self, user, conversation):
        """The key of a conversation the user may read, or the reason it may not."""
        if conversation == "lobby":
            return "lobby"
        if conversation.startswith("#"):
            return self._member_room(user, conversation).key
        if conversation.startswith("dm:"):
            if not validation.is_dm_key_of(conversation, user.name):
                raise Forbidden("You may read only your own direct conversations.")
            return conversation
        if not validation.valid_user_name(conversation):
            raise NotFound("No such conversation.")
        key = fold(conversation)
        peer = self.store_call(self.store.user_by_key, key, True)
        if peer is None:
            raise NotFound("No such user.")
        return validation.dm_key(user.name, peer.name)

    def typing(self, sid, payload):
        conn = self._conn(sid)
        request = validation.parse_typing(payload)
        skip = self.presence.sids_of(conn.user.key)
        if request.to.startswith("#"):
            room = self._member_room(conn.user, request.to)
            self.publish([Emit("typing", {"from": conn.user.name, "to": room.name,
                                          "typing": request.typing},
                               [room_target(room.key)], skip=skip)])
            return
        peer = self._peer_by_name(request.to)
        self.publish([Emit("typing", {"from": conn.user.name, "to": peer.name,
                                      "typing": request.typing},
                           [user_target(peer.key)], skip=skip)])

    def _peer_by_name(self, name):
        if not validation.valid_user_name(name):
            raise NotFound("No such user.")
        key = fold(name)
        user = self.presence.online_user(key) or self.store_call(self.store.user_by_key, key)
        if user is None:
            raise NotFound("No such user.")
        return user
