"""PROTOCOL.md "A bad payload never closes the connection and never reaches other clients".

One table of bad payloads (wrong types, missing fields, out of range, oversize, forbidden
targets) and one of unknown events. For each row, over both transports: the sender gets the
error (as the ack, or as an `error` event when it sent no ack callback), its connection
still works, and an observer placed to see any leak (in the lobby, in the sender's rooms,
DM target by sid and by name) saw nothing.
"""

import pytest
import socketio
from support.actions import join
from support.checks import err, ok, user_entry
from support.client import NO_DATA, TRANSPORTS, ChatClient, disconnect_all
from support.names import uid, uname, uroom

LEAK_EVENTS = ("reply", "typing", "roomEvent", "error", "welcome")


class Arena:
    """A sender and an observer arranged so that any leaked effect reaches the observer."""

    def __init__(self, url, transport):
        self.url, self.transport = url, transport
        self.clients = []
        self.sender = self.observer = None

    def _client(self, auth):
        c = ChatClient()
        self.clients.append(c)
        c.connect(self.url, auth=auth, transport=self.transport)
        return c

    def ready(self):
        if self.sender and self.sender.connected and self.observer.connected:
            return self
        self.close()
        self.observer = self._client({"name": uname("observer")})
        self.sender = self._client({"name": uname("sender")})
        self.obs_room = uroom("obs")          # the sender is not a member
        self.shared_room = uroom("shared")    # both members, the observer owns it
        self.private_room = uroom("priv")     # private, the sender is not a member
        join(self.observer, self.obs_room)
        join(self.observer, self.shared_room)
        join(self.sender, self.shared_room)
        join(self.observer, self.private_room, password="pw-" + uid())
        return self

    def close(self):
        disconnect_all(self.clients)
        self.clients = []

    def check_unharmed(self, obs_mark, snd_mark):
        """The sender's connection still works and the observer saw nothing but the sentinel."""
        assert self.sender.connected, "the bad payload closed the sender's connection"
        text = "sentinel " + uid()
        sentinel = ok(self.sender.call("message", text))["message"]
        self.observer.wait_for("reply", lambda m: m["id"] == sentinel["id"], since=obs_mark)
        leaked = [(n, p) for n, p in self.observer.all_events(obs_mark)
                  if n in LEAK_EVENTS and not (n == "reply" and p.get("id") == sentinel["id"])]
        leaked += [(n, p) for n, p in self.observer.all_events(obs_mark)
                   if n in ("addChat", "userLeft") and isinstance(p, dict)
                   and p.get("name") == self.sender.name]
        assert not leaked, f"the observer saw: {leaked!r}"
        assert not self.sender.disconnects
        assert self.sender.sid == self.sender.socket_sid


@pytest.fixture(scope="module", params=TRANSPORTS)
def arena(request, server):
    """A sender/observer pair on the shared server, kept for the module, per transport."""
    a = Arena(server.url, request.param)
    yield a
    a.close()


def deep(n):
    value = "x"
    for _ in range(n):
        value = [value]
    return value


# (id, event, payload or function of the arena, accepted error codes)
BAD = [
    # message
    ("message-no-arg", "message", NO_DATA, {"invalid_payload"}),
    ("message-null", "message", None, {"invalid_payload"}),
    ("message-number", "message", 42, {"invalid_payload"}),
    ("message-bool", "message", True, {"invalid_payload"}),
    ("message-list", "message", ["hi"], {"invalid_payload"}),
    ("message-binary", "message", b"hi", {"invalid_payload"}),
    ("message-empty-object", "message", {}, {"invalid_payload"}),
    ("message-wrong-key", "message", {"txt": "hi"}, {"invalid_payload"}),
    ("message-text-number", "message", {"text": 5}, {"invalid_payload"}),
    ("message-text-null", "message", {"text": None}, {"invalid_payload"}),
    ("message-text-list", "message", {"text": ["hi"]}, {"invalid_payload"}),
    ("message-text-object", "message", {"text": {"t": "hi"}}, {"invalid_payload"}),
    ("message-text-deep", "message", {"text": deep(60)}, {"invalid_payload"}),
    ("message-empty", "message", "", {"invalid_payload"}),
    ("message-blank", "message", " \n\t ", {"invalid_payload"}),
    ("message-blank-object", "message", {"text": "   "}, {"invalid_payload"}),
    ("message-2001", "message", "x" * 2001, {"too_large"}),
    ("message-2001-object", "message", {"text": "x" * 2001}, {"too_large"}),
    ("message-60k", "message", "y" * 60000, {"too_large"}),
    ("message-clientid-empty", "message", {"text": "hi", "clientId": ""}, {"invalid_payload"}),
    ("message-clientid-65", "message", {"text": "hi", "clientId": "c" * 65}, {"invalid_payload"}),
    ("message-clientid-number", "message", {"text": "hi", "clientId": 7}, {"invalid_payload"}),
    ("message-clientid-list", "message", {"text": "hi", "clientId": ["c"]},
     {"invalid_payload"}),
    # sendMessage
    ("send-no-arg", "sendMessage", NO_DATA, {"invalid_payload"}),
    ("send-null", "sendMessage", None, {"invalid_payload"}),
    ("send-string", "sendMessage", "hi", {"invalid_payload"}),
    ("send-list", "sendMessage", ["hi", "#x"], {"invalid_payload"}),
    ("send-empty-object", "sendMessage", {}, {"invalid_payload"}),
    ("send-no-dest", "sendMessage", {"content": "hi"}, {"invalid_payload"}),
    ("send-no-content", "sendMessage", lambda a: {"destId": a.observer.sid},
     {"invalid_payload"}),
    ("send-content-number", "sendMessage", lambda a: {"content": 1, "destId": a.observer.sid},
     {"invalid_payload"}),
    ("send-content-null", "sendMessage",
     lambda a: {"content": None, "destId": a.observer.sid}, {"invalid_payload"}),
    ("send-content-binary", "sendMessage",
     lambda a: {"content": b"hi", "destId": a.observer.sid}, {"invalid_payload"}),
    ("send-content-empty", "sendMessage", lambda a: {"content": "", "destId": a.observer.sid},
     {"invalid_payload"}),
    ("send-content-blank", "sendMessage",
     lambda a: {"content": "  ", "destId": a.shared_room}, {"invalid_payload"}),
    ("send-text-key", "sendMessage", lambda a: {"text": "hi", "destId": a.observer.sid},
     {"invalid_payload"}),
    ("send-dest-number", "sendMessage", {"content": "hi", "destId": 5}, {"invalid_payload"}),
    ("send-dest-null", "sendMessage", {"content": "hi", "destId": None}, {"invalid_payload"}),
    ("send-dest-list", "sendMessage", lambda a: {"content": "hi", "destId": [a.observer.sid]},
     {"invalid_payload"}),
    ("send-dest-empty", "sendMessage", {"content": "hi", "destId": ""},
     {"invalid_payload", "not_found"}),
    ("send-2001-dm", "sendMessage", lambda a: {"content": "x" * 2001, "destId": a.observer.sid},
     {"too_large"}),
    ("send-2001-room", "sendMessage",
     lambda a: {"content": "x" * 2001, "destId": a.shared_room}, {"too_large"}),
    ("send-2001-name", "sendMessage",
     lambda a: {"content": "x" * 2001, "destId": a.observer.name}, {"too_large"}),
    ("send-clientid-65", "sendMessage",
     lambda a: {"content": "hi", "destId": a.observer.sid, "clientId": "c" * 65},
     {"invalid_payload"}),
    ("send-unknown-user", "sendMessage", lambda a: {"content": "hi", "destId": uname("nobody")},
     {"not_found"}),
    ("send-unknown-room", "sendMessage", lambda a: {"content": "hi", "destId": uroom("none")},
     {"not_found"}),
    ("send-foreign-room", "sendMessage", lambda a: {"content": "hi", "destId": a.obs_room},
     {"forbidden"}),
    ("send-private-room", "sendMessage", lambda a: {"content": "hi", "destId": a.private_room},
     {"forbidden"}),
    ("send-malformed-room", "sendMessage", {"content": "hi", "destId": "#bad room"},
     {"invalid_payload", "not_found"}),
    # joinRoom
    ("join-no-arg", "joinRoom", NO_DATA, {"invalid_payload"}),
    ("join-null", "joinRoom", None, {"invalid_payload"}),
    ("join-string", "joinRoom", lambda a: a.obs_room, {"invalid_payload"}),
    ("join-empty-object", "joinRoom", {}, {"invalid_payload"}),
    ("join-room-number", "joinRoom", {"room": 5}, {"invalid_payload"}),
    ("join-room-empty", "joinRoom", {"room": ""}, {"invalid_payload"}),
    ("join-room-no-hash", "joinRoom", {"room": "nohash"}, {"invalid_payload"}),
    ("join-room-hash-only", "joinRoom", {"room": "#"}, {"invalid_payload"}),
    ("join-room-33", "joinRoom", {"room": "#" + "a" * 33}, {"invalid_payload"}),
    ("join-room-space", "joinRoom", {"room": "#a b"}, {"invalid_payload"}),
    ("join-password-number", "joinRoom", lambda a: {"room": uroom("pwn"), "password": 5},
     {"invalid_payload"}),
    ("join-private-no-password", "joinRoom", lambda a: {"room": a.private_room},
     {"bad_password"}),
    ("join-private-wrong-password", "joinRoom",
     lambda a: {"room": a.private_room, "password": "wrong"}, {"bad_password"}),
    # leaveRoom
    ("leave-no-arg", "leaveRoom", NO_DATA, {"invalid_payload"}),
    ("leave-null", "leaveRoom", None, {"invalid_payload"}),
    ("leave-empty-object", "leaveRoom", {}, {"invalid_payload"}),
    ("leave-room-number", "leaveRoom", {"room": 5}, {"invalid_payload"}),
    ("leave-room-no-hash", "leaveRoom", {"room": "nohash"}, {"invalid_payload"}),
    ("leave-unknown", "leaveRoom", lambda a: {"room": uroom("none")}, {"not_found"}),
    ("leave-foreign", "leaveRoom", lambda a: {"room": a.obs_room}, {"forbidden"}),
    # closeRoom
    ("close-no-arg", "closeRoom", NO_DATA, {"invalid_payload"}),
    ("close-empty-object", "closeRoom", {}, {"invalid_payload"}),
    ("close-room-number", "closeRoom", {"room": 5}, {"invalid_payload"}),
    ("close-unknown", "closeRoom", lambda a: {"room": uroom("none")}, {"not_found"}),
    ("close-foreign", "closeRoom", lambda a: {"room": a.obs_room}, {"forbidden"}),
    ("close-not-owner", "closeRoom", lambda a: {"room": a.shared_room}, {"forbidden"}),
    ("close-private", "closeRoom", lambda a: {"room": a.private_room}, {"forbidden"}),
    # history
    ("history-no-arg", "history", NO_DATA, {"invalid_payload"}),
    ("history-null", "history", None, {"invalid_payload"}),
    ("history-string", "history", "lobby", {"invalid_payload"}),
    ("history-empty-object", "history", {}, {"invalid_payload"}),
    ("history-conversation-number", "history", {"conversation": 5}, {"invalid_payload"}),
    ("history-conversation-empty", "history", {"conversation": ""},
     {"invalid_payload", "not_found"}),
    ("history-limit-0", "history", {"conversation": "lobby", "limit": 0}, {"invalid_payload"}),
    ("history-limit-101", "history", {"conversation": "lobby", "limit": 101},
     {"invalid_payload"}),
    ("history-limit-string", "history", {"conversation": "lobby", "limit": "5"},
     {"invalid_payload"}),
    ("history-limit-bool", "history", {"conversation": "lobby", "limit": True},
     {"invalid_payload"}),
    ("history-before-string", "history", {"conversation": "lobby", "before": "9"},
     {"invalid_payload"}),
    ("history-after-float", "history", {"conversation": "lobby", "after": 1.5},
     {"invalid_payload"}),
    ("history-unknown-room", "history", lambda a: {"conversation": uroom("none")},
     {"not_found"}),
    ("history-foreign-room", "history", lambda a: {"conversation": a.obs_room}, {"forbidden"}),
    ("history-private-room", "history", lambda a: {"conversation": a.private_room},
     {"forbidden"}),
    ("history-unknown-user", "history", lambda a: {"conversation": uname("nobody")},
     {"not_found"}),
    ("history-dm-key", "history",
     lambda a: {"conversation": f"dm:{a.observer.name.lower()}:zzz"},
     {"invalid_payload", "not_found", "forbidden"}),
    # typing
    ("typing-no-arg", "typing", NO_DATA, {"invalid_payload"}),
    ("typing-null", "typing", None, {"invalid_payload"}),
    ("typing-empty-object", "typing", {}, {"invalid_payload"}),
    ("typing-no-flag", "typing", lambda a: {"to": a.shared_room}, {"invalid_payload"}),
    ("typing-string-flag", "typing", lambda a: {"to": a.shared_room, "typing": "yes"},
     {"invalid_payload"}),
    ("typing-to-number", "typing", {"to": 5, "typing": True}, {"invalid_payload"}),
    ("typing-unknown-room", "typing", lambda a: {"to": uroom("none"), "typing": True},
     {"not_found"}),
    ("typing-foreign-room", "typing", lambda a: {"to": a.obs_room, "typing": True},
     {"forbidden"}),
    ("typing-unknown-user", "typing", lambda a: {"to": uname("nobody"), "typing": True},
     {"not_found"}),
]


def resolve(payload, arena):
    return payload(arena) if callable(payload) else payload


@pytest.mark.parametrize("event,payload,codes", [row[1:] for row in BAD],
                         ids=[row[0] for row in BAD])
def test_bad_payload_is_acked_with_error_and_harms_nothing(arena, event, payload, codes):
    """The ack reports the error; the connection keeps working; no one else sees anything."""
    a = arena.ready()
    obs_mark, snd_mark = a.observer.mark(), a.sender.mark()
    err(a.sender.call(event, resolve(payload, a)), *codes)
    a.check_unharmed(obs_mark, snd_mark)
    assert not a.sender.events("error", since=snd_mark), "ack given, no error event expected"


@pytest.mark.parametrize("event,payload,codes", [row[1:] for row in BAD],
                         ids=[row[0] for row in BAD])
def test_bad_payload_without_ack_gets_error_event(arena, event, payload, codes):
    """Without an ack callback the error comes as an `error` event naming the event."""
    a = arena.ready()
    obs_mark, snd_mark = a.observer.mark(), a.sender.mark()
    a.sender.emit(event, resolve(payload, a))
    e = a.sender.wait_for("error", since=snd_mark)
    assert isinstance(e, dict) and e.get("code") in codes, f"expected {codes}, got {e!r}"
    assert e.get("event") == event, f"error event must name {event!r}: {e!r}"
    assert isinstance(e.get("message"), str) and e["message"]
    a.check_unharmed(obs_mark, snd_mark)


UNKNOWN = [
    ("unknown-name", "fooBar", {"x": 1}),
    ("wrong-case", "sendmessage", {"content": "hi", "destId": "#x"}),
    ("server-event-reply", "reply", {"id": 1, "text": "forged"}),
    ("server-event-welcome", "welcome", {"name": "admin"}),
    ("server-event-addchat", "addChat", {"sid": "x", "name": "forged"}),
    ("server-event-userleft", "userLeft", {"sid": "x", "name": "forged"}),
    ("server-event-error", "error", {"code": "x"}),
    ("reserved-connect", "connect", {"name": "mallory"}),
    ("reserved-disconnect", "disconnect", "client namespace disconnect"),
    ("reserved-connect-error", "connect_error", {"message": "x"}),
    ("empty-name", "", "x"),
    ("long-name", "x" * 5000, "x"),
]


@pytest.mark.parametrize("event,payload", [row[1:] for row in UNKNOWN],
                         ids=[row[0] for row in UNKNOWN])
def test_unknown_event_harms_nothing(arena, event, payload):
    """An unknown event never succeeds, never closes the connection and reaches no one."""
    a = arena.ready()
    obs_mark, snd_mark = a.observer.mark(), a.sender.mark()
    try:
        ack = a.sender.call(event, payload, timeout=0.5)
    except socketio.exceptions.TimeoutError:
        ack = None
    if ack is not None:
        assert isinstance(ack, dict) and ack.get("ok") is False, \
            f"unknown event {event!r} acked as success: {ack!r}"
    a.check_unharmed(obs_mark, snd_mark)
    users = ok(a.observer.call("listUsers"))["users"]
    entry = user_entry(users, a.sender.name)
    assert entry is not None and a.sender.sid in entry["sids"], \
        f"the sender vanished from presence after {event!r}: {users!r}"
    assert a.sender.name == a.sender.welcome["name"]
