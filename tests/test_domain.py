"""The chat domain alone: no server, no sockets; effects are read as the domain returns them."""

import pytest

from chat_server.chat import Chat
from chat_server.config import Config, RateLimit
from chat_server.effects import Close, Emit, Enter, Exit
from chat_server.errors import (BadPassword, BadToken, Forbidden, InvalidName, InvalidPayload,
                                NameTaken, NotFound, RateLimited, ServerFull, TooLarge)
from chat_server.store import Store


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def make_chat(tmp_path):
    made = []

    def make(**settings):
        published = []
        clock = Clock()
        store = Store(f"sqlite:///{tmp_path}/chat{len(made)}.db")
        chat = Chat(store, Config(**settings), publish=published.extend, clock=clock,
                    monotonic=clock)
        chat.published = published
        chat.clock_ = clock
        chat.start()
        made.append(store)
        return chat

    yield make
    for store in made:
        store.close()


@pytest.fixture
def chat(make_chat):
    return make_chat()


def join(chat, sid, auth=None):
    """Connect and go live, as the transport does; returns the Connection."""
    conn = chat.connect(sid, auth)
    chat.go_live(sid)
    return conn


def emits(chat, event=None):
    return [e for e in chat.published if isinstance(e, Emit) and event in (None, e.event)]


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
    chat.disconnect("s1")
    assert chat.presence.online_user(first.user.key) is not None
    chat.disconnect("s2")
    with pytest.raises(BadToken):
        chat.connect("s3", {"token": first.token})
    assert chat.store.user_by_key(first.user.key, include_gone=True).name == first.user.name


@pytest.mark.parametrize("name", ["", "x" * 33, "has space", "semi;colon", "guest-abc",
                                  "GUEST-abc", "#room", "a:b", "\u0301accent", 5, ["x"]])
def test_invalid_names_are_refused(chat, name):
    with pytest.raises(InvalidName):
        chat.connect("s1", {"name": name})


@pytest.mark.parametrize("name", ["alice", "Ålesund", "名前", "a.b-c_d", "x" * 32, "नमस्ते"])
def test_names_of_any_script_are_accepted(chat, name):
    assert join(chat, "s1", {"name": name}).user.name == name


def test_registered_name_needs_its_token(chat):
    alice = join(chat, "s1", {"name": "Alice"})
    with pytest.raises(NameTaken):
        chat.connect("s2", {"name": "alice"})  # case-insensitive
    again = join(chat, "s3", {"token": alice.token})
    assert again.user.id == alice.user.id
    with pytest.raises(BadToken):
        chat.connect("s4", {"token": alice.token, "name": "bob"})
    with pytest.raises(BadToken):
        chat.connect("s5", {"token": "not-a-token"})


def test_password_registers_and_logs_in_from_anywhere(chat):
    join(chat, "s1", {"name": "carol", "password": "hunter22"})
    chat.disconnect("s1")
    login = join(chat, "s2", {"name": "Carol", "password": "hunter22"})
    assert login.user.name == "carol"
    with pytest.raises(BadPassword):
        chat.connect("s3", {"name": "carol", "password": "wrong"})
    with pytest.raises(NameTaken):
        chat.connect("s4", {"name": "carol"})


def test_password_for_a_name_registered_without_one_is_name_taken(chat):
    join(chat, "s1", {"name": "dave"})
    with pytest.raises(NameTaken):
        chat.connect("s2", {"name": "dave", "password": "pw"})


def test_server_full(make_chat):
    chat = make_chat(max_connections=1)
    join(chat, "s1")
    with pytest.raises(ServerFull):
        chat.connect("s2", None)


def test_welcome_then_addchat_to_others(chat):
    join(chat, "s1", {"name": "alice"})
    chat.published.clear()
    join(chat, "s2", {"name": "bob"})
    welcome = emits(chat, "welcome")[0]
    assert welcome.to == ["s2"]
    assert welcome.data["name"] == "bob"
    assert {u["name"] for u in welcome.data["users"]} == {"alice", "bob"}
    assert welcome.data["conversations"] == [{"conversation": "lobby", "lastId": None}]
    assert "replayTruncated" not in welcome.data
    add = emits(chat, "addChat")[0]
    assert add.to == ["lobby"] and add.skip == ["s2"]
    assert add.data == {"sid": "s2", "name": "bob"}


def test_userleft_only_when_last_tab_closes(chat):
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"token": alice.token})
    chat.published.clear()
    chat.disconnect("s1")
    assert emits(chat, "userLeft") == []
    chat.disconnect("s2")
    assert emits(chat, "userLeft")[0].data == {"sid": "s2", "name": "alice"}


def test_lobby_message_is_stored_and_broadcast(chat):
    join(chat, "s1", {"name": "alice"})
    chat.published.clear()
    message = chat.send_lobby("s1", "  hello  ")
    assert message.text == "  hello  "  # stored untrimmed
    wire = message.to_wire()
    assert wire["from"] == "alice" and wire["fromSid"] == "s1" and wire["to"] is None
    assert wire["conversation"] == "lobby" and wire["kind"] == "broadcast"
    reply = emits(chat, "reply")[0]
    assert reply.to == ["lobby"] and reply.data == wire


def test_forged_fields_are_ignored(chat):
    join(chat, "s1", {"name": "alice"})
    message = chat.send_lobby("s1", {"text": "hi", "from": "mallory", "id": 1, "ts": 5})
    assert message.from_name == "alice" and message.ts != 5


@pytest.mark.parametrize("payload, error", [
    ("", InvalidPayload), ("   \n\t", InvalidPayload), ("x" * 2001, TooLarge),
    (None, InvalidPayload), (5, InvalidPayload), ([], InvalidPayload), ({"text": 3}, InvalidPayload),
    ({"text": "ok", "clientId": ""}, InvalidPayload), ({"text": "ok", "clientId": "x" * 65}, InvalidPayload),
    ({"text": "ok", "clientId": 7}, InvalidPayload), ("\ud800", InvalidPayload), ("a\x00b", InvalidPayload),
])
def test_bad_lobby_payloads(chat, payload, error):
    join(chat, "s1", {"name": "alice"})
    chat.published.clear()
    with pytest.raises(error):
        chat.send_lobby("s1", payload)
    assert chat.published == []


def test_text_limit_counts_code_points_after_trimming(chat):
    join(chat, "s1", {"name": "alice"})
    assert chat.send_lobby("s1", " " * 50 + "é" * 2000 + " " * 50)
    with pytest.raises(TooLarge):
        chat.send_lobby("s1", "😀" * 2001)


def test_client_id_makes_sends_idempotent_across_tabs_and_events(chat):
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"token": alice.token})
    join(chat, "s3", {"name": "bob"})
    chat.published.clear()
    first = chat.send_lobby("s1", {"text": "once", "clientId": "c-1"})
    again = chat.send_lobby("s2", {"text": "once", "clientId": "c-1"})
    third = chat.send_message("s1", {"content": "other", "destId": "bob", "clientId": "c-1"})
    assert first == again == third
    assert len(emits(chat, "reply")) == 1
    other_user = chat.send_lobby("s3", {"text": "mine", "clientId": "c-1"})
    assert other_user.id != first.id


def test_rate_limit_per_connection_and_per_user(make_chat):
    chat = make_chat(rate_limit=RateLimit(3, 10.0))
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"token": alice.token})
    for i in range(3):
        chat.send_lobby("s1" if i % 2 else "s2", f"m{i}")
    with pytest.raises(RateLimited):
        chat.send_lobby("s2", "too many")  # the user's bucket is shared by its tabs
    chat.clock_.now += 3.4  # one token back per 3.33 s
    chat.send_lobby("s1", "again")
    with pytest.raises(RateLimited):
        chat.send_lobby("s1", "and again")


def test_retry_is_answered_and_not_counted_even_over_the_limit(make_chat):
    chat = make_chat(rate_limit=RateLimit(2, 10.0))
    join(chat, "s1", {"name": "alice"})
    first = chat.send_lobby("s1", {"text": "a", "clientId": "k1"})
    assert chat.send_lobby("s1", {"text": "a", "clientId": "k1"}) == first  # refunded
    chat.send_lobby("s1", {"text": "b", "clientId": "k2"})
    assert chat.send_lobby("s1", {"text": "a", "clientId": "k1"}) == first  # over the limit
    with pytest.raises(RateLimited):
        chat.send_lobby("s1", {"text": "c", "clientId": "k3"})


def test_direct_messages_by_name_sid_offline_and_self(chat):
    alice = join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"name": "Bob"})
    chat.disconnect("s2")
    chat.published.clear()
    offline = chat.send_message("s1", {"content": "later", "destId": "bob"})
    assert offline.conversation == "dm:alice:bob" and offline.to == "Bob"
    assert emits(chat, "reply")[0].to == ["user:alice", "user:bob"]
    join(chat, "s3", {"name": "carol"})
    by_sid = chat.send_message("s1", {"content": "hi", "destId": "s3"})
    assert by_sid.conversation == "dm:alice:carol"
    to_self = chat.send_message("s1", {"content": "note", "destId": "alice"})
    assert to_self.conversation == "dm:alice:alice"
    with pytest.raises(NotFound):
        chat.send_message("s1", {"content": "x", "destId": "nobody"})
    assert alice.user.key == "alice"


def test_rooms_join_leave_ownership_and_deletion(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    created = chat.join_room("a", {"room": "#Team"})
    assert created["room"] == {"room": "#Team", "owner": "alice", "private": False, "members": 1}
    chat.join_room("b", {"room": "#team"})
    chat.join_room("c", {"room": "#TEAM"})
    chat.send_message("a", {"content": "hello team", "destId": "#team"})
    chat.published.clear()
    chat.leave_room("a", {"room": "#team"})
    assert any(isinstance(e, Exit) and e.sids == ["a"] for e in chat.published)
    left = emits(chat, "roomEvent")[0]
    assert left.data == {"room": "#Team", "event": "left", "name": "alice"}
    assert chat.store.room_by_key("#team").owner == "bob"  # longest-standing member
    with pytest.raises(Forbidden):
        chat.send_message("a", {"content": "x", "destId": "#team"})
    chat.leave_room("b", {"room": "#team"})
    chat.leave_room("c", {"room": "#team"})
    assert chat.store.room_by_key("#team") is None
    assert chat.store.history("#team") == []
    with pytest.raises(NotFound):
        chat.close_room("b", {"room": "#team"})
    with pytest.raises(NotFound):
        chat.leave_room("b", {"room": "#team"})


def test_close_room_is_for_the_owner_only(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    chat.join_room("a", {"room": "#x"})
    chat.join_room("b", {"room": "#x"})
    with pytest.raises(Forbidden):
        chat.close_room("b", {"room": "#x"})
    chat.published.clear()
    chat.close_room("a", {"room": "#X"})
    assert emits(chat, "roomEvent")[0].data == {"room": "#x", "event": "closed", "name": "alice"}
    assert any(isinstance(e, Close) and e.audience == "room:#x" for e in chat.published)
    with pytest.raises(NotFound):
        chat.history("b", {"conversation": "#x"})


def test_private_room_needs_password(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    chat.join_room("a", {"room": "#secret", "password": "s3cret"})
    with pytest.raises(BadPassword):
        chat.join_room("b", {"room": "#secret"})
    with pytest.raises(BadPassword):
        chat.join_room("b", {"room": "#secret", "password": "guess"})
    info = chat.join_room("b", {"room": "#secret", "password": "s3cret"})
    assert info["room"]["private"] and info["members"] == ["alice", "bob"]
    assert [r["room"] for r in chat.list_rooms("c")].count("#secret") == 0
    assert [r["room"] for r in chat.list_rooms("b")].count("#secret") == 1
    with pytest.raises(Forbidden):
        chat.history("c", {"conversation": "#secret"})
    with pytest.raises(Forbidden):
        chat.typing("c", {"to": "#secret", "typing": True})


def test_join_enters_every_tab_and_announces(chat):
    alice = join(chat, "a1", {"name": "alice"})
    join(chat, "a2", {"token": alice.token})
    chat.published.clear()
    info = chat.join_room("a1", {"room": "#r"})
    enter = [e for e in chat.published if isinstance(e, Enter)][0]
    assert sorted(enter.sids) == ["a1", "a2"] and enter.audience == "room:#r"
    assert emits(chat, "roomEvent")[0].data["event"] == "joined"
    assert info["history"] == []
    chat.published.clear()
    chat.join_room("a2", {"room": "#r"})  # already a member: no second announcement
    assert emits(chat, "roomEvent") == []


def test_history_paging_and_permissions(chat):
    join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    ids = [chat.send_message("a", {"content": f"m{i}", "destId": "bob"}).id for i in range(7)]
    newest = chat.history("b", {"conversation": "alice", "limit": 3})
    assert [m["id"] for m in newest] == ids[-3:]
    older = chat.history("b", {"conversation": "alice", "before": ids[-3], "limit": 3})
    assert [m["id"] for m in older] == ids[1:4]
    after = chat.history("a", {"conversation": "bob", "after": ids[1], "limit": 2})
    assert [m["id"] for m in after] == ids[2:4]
    window = chat.history("a", {"conversation": "dm:alice:bob", "after": ids[0], "before": ids[3]})
    assert [m["id"] for m in window] == ids[1:3]
    with pytest.raises(Forbidden):
        chat.history("c", {"conversation": "dm:alice:bob"})
    with pytest.raises(NotFound):
        chat.history("c", {"conversation": "nobody"})
    for bad in ({"conversation": "lobby", "limit": 0}, {"conversation": "lobby", "limit": 101},
                {"conversation": "lobby", "limit": True}, {"conversation": "lobby", "before": -1},
                {"conversation": "lobby", "after": "3"}, {"conversation": 5}, {}):
        with pytest.raises(InvalidPayload):
            chat.history("a", bad)


def test_typing_goes_to_peer_or_room_never_the_sender(chat):
    alice = join(chat, "a1", {"name": "alice"})
    join(chat, "a2", {"token": alice.token})
    join(chat, "b", {"name": "bob"})
    chat.published.clear()
    chat.typing("a1", {"to": "bob", "typing": True})
    event = emits(chat, "typing")[0]
    assert event.to == ["user:bob"] and sorted(event.skip) == ["a1", "a2"]
    assert event.data == {"from": "alice", "to": "bob", "typing": True}
    with pytest.raises(NotFound):
        chat.typing("a1", {"to": "nobody", "typing": True})
    with pytest.raises(InvalidPayload):
        chat.typing("a1", {"to": "bob", "typing": "yes"})


def test_replay_after_last_id_covers_own_conversations_only(chat):
    alice = join(chat, "a", {"name": "alice"})
    join(chat, "b", {"name": "bob"})
    join(chat, "c", {"name": "carol"})
    chat.join_room("b", {"room": "#bc"})
    chat.join_room("c", {"room": "#bc"})
    start = chat.send_lobby("b", "before").id
    chat.disconnect("a")
    lobby = chat.send_lobby("b", "lobby msg").id
    chat.send_message("b", {"content": "room msg", "destId": "#bc"})
    dm = chat.send_message("c", {"content": "for alice", "destId": "alice"}).id
    chat.send_message("b", {"content": "not alice's", "destId": "carol"})
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
    ids = [chat.send_lobby("a", f"m{i}").id for i in range(5)]
    chat.published.clear()
    join(chat, "a2", {"token": alice.token, "lastId": 0})
    assert [e.data["id"] for e in emits(chat, "reply")] == ids[:3]
    assert emits(chat, "welcome")[0].data["replayTruncated"] is True


def test_guest_leaving_hands_over_or_deletes_its_rooms(chat):
    guest = join(chat, "g", None)
    join(chat, "b", {"name": "bob"})
    chat.join_room("g", {"room": "#mine"})
    chat.join_room("g", {"room": "#shared"})
    chat.join_room("b", {"room": "#shared"})
    chat.disconnect("g")
    assert chat.store.room_by_key("#mine") is None
    assert chat.store.room_by_key("#shared").owner == "bob"
    assert guest.user.guest


def test_ids_keep_growing_after_restart(tmp_path):
    url = f"sqlite:///{tmp_path}/ids.db"
    first = Chat(Store(url), Config(), publish=lambda e: None)
    first.start()
    first.connect("s1", {"name": "alice"})
    first.join_room("s1", {"room": "#gone"})
    last = first.send_message("s1", {"content": "x", "destId": "#gone"}).id
    first.close_room("s1", {"room": "#gone"})  # deletes the newest message
    first.store.close()
    second = Chat(Store(url), Config(), publish=lambda e: None)
    second.start()
    second.connect("s2", None)
    assert second.send_lobby("s2", "y").id > last
    second.store.close()


def test_one_batch_with_a_repeated_client_id_stores_it_once(chat):
    """Two tabs' retries can land in the same group commit: the second is the first's."""
    from chat_server.models import NewMessage

    conn = join(chat, "s1", {"name": "alice"})
    item = NewMessage(conv_key="lobby", conversation="lobby", kind="broadcast",
                      from_user_id=conn.user.id, from_name="alice", from_sid="s1", to=None,
                      to_user_id=None, text="hi", ts=1, client_id="twice")
    other = NewMessage(**{**item.__dict__, "client_id": None, "text": "plain"})
    (first, dup1), (plain, dup2), (second, dup3) = chat.commit_batch([item, other, item])
    assert (dup1, dup2, dup3) == (False, False, True)
    assert second == first and plain.id > first.id
    assert [m["text"] for m in chat.history("s1", {"conversation": "lobby"})] == ["hi", "plain"]
