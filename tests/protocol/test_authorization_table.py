"""The whole authorization table (chat_server/domain/authorization.py, docs/protocol.md
§10) walked over a real server: for every action, every actor role (admin, owner,
moderator, member, outsider) and every target role, the roles are set up for real (a
room its owner created, moderators named with `setRole`, server admins from `ADMINS`
registered with a password), the action is performed over Socket.IO, and the answer must
be what `authorization.allowed` says: `ok` and the change made, or `forbidden` and
nothing changed (the room's members, moderators, history, and no moderation roomEvent).

One server per action; the users are connected once, and a room is reused until an
action is allowed (which changes it), then a fresh one is built. The walk runs over
websocket only: tests/protocol/test_moderation.py covers both transports rule by rule.

Roles as the server counts them: the admin actor is not a member of the room (its power
is the admin's alone); the admin target is a member (it can have a message there).
`owner` acting on `owner` is the owner acting on itself. `closeRoom` has one target, the
room, counted as its owner's. `banUser` involves no room: the table's rows for it are
walked with the same cast.
"""

import pytest
from support.actions import join, send_to
from support.checks import err, ok, room_entry
from support.client import ChatClient
from support.names import uid, uroom

from chat_server.domain import authorization as authz
from chat_server.domain.authorization import ADMIN, MEMBER, MODERATOR, OUTSIDER, OWNER, ROLES

ACTIONS = ("setRole", "kick", "ban", "mute", "deleteMessage", "closeRoom", "banUser")
MODERATION_EVENTS = {"role", "kicked", "banned", "unbanned", "muted", "owner", "closed"}
PASSWORD = "correct horse battery"  # a test password
WAIT = 10  # seconds for an event that must come (generous: CI machines are loaded)


class Cast:
    """Two users of each role: `actor[role]` acts, `target[role]` is acted upon. The
    owner is one user in both."""

    def __init__(self, server, admins):
        self.server = server
        self.clients = []
        self.tokens = {}
        tag = uid(4)
        self.actor = {ADMIN: self._connect(admins[0], PASSWORD)}
        self.target = {ADMIN: self._connect(admins[1], PASSWORD)}
        self.actor[OWNER] = self.target[OWNER] = self._connect(f"own-{tag}")
        for role, short in ((MODERATOR, "mod"), (MEMBER, "mem"), (OUTSIDER, "out")):
            self.actor[role] = self._connect(f"{short}1-{tag}")
            self.target[role] = self._connect(f"{short}2-{tag}")

    def _connect(self, name, password=None, token=None):
        client = ChatClient()
        auth = {"token": token} if token else {"name": name}
        if password and not token:
            auth["password"] = password
        client.connect(self.server.url, auth=auth, transport="websocket")
        self.clients.append(client)
        self.tokens[client.name] = client.token
        return client

    def reconnect(self, old):
        """A new connection of `old`'s user (by its token), put in `old`'s places."""
        new = self._connect(old.name, token=self.tokens[old.name])
        for table in (self.actor, self.target):
            for role, client in table.items():
                if client is old:
                    table[role] = new
        return new

    @property
    def owner(self):
        return self.actor[OWNER]

    def build_room(self):
        """A room: its owner, two moderators, two members, the admin target a member;
        the outsiders and the admin actor stay out."""
        room = uroom("walk")
        join(self.owner, room)
        for role in (MODERATOR, MEMBER):
            join(self.actor[role], room)
            join(self.target[role], room)
        join(self.target[ADMIN], room)
        for client in (self.actor[MODERATOR], self.target[MODERATOR]):
            ok(self.owner.call("setRole", {"room": room, "name": client.name,
                                           "role": "moderator"}))
            # Its roomEvent arrives now, not while a later case looks for stray events.
            for observer in (self.owner, client):
                observer.wait_for("roomEvent", lambda e, n=client.name: e.get("room") == room
                                  and e.get("event") == "role" and e.get("name") == n,
                                  timeout=WAIT)
        return room

    def close(self):
        for client in self.clients:
            client.disconnect()


def state(cast, room):
    """What a refused action must leave as it was: the room as a member sees it (the
    acting member, whom no action targets)."""
    ack = ok(cast.actor[MEMBER].call("joinRoom", {"room": room}))
    return {"moderators": sorted(ack["room"]["moderators"]), "owner": ack["room"]["owner"],
            "members": sorted(ack["members"]),
            "history": [(m["id"], m["deleted"], m["text"]) for m in ack["history"]]}


def moderation_events(client, room, since):
    return [e for e in client.events("roomEvent", since=since)
            if isinstance(e, dict) and e.get("event") in MODERATION_EVENTS
            and e.get("room") == room]


def message_of(cast, target_role, room):
    """A message of the target in the room; an outsider wrote it, then left."""
    author = cast.target[target_role]
    if target_role == OUTSIDER:
        join(author, room)
    message = send_to(author, room, f"by {author.name}")
    if target_role == OUTSIDER:
        ok(author.call("leaveRoom", {"room": room}))
    return message


def payload_of(action, room, target, message):
    if action == "setRole":
        return {"room": room, "name": target.name, "role": "moderator"}
    if action in ("kick",):
        return {"room": room, "name": target.name}
    if action == "ban":
        return {"room": room, "name": target.name, "on": True}
    if action == "mute":
        return {"room": room, "name": target.name, "seconds": 600}
    if action == "deleteMessage":
        return {"messageId": message["id"]}
    if action == "closeRoom":
        return {"room": room}
    return {"name": target.name, "on": True}  # banUser


def check_done(cast, action, actor_role, target_role, room, message):
    """The allowed action had its effect; what it changed is repaired or left behind."""
    target = cast.target[target_role]
    if action == "setRole":
        assert target.name in state(cast, room)["moderators"]
    elif action == "kick":
        assert target.name not in state(cast, room)["members"]
        target.wait_for("roomEvent", lambda e: e.get("event") == "kicked"
                        and e.get("room") == room, timeout=WAIT)
    elif action == "ban":
        assert target.name not in state(cast, room)["members"]
        err(target.call("joinRoom", {"room": room}), "forbidden")
    elif action == "mute":
        err(target.call("typing", {"to": room, "typing": True}), "forbidden")
    elif action == "deleteMessage":
        found = [m for m in state(cast, room)["history"] if m[0] == message["id"]]
        assert found and found[0][1] is True, found
    elif action == "closeRoom":
        assert room_entry(ok(cast.owner.call("listRooms"))["rooms"], room) is None
    elif action == "banUser":
        target.wait_for("banned", lambda e: e == {"by": cast.actor[actor_role].name},
                        timeout=WAIT)
        target.wait_disconnected(timeout=WAIT)
        with pytest.raises(Exception, match="banned"):
            ChatClient().connect(cast.server.url, auth={"token": cast.tokens[target.name]},
                                 transport="websocket")
        ok(cast.actor[ADMIN].call("banUser", {"name": target.name, "on": False}))
        cast.reconnect(target)


def check_unchanged(cast, action, target_role, room, before, since):
    """The refused action changed nothing."""
    target = cast.target[target_role]
    assert state(cast, room) == before
    assert not moderation_events(cast.owner, room, since)
    if action == "ban" and target_role == OUTSIDER:  # not banned: may join (and leave)
        join(target, room)
        ok(target.call("leaveRoom", {"room": room}))
    if action == "mute" and target_role != OUTSIDER:  # not muted: may type
        ok(target.call("typing", {"to": room, "typing": False}))
    if action == "banUser":
        assert target.connected and not target.events("banned")
        ok(target.call("listUsers"))


def refusal_codes(action, actor_role, target_role):
    """`forbidden`, but for what the server says first (docs/protocol.md §10.6, §8.2):
    a target not in the room (kick, mute, setRole) is `not_found` before any permission
    check, and who cannot read the room cannot see its messages either."""
    if action in ("setRole", "kick", "mute") and target_role == OUTSIDER:
        return ("not_found",)
    if action == "deleteMessage" and actor_role == OUTSIDER:
        return ("not_found",)
    return ("forbidden",)


def targets_of(action):
    return (OWNER,) if action == "closeRoom" else ROLES


@pytest.mark.parametrize("action", ACTIONS)
def test_every_actor_on_every_target(action, server_factory):
    admins = [f"adm1-{uid(4)}", f"adm2-{uid(4)}"]
    srv = server_factory(env={"ADMINS": ",".join(admins), "RATE_LIMIT": "off",
                              "EVENT_RATE": "off", "ROOM_RATE": "off",
                              "EVENT_WINDOW": "1000"})
    cast = Cast(srv, admins)
    try:
        walk(cast, action)
    finally:
        cast.close()


def walk(cast, action):
    walked = 0
    room = cast.build_room()
    for actor_role in ROLES:
        for target_role in targets_of(action):
            actor, target = cast.actor[actor_role], cast.target[target_role]
            message = message_of(cast, target_role, room) if action == "deleteMessage" \
                else None
            expected = authz.allowed(action, actor_role, target_role)
            before = state(cast, room)
            since_owner, since_target = cast.owner.mark(), target.mark()
            ack = actor.call(action, payload_of(action, room, target, message))
            case = f"{action}: {actor_role} {actor.name} on {target_role} {target.name}: " \
                   f"{ack!r}"
            if expected:
                assert ack.get("ok") is True, case
                check_done(cast, action, actor_role, target_role, room, message)
                if action != "banUser":  # the room changed: the next case gets a new one
                    room = cast.build_room()
            else:
                codes = refusal_codes(action, actor_role, target_role)
                assert ack.get("ok") is False and ack["error"]["code"] in codes, case
                check_unchanged(cast, action, target_role, room, before, since_owner)
                assert not moderation_events(target, room, since_target), case
            walked += 1
    assert walked == len(ROLES) * len(targets_of(action))
