"""The chat domain alone: no server, no sockets; effects are read as the domain returns them."""

import pytest
from support.effects import sent

from chat_server.config import Config, RateLimit
from chat_server.domain.chat import Chat
from chat_server.domain.effects import Close, Emit, Enter, Exit, Hold, Release
from chat_server.domain.errors import (
    BadPassword,
    BadToken,
    Forbidden,
    InvalidName,
    InvalidPayload,
    NameTaken,
    NotFound,
    RateLimited,
    ServerFull,
    TooLarge,
)
from chat_server.domain.sending import LocalDistribution
from chat_server.store import Store


def join(chat, sid, auth=None):
    """Connect and go live, as the transport does; returns the Connection."""
    conn = chat.identity.connect(sid, auth)
    chat.live.go_live(sid)
    return conn


def emits(chat, event=None):
    return sent(chat.published, event)


def test_guest_gets_fresh_guest_name_and_token(chat):
    """A client without auth becomes guest- plus at least 8 hex digits."""
    conn = join(chat, "s1")
    assert conn.user.guest
    assert conn.user.name.startswith("guest-")
    suffix = conn.user.name[len("guest-"):]
    assert len(suffix) >= 8 and all(c in "0123456789abcdef" for c in suffix)
    other = join(chat, "s2")
    assert other.user.name != conn.user.name


def test_guest_token_dies_with_last_connection_and_name_is_never_reused(chat):
    first = join(chat, "s1")
    join(chat, "s2", {"token": first.token})  # a second tab of the same guest
    chat.identity.disconnect("s1")
    assert chat.presence.online_user(first.user.key) is not None
    chat.identity.disconnect("s2")
    with pytest.raises(BadToken):
        chat.identity.connect("s3", {"token": first.token})
    assert chat.store.user_by_key(first.user.key) is None  # no row left behind
    assert len(first.user.name) == len("guest-") + 16  # 64 random bits: never drawn again


@pytest.mark.parametrize("name", ["", "x" * 33, "has space", "semi;colon", "guest-abc",
                                  "GUEST-abc", "#room", "a:b", "\u0301accent"])
def test_invalid_names_are_refused(chat, name):
    with pytest.raises(InvalidName):
        chat.identity.connect("s1", {"name": name})


@pytest.mark.parametrize("auth", [{"name": 5}, {"name": ["x"]}, {"token": 7}, {"token": ""},
                                  {"token": "t" * 201}, {"name": "pat", "password": 1},
                                  {"name": "pat", "password": ""}, {"lastId": -1}, "pat"])
def test_a_malformed_auth_is_invalid_payload(chat, auth):
    """Wrong types and out-of-range fields are a malformed `auth` (docs/protocol.md §1.6)."""
    with pytest.raises(InvalidPayload):
        chat.identity.connect("s1", auth)


@pytest.mark.parametrize("name", ["alice", "Ålesund", "名前", "a.b-c_d", "x" * 32, "नमस्ते"])
def test_names_of_any_script_are_accepted(chat, name):
    assert join(chat, "s1", {"name": name}).user.name == name


def test_registered_name_needs_its_token(chat):
    alice = join(chat, "s1", {"name": "Alice"})
    with pytest.raises(NameTaken):
        chat.identity.connect("s2", {"name": "alice"})  # case-insensitive
    again = join(chat, "s3", {"token": alice.token})
    assert again.user.id == alice.user.id
    with pytest.raises(BadToken):
        chat.identity.connect("s4", {"token": alice.token, "name": "bob"})
    with pytest.raises(BadToken):
        chat.identity.connect("s5", {"token": "not-a-token"})


def test_password_registers_and_logs_in_from_anywhere(chat):
    join(chat, "s1", {"name": "carol", "password": "hunter22"})
    chat.identity.disconnect("s1")
    login = join(chat, "s2", {"name": "Carol", "password": "hunter22"})
    assert login.user.name == "carol"
    with pytest.raises(BadPassword):
        chat.identity.connect("s3", {"name": "carol", "password": "wrong"})
    with pytest.raises(NameTaken):
        chat.identity.connect("s4", {"name": "carol"})


def test_password_for_a_name_registered_without_one_is_name_taken(chat):
    join(chat, "s1", {"name": "dave"})
    with pytest.raises(NameTaken):
        chat.identity.connect("s2", {"name": "dave", "password": "pw"})


def test_server_full(make_chat):
    chat = make_chat(max_connections=1)
    join(chat, "s1")
    with pytest.raises(ServerFull):
        chat.identity.connect("s2", None)


def test_welcome_then_addchat_to_others(chat):
    join(chat, "s1", {"name": "alice"})
    chat.published.clear()
    join(chat, "s2", {"name": "bob"})
    welcome = emits(chat, "welcome")[0]
    assert welcome.to == ["s2"]
    assert welcome.data["name"] == "bob"
    assert {u["name"] for u in welcome.data["users"]} == {"alice", "bob"}
    assert welcome.data["conversations"] == [{"conversation": "lobby", "lastId": None,
                                              "lastRead": None, "unread": 0, "mentions": 0}]
    assert "replayTruncated" not in welcome.data
    add = emits(chat, "addChat")[0]
    assert add.to == ["lobby"] and add.skip == ["s2"]
    assert add.data == {"sid": "s2", "name": "bob"}


def test_userleft_only_when_last_tab_closes(chat):
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"token": alice.token})
    chat.published.clear()
    chat.identity.disconnect("s1")
    assert emits(chat, "userLeft") == []
    chat.identity.disconnect("s2")
    assert emits(chat, "userLeft")[0].data == {"sid": "s2", "name": "alice"}


def test_lobby_message_is_stored_and_broadcast(chat):
    join(chat, "s1", {"name": "alice"})
    chat.published.clear()
    message = chat.sending.send_lobby("s1", "  hello  ")
    assert message.text == "  hello  "  # stored untrimmed
    wire = message.to_wire()
    assert wire["from"] == "alice" and wire["fromSid"] == "s1" and wire["to"] is None
    assert wire["conversation"] == "lobby" and wire["kind"] == "broadcast"
    reply = emits(chat, "reply")[0]
    assert reply.to == ["lobby"] and reply.data == wire


def test_forged_fields_are_ignored(chat):
    join(chat, "s1", {"name": "alice"})
    message = chat.sending.send_lobby("s1", {"text": "hi", "from": "mallory", "id": 1, "ts": 5})
    assert message.from_name == "alice" and message.ts != 5


@pytest.mark.parametrize("payload, error", [
    ("", InvalidPayload), ("   \n\t", InvalidPayload), ("x" * 2001, TooLarge),
    (None, InvalidPayload), (5, InvalidPayload), ([], InvalidPayload),
    ({"text": 3}, InvalidPayload), ({"text": "ok", "clientId": ""}, InvalidPayload),
    ({"text": "ok", "clientId": "x" * 65}, InvalidPayload),
    ({"text": "ok", "clientId": 7}, InvalidPayload), ("\ud800", InvalidPayload),
    ("a\x00b", InvalidPayload),
])
def test_bad_lobby_payloads(chat, payload, error):
    join(chat, "s1", {"name": "alice"})
    chat.published.clear()
    with pytest.raises(error):
        chat.sending.send_lobby("s1", payload)
    assert chat.published == []


def test_text_limit_counts_code_points_after_trimming(chat):
    join(chat, "s1", {"name": "alice"})
    assert chat.sending.send_lobby("s1", " " * 50 + "é" * 2000 + " " * 50)
    with pytest.raises(TooLarge):
        chat.sending.send_lobby("s1", "😀" * 2001)


def test_client_id_makes_sends_idempotent_across_tabs_and_events(chat):
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"token": alice.token})
    join(chat, "s3", {"name": "bob"})
    chat.published.clear()
    first = chat.sending.send_lobby("s1", {"text": "once", "clientId": "c-1"})
    again = chat.sending.send_lobby("s2", {"text": "once", "clientId": "c-1"})
    third = chat.sending.send_message("s1", {"content": "other", "destId": "bob",
                                             "clientId": "c-1"})
    assert first == again == third
    assert len(emits(chat, "reply")) == 1
    other_user = chat.sending.send_lobby("s3", {"text": "mine", "clientId": "c-1"})
    assert other_user.id != first.id


def test_rate_limit_per_connection_and_per_user(make_chat):
    chat = make_chat(rate_limit=RateLimit(3, 10.0))
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"token": alice.token})
    for i in range(3):
        chat.sending.send_lobby("s1" if i % 2 else "s2", f"m{i}")
    with pytest.raises(RateLimited):
        chat.sending.send_lobby("s2", "too many")  # the user's bucket is shared by its tabs
    chat.clock_.now += 3.4  # one token back per 3.33 s
    chat.sending.send_lobby("s1", "again")
    with pytest.raises(RateLimited):
        chat.sending.send_lobby("s1", "and again")


def test_retry_is_answered_and_not_counted_even_over_the_limit(make_chat):
    chat = make_chat(rate_limit=RateLimit(2, 10.0))
    join(chat, "s1", {"name": "alice"})
    first = chat.sending.send_lobby("s1", {"text": "a", "clientId": "k1"})
    tokens = chat.limiter.buckets[("sid", "s1")].tokens
    for _ in range(5):
        assert chat.sending.send_lobby("s1", {"text": "a", "clientId": "k1"}) == first  # refunded
        assert chat.limiter.buckets[("sid", "s1")].tokens == tokens
    chat.sending.send_lobby("s1", {"text": "b", "clientId": "k2"})
    assert chat.sending.send_lobby("s1", {"text": "a", "clientId": "k1"}) == first  # over the limit
    with pytest.raises(RateLimited):
        chat.sending.send_lobby("s1", {"text": "c", "clientId": "k3"})


def test_every_send_attempt_counts_even_a_malformed_one(make_chat):
    """PROTOCOL 5: the limit counts `message`/`sendMessage` attempts: a malformed or too
    long send takes a token too, and beyond the limit one is `rate_limited`."""
    chat = make_chat(rate_limit=RateLimit(4, 10.0), max_text_length=10)
    join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"name": "bob"})
    for send, payload, error in (
            (chat.sending.send_lobby, "", InvalidPayload),
            (chat.sending.send_lobby, {"text": "x" * 11, "clientId": "c-1"}, TooLarge),
            (chat.sending.send_message, {"content": "hi"}, InvalidPayload),
            (chat.sending.send_message, {"content": "hi", "destId": "bob", "clientId": 7},
             InvalidPayload)):
        with pytest.raises(error):
            send("s1", payload)
    with pytest.raises(RateLimited):
        chat.sending.send_lobby("s1", "fine")
    with pytest.raises(RateLimited):  # beyond the limit a bad payload is refused as such
        chat.sending.send_lobby("s1", "")
    chat.clock_.now += 2.6  # one token back per 2.5 s
    assert chat.sending.send_lobby("s1", "fine").text == "fine"
    assert [e.data["text"] for e in emits(chat, "reply")][-1:] == ["fine"]


def test_a_malformed_send_counts_for_the_user_across_tabs(make_chat):
    chat = make_chat(rate_limit=RateLimit(2, 10.0))
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"token": alice.token})
    with pytest.raises(InvalidPayload):
        chat.sending.send_lobby("s1", None)
    chat.sending.send_lobby("s2", "one")
    with pytest.raises(RateLimited):
        chat.sending.send_lobby("s2", "two")


def test_a_retry_gets_its_original_whatever_became_of_the_destination(chat):
    """PROTOCOL 2: the retry of an accepted clientId is acked with the original MESSAGE
    even after the DM peer's sid went offline or the sender left the room; it is
    delivered to no one again."""
    alice = join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    to_sid = chat.sending.send_message("a", {"content": "hi bob", "destId": "b", "clientId": "dm"})
    chat.rooms.join_room("a", {"room": "#team"})
    chat.rooms.join_room("c", {"room": "#team"})
    in_room = chat.sending.send_message("a", {"content": "hi team", "destId": "#team",
                                      "clientId": "room"})
    chat.identity.disconnect("b")
    chat.rooms.leave_room("a", {"room": "#team"})
    join(chat, "a2", {"token": alice.token})
    chat.published.clear()
    assert chat.sending.send_message("a", {"content": "hi bob", "destId": "b",
                                   "clientId": "dm"}) == to_sid  # was not_found
    assert chat.sending.send_message("a2", {"content": "hi team", "destId": "#team",
                                    "clientId": "room"}) == in_room  # was forbidden
    assert chat.sending.send_lobby("a", {"text": "other event", "clientId": "room"}) == in_room
    assert emits(chat, "reply") == []


def test_a_fresh_send_pays_for_no_retry_lookup(counted):
    """A new send, with a clientId or not, goes to the store once (the insert finds a
    retry itself); the extra lookup, through `store_call` (off the event loop in the
    server), happens only when a send fails before reaching the store."""
    chat, calls = counted, counted.calls
    join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"name": "bob"})
    calls.clear()
    chat.sending.send_lobby("s1", "plain")
    chat.sending.send_message("s1", {"content": "plain", "destId": "bob"})
    chat.sending.send_lobby("s1", {"text": "keyed", "clientId": "k"})
    # a retry, found by the insert
    chat.sending.send_lobby("s1", {"text": "keyed", "clientId": "k"})
    assert "message_by_client_id" not in calls
    with pytest.raises(NotFound):
        chat.sending.send_message("s1", {"content": "x", "destId": "nobody", "clientId": "k2"})
    assert calls.count("message_by_client_id") == 1


def test_a_connection_closed_during_the_retry_lookup_leaves_no_bucket(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/gone.db")
    chat = None

    def store_call(fn, *args):
        if fn.__name__ == "message_by_client_id":
            chat.identity.disconnect("s1")  # the client went away while the store answered
        return fn(*args)

    chat = Chat(store, Config(), publish=lambda effects: None, store_call=store_call)
    chat.start()
    join(chat, "s1", {"name": "alice"})
    with pytest.raises(NotFound):
        chat.sending.send_message("s1", {"content": "late", "destId": "nobody", "clientId": "k"})
    assert ("sid", "s1") not in chat.limiter.buckets
    assert store.history("lobby") == []
    store.close()


def test_direct_messages_by_name_sid_offline_and_self(chat):
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"name": "Bob"})
    chat.identity.disconnect("s2")
    chat.published.clear()
    offline = chat.sending.send_message("s1", {"content": "later", "destId": "bob"})
    assert offline.conversation == "dm:alice:bob" and offline.to == "Bob"
    assert emits(chat, "reply")[0].to == ["user:alice", "user:bob"]
    join(chat, "s3", {"name": "carol"})
    by_sid = chat.sending.send_message("s1", {"content": "hi", "destId": "s3"})
    assert by_sid.conversation == "dm:alice:carol"
    to_self = chat.sending.send_message("s1", {"content": "note", "destId": "alice"})
    assert to_self.conversation == "dm:alice:alice"
    with pytest.raises(NotFound):
        chat.sending.send_message("s1", {"content": "x", "destId": "nobody"})
    assert alice.user.key == "alice"


def test_dm_keys_are_the_lower_cased_names_not_the_casefolded_keys(chat):
    """PROTOCOL 3: `dm:` keys name both users sorted and lower-case: "Straße" is "straße"
    (its casefolded key is "strasse") and "ΣΟΦΟΣ" is "σοφος" (casefolded "σοφοσ")."""
    a, b = "Straße", "ΣΟΦΟΣ"
    key = "dm:" + ":".join(sorted([a.lower(), b.lower()]))
    assert key == "dm:straße:σοφος"
    sa = join(chat, "s1", {"name": a})
    sb = join(chat, "s2", {"name": b})
    assert (sa.user.key, sb.user.key) == ("strasse", "σοφοσ")  # names still compare casefolded
    chat.published.clear()
    by_name = chat.sending.send_message("s1", {"content": "hallo", "destId": "σοφοσ"})
    by_sid = chat.sending.send_message("s2", {"content": "γεια", "destId": "s1"})
    assert by_name.conversation == by_sid.conversation == key
    assert by_name.to == b and by_sid.to == a
    assert [e.to for e in emits(chat, "reply")] == [["user:strasse", "user:σοφοσ"]] * 2
    for sid, peer in (("s1", "SOFOS"), ("s1", "ΣΟΦΟΣ"), ("s2", "STRASSE"), ("s2", "straße")):
        if peer == "SOFOS":
            with pytest.raises(NotFound):
                chat.reading.history(sid, {"conversation": peer})
            continue
        assert [m["id"] for m in chat.reading.history(sid, {"conversation": peer})] == \
            [by_name.id, by_sid.id]
    for sid in ("s1", "s2"):
        assert len(chat.reading.history(sid, {"conversation": key})) == 2
    for wrong in ("dm:strasse:σοφοσ", "dm:σοφος:straße", "dm:Straße:σοφος"):
        with pytest.raises(Forbidden):
            chat.reading.history("s1", {"conversation": wrong})
    join(chat, "s3", {"name": "carol"})
    with pytest.raises(Forbidden):
        chat.reading.history("s3", {"conversation": key})
    note = chat.sending.send_message("s1", {"content": "memo", "destId": "STRASSE"})
    assert note.conversation == "dm:straße:straße"
    assert emits(chat, "reply")[-1].to == ["user:strasse"]
    chat.identity.disconnect("s1")
    chat.published.clear()
    again = join(chat, "s4", {"token": sa.token, "lastId": 0})
    welcome = emits(chat, "welcome")[0].data
    assert {c["conversation"] for c in welcome["conversations"]} == \
        {"lobby", key, "dm:straße:straße"}
    assert [e.data["id"] for e in emits(chat, "reply")] == [by_name.id, by_sid.id, note.id]
    assert again.user.key == "strasse"


def test_a_version_1_database_has_its_dm_keys_renamed(tmp_path):
    """Schema 1 named DMs by the casefolded keys; at start they are renamed, so history,
    welcome and replay keep every message of those conversations."""
    import sqlalchemy as sa

    from chat_server import schema

    url = f"sqlite:///{tmp_path}/v1.db"
    old = Chat(Store(url), Config(), publish=lambda effects: None)
    old.start()
    old.identity.connect("s1", {"name": "Straße"})
    old.identity.connect("s2", {"name": "Bob"})
    old.identity.connect("s3", {"name": "ΣΟΦΟΣ"})
    ascii_dm = old.sending.send_message("s2", {"content": "plain", "destId": "straße"})
    with old.store.engine.begin() as conn:  # write what schema 1 wrote
        for key, users_ in (("dm:strasse:σοφοσ", ("s1", "s3")), ("dm:strasse:strasse", ("s1",))):
            for sid in users_:
                user = old.presence.get(sid).user
                conn.execute(schema.dm_members.insert().values(conv_key=key,
                                                                      user_id=user.id))
            conn.execute(schema.messages.insert().values(
                conv_key=key, conversation=key, kind="direct", from_name="Straße",
                from_user_id=old.presence.get("s1").user.id, from_sid="s1", text="old " + key,
                ts=1, to_name="x", client_id=None))
        conn.execute(schema.meta.update().values(value="1"))
    old.store.close()

    new = Chat(Store(url), Config(), publish=lambda effects: None)
    new.start()
    with new.store.engine.begin() as conn:
        assert conn.execute(sa.select(schema.meta.c.value)).scalar() == str(
            schema.SCHEMA_VERSION)
    new.identity.connect("t1", {"token": old.presence.get("s1").token})
    assert [m["text"] for m in new.reading.history("t1", {"conversation": "σοφος"})] == \
        ["old dm:strasse:σοφοσ"]
    assert [m["conversation"] for m in new.reading.history("t1", {"conversation": "straße"})] == \
        ["dm:straße:straße"]
    assert new.reading.history("t1", {"conversation": "bob"})[0]["id"] == ascii_dm.id
    snap = new.store.snapshot(old.presence.get("s1").user.id, 0, 10)
    assert sorted(c.name for c in snap.conversations) == \
        ["dm:bob:straße", "dm:straße:straße", "dm:straße:σοφος", "lobby"]
    assert {m.conv_key for m in snap.replay} == {"dm:bob:straße", "dm:straße:straße",
                                                 "dm:straße:σοφος"}
    new.store.close()


def test_rooms_join_leave_ownership_and_deletion(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    created = chat.rooms.join_room("a", {"room": "#Team"})
    assert created["room"] == {"room": "#Team", "owner": "alice", "private": False, "members": 1,
                               "moderators": []}
    chat.rooms.join_room("b", {"room": "#team"})
    chat.rooms.join_room("c", {"room": "#TEAM"})
    chat.sending.send_message("a", {"content": "hello team", "destId": "#team"})
    chat.published.clear()
    chat.rooms.leave_room("a", {"room": "#team"})
    assert any(isinstance(e, Exit) and e.sids == ["a"] for e in chat.published)
    left = emits(chat, "roomEvent")[0]
    assert left.data == {"room": "#Team", "event": "left", "name": "alice"}
    assert chat.store.room_by_key("#team").owner == "bob"  # longest-standing member
    with pytest.raises(Forbidden):
        chat.sending.send_message("a", {"content": "x", "destId": "#team"})
    chat.rooms.leave_room("b", {"room": "#team"})
    chat.rooms.leave_room("c", {"room": "#team"})
    assert chat.store.room_by_key("#team") is None
    assert chat.store.history("#team") == []
    with pytest.raises(NotFound):
        chat.rooms.close_room("b", {"room": "#team"})
    with pytest.raises(NotFound):
        chat.rooms.leave_room("b", {"room": "#team"})


def test_close_room_is_for_the_owner_only(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    chat.rooms.join_room("a", {"room": "#x"})
    chat.rooms.join_room("b", {"room": "#x"})
    with pytest.raises(Forbidden):
        chat.rooms.close_room("b", {"room": "#x"})
    chat.published.clear()
    chat.rooms.close_room("a", {"room": "#X"})
    assert emits(chat, "roomEvent")[0].data == {"room": "#x", "event": "closed", "name": "alice"}
    assert any(isinstance(e, Close) and e.audience == "room:#x" for e in chat.published)
    with pytest.raises(NotFound):
        chat.reading.history("b", {"conversation": "#x"})


def test_private_room_needs_password(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    chat.rooms.join_room("a", {"room": "#secret", "password": "s3cret"})
    with pytest.raises(BadPassword):
        chat.rooms.join_room("b", {"room": "#secret"})
    with pytest.raises(BadPassword):
        chat.rooms.join_room("b", {"room": "#secret", "password": "guess"})
    info = chat.rooms.join_room("b", {"room": "#secret", "password": "s3cret"})
    assert info["room"]["private"] and info["members"] == ["alice", "bob"]
    assert [r["room"] for r in chat.rooms.list_rooms("c")].count("#secret") == 0
    assert [r["room"] for r in chat.rooms.list_rooms("b")].count("#secret") == 1
    with pytest.raises(Forbidden):
        chat.reading.history("c", {"conversation": "#secret"})
    with pytest.raises(Forbidden):
        chat.typing.typing("c", {"to": "#secret", "typing": True})


def test_join_enters_every_tab_and_announces(chat):
    alice = join(chat, "a1", {"name": "alice"})
    join(chat, "a2", {"token": alice.token})
    chat.published.clear()
    info = chat.rooms.join_room("a1", {"room": "#r"})
    enter = next(e for e in chat.published if isinstance(e, Enter))
    assert sorted(enter.sids) == ["a1", "a2"] and enter.audience == "room:#r"
    assert emits(chat, "roomEvent")[0].data["event"] == "joined"
    assert info["history"] == []
    chat.published.clear()
    chat.rooms.join_room("a2", {"room": "#r"})  # already a member: no second announcement
    assert emits(chat, "roomEvent") == []


def test_history_paging_and_permissions(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    ids = [chat.sending.send_message("a", {"content": f"m{i}", "destId": "bob"}).id
           for i in range(7)]
    newest = chat.reading.history("b", {"conversation": "alice", "limit": 3})
    assert [m["id"] for m in newest] == ids[-3:]
    older = chat.reading.history("b", {"conversation": "alice", "before": ids[-3], "limit": 3})
    assert [m["id"] for m in older] == ids[1:4]
    after = chat.reading.history("a", {"conversation": "bob", "after": ids[1], "limit": 2})
    assert [m["id"] for m in after] == ids[2:4]
    window = chat.reading.history("a", {"conversation": "dm:alice:bob", "after": ids[0],
                                        "before": ids[3]})
    assert [m["id"] for m in window] == ids[1:3]
    with pytest.raises(Forbidden):
        chat.reading.history("c", {"conversation": "dm:alice:bob"})
    with pytest.raises(NotFound):
        chat.reading.history("c", {"conversation": "nobody"})
    for bad in ({"conversation": "lobby", "limit": 0}, {"conversation": "lobby", "limit": 101},
                {"conversation": "lobby", "limit": True}, {"conversation": "lobby", "before": -1},
                {"conversation": "lobby", "after": "3"}, {"conversation": 5}, {}):
        with pytest.raises(InvalidPayload):
            chat.reading.history("a", bad)


def test_typing_goes_to_peer_or_room_never_the_sender(chat):
    alice = join(chat, "a1", {"name": "alice"})
    join(chat, "a2", {"token": alice.token})
    join(chat, "b", {"name": "bob"})
    chat.published.clear()
    chat.typing.typing("a1", {"to": "bob", "typing": True})
    event = emits(chat, "typing")[0]
    assert event.to == ["user:bob"] and sorted(event.skip) == ["a1", "a2"]
    assert event.data == {"from": "alice", "to": "bob", "typing": True}
    with pytest.raises(NotFound):
        chat.typing.typing("a1", {"to": "nobody", "typing": True})
    with pytest.raises(InvalidPayload):
        chat.typing.typing("a1", {"to": "bob", "typing": "yes"})


def test_replay_after_last_id_covers_own_conversations_only(chat):
    alice = join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    chat.rooms.join_room("b", {"room": "#bc"})
    chat.rooms.join_room("c", {"room": "#bc"})
    start = chat.sending.send_lobby("b", "before").id
    chat.identity.disconnect("a")
    lobby = chat.sending.send_lobby("b", "lobby msg").id
    chat.sending.send_message("b", {"content": "room msg", "destId": "#bc"})
    dm = chat.sending.send_message("c", {"content": "for alice", "destId": "alice"}).id
    chat.sending.send_message("b", {"content": "not alice's", "destId": "carol"})
    chat.published.clear()
    join(chat, "a2", {"token": alice.token, "lastId": start})
    welcome = emits(chat, "welcome")[0].data
    assert welcome["replayTruncated"] is False
    replayed = [e.data["id"] for e in emits(chat, "reply")]
    assert replayed == [lobby, dm]
    conversations = {c["conversation"]: c["lastId"] for c in welcome["conversations"]}
    assert conversations == {"lobby": lobby, "dm:alice:carol": dm}


def test_replay_is_capped_and_says_so(make_chat):
    chat = make_chat(replay_limit=3)
    alice = join(chat, "a", {"name": "alice"})
    ids = [chat.sending.send_lobby("a", f"m{i}").id for i in range(5)]
    chat.published.clear()
    join(chat, "a2", {"token": alice.token, "lastId": 0})
    assert [e.data["id"] for e in emits(chat, "reply")] == ids[:3]
    assert emits(chat, "welcome")[0].data["replayTruncated"] is True


def test_guest_leaving_hands_over_or_deletes_its_rooms(chat):
    guest = join(chat, "g", None)
    join(chat, "b", {"name": "bob"})
    chat.rooms.join_room("g", {"room": "#mine"})
    chat.rooms.join_room("g", {"room": "#shared"})
    chat.rooms.join_room("b", {"room": "#shared"})
    chat.identity.disconnect("g")
    assert chat.store.room_by_key("#mine") is None
    assert chat.store.room_by_key("#shared").owner == "bob"
    assert guest.user.guest


def test_ids_keep_growing_after_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/ids.db"
    first = Chat(Store(url), Config(), publish=lambda e: None)
    first.start()
    first.identity.connect("s1", {"name": "alice"})
    first.rooms.join_room("s1", {"room": "#gone"})
    last = first.sending.send_message("s1", {"content": "x", "destId": "#gone"}).id
    first.rooms.close_room("s1", {"room": "#gone"})  # deletes the newest message
    first.store.close()
    second = Chat(Store(url), Config(), publish=lambda e: None)
    second.start()
    second.identity.connect("s2", None)
    assert second.sending.send_lobby("s2", "y").id > last
    second.store.close()


def test_one_batch_with_a_repeated_client_id_stores_it_once(chat):
    """Two tabs' retries can land in the same group commit: the second is the first's."""
    from chat_server.domain.models import NewMessage

    conn = join(chat, "s1", {"name": "alice"})
    item = NewMessage(conv_key="lobby", conversation="lobby", kind="broadcast",
                      from_user_id=conn.user.id, from_name="alice", from_sid="s1", to=None,
                      to_user_id=None, text="hi", ts=1, client_id="twice")
    other = NewMessage(**{**item.__dict__, "client_id": None, "text": "plain"})
    (first, dup1), (plain, dup2), (second, dup3) = chat.sending.commit_batch([item, other, item])
    assert (dup1, dup2, dup3) == (False, False, True)
    assert second == first and plain.id > first.id
    lobby = chat.reading.history("s1", {"conversation": "lobby"})
    assert [m["text"] for m in lobby] == ["hi", "plain"]


def test_a_send_racing_a_leave_leaves_no_stale_membership(tmp_path):
    """Sends to a room skip the store once membership is known (one node); a lookup made
    while a leave is being stored must not let the user send after the leave."""
    store = Store(f"sqlite:///{tmp_path}/race.db")
    chat = None
    raced = []

    def store_call(fn, *args):
        if fn.__name__ == "remove_member" and not raced:
            # the store has not removed the membership yet: another tab sends meanwhile
            raced.append(chat.sending.send_message("t2", {"content": "during", "destId": "#r"}))
        return fn(*args)

    chat = Chat(store, Config(), publish=lambda effects: None, store_call=store_call)
    chat.start()
    alice = join(chat, "t1", {"name": "alice"})
    join(chat, "t2", {"token": alice.token})
    join(chat, "b", {"name": "bob"})
    chat.rooms.join_room("b", {"room": "#r"})
    chat.rooms.join_room("t1", {"room": "#r"})
    chat.sending.send_message("t1", {"content": "before", "destId": "#r"})  # membership now known
    chat.rooms.leave_room("t1", {"room": "#r"})
    assert raced and raced[0].text == "during"
    for sid in ("t1", "t2"):
        with pytest.raises(Forbidden):
            chat.sending.send_message(sid, {"content": "after", "destId": "#r"})
    chat.rooms.close_room("b", {"room": "#r"})
    chat.rooms.join_room("t1", {"room": "#r"})  # a new room under the same name
    with pytest.raises(Forbidden):
        chat.sending.send_message("b", {"content": "old member", "destId": "#r"})
    store.close()


def test_a_big_batch_is_delivered_in_groups_and_a_client_going_live_between_gets_each_once(
        tmp_path):
    """Delivery pauses between groups of a batch (the event loop serves others). A client
    going live during a pause enters its rooms held, before its snapshot; its release
    replays the whole batch (committed already) and drops, as replayed, every id up to
    its last, so the groups delivered live afterwards reach it once."""
    from chat_server.domain.models import NewMessage

    store = Store(f"sqlite:///{tmp_path}/groups.db")
    published = []
    pauses = []

    def pause():
        pauses.append(len(published))
        if len(pauses) == 1:
            chat.identity.connect("late", {"name": "late", "lastId": 0})
            chat.live.go_live("late")

    chat = Chat(store, Config(), publish=published.extend, pause=pause)
    chat.start()
    sender = join(chat, "s", {"name": "sender"})
    published.clear()
    count = 2 * LocalDistribution.DELIVER_AT_ONCE + 3
    items = [NewMessage("lobby", "lobby", "broadcast", sender.user.id, "sender", "s", None,
                        None, f"m{i}", 0, None) for i in range(count)]
    results = chat.sending.commit_batch(items)
    ids = [message.id for message, _ in results]
    assert len(pauses) == 2  # three groups
    kinds = [type(e).__name__ for e in published if getattr(e, "sid", None) == "late"]
    assert kinds == ["Hold", "Release"]
    hold = next(i for i, e in enumerate(published) if isinstance(e, Hold))
    entered = next(i for i, e in enumerate(published)
                   if isinstance(e, Enter) and e.sids == ["late"] and e.audience == "lobby")
    release = next(e for e in published if isinstance(e, Release))
    assert hold < entered < published.index(release)
    assert [data["id"] for name, data in release.first if name == "reply"] == ids
    assert release.upto == ids[-1]
    live = [e.data["id"] for e in published[entered:]
            if isinstance(e, Emit) and e.event == "reply" and e.to == ["lobby"]]
    assert live == ids[LocalDistribution.DELIVER_AT_ONCE:]  # dropped by the release
    store.close()


def test_a_leave_racing_the_owners_close_is_not_found(tmp_path):
    """The room is closed between the leaver's membership check and its removal."""
    store = Store(f"sqlite:///{tmp_path}/close-race.db")
    chat = None

    def store_call(fn, *args):
        if fn.__name__ == "remove_member":
            chat.rooms.close_room("owner", {"room": "#r"})
        return fn(*args)

    chat = Chat(store, Config(), publish=lambda effects: None, store_call=store_call)
    chat.start()
    join(chat, "owner", {"name": "owner"})
    join(chat, "m", {"name": "member"})
    chat.rooms.join_room("owner", {"room": "#r"})
    chat.rooms.join_room("m", {"room": "#r"})
    with pytest.raises(NotFound):
        chat.rooms.leave_room("m", {"room": "#r"})
    assert store.room_by_key("#r") is None
    store.close()
