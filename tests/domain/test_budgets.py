"""The domain's budgets (docs/protocol.md §1.10) with a hand-moved clock: events per
connection and per user, new rooms per user, password checks per address and per target.
hardening/test_budgets.py floods a real server with the defaults."""

import pytest

from chat_server.config import RateLimit
from chat_server.domain.errors import BadPassword, RateLimited


def connect(chat, sid, auth=None, address="203.0.113.1"):
    conn = chat.identity.connect(sid, auth, address=address)
    chat.live.go_live(sid)
    return conn


def test_every_event_spends_the_connections_and_the_users_budget(make_chat):
    chat = make_chat(event_rate=RateLimit(3, 3.0))
    first = connect(chat, "s1", {"name": "alice"})
    connect(chat, "s2", {"token": first.token})
    connect(chat, "s3", {"name": "bob"})
    chat.charge_event("s1")
    chat.charge_event("s2")
    chat.charge_event("s1")
    with pytest.raises(RateLimited):
        chat.charge_event("s2")  # alice's three are spent, whichever tab
    chat.charge_event("s3")  # bob has his own
    assert chat.refused == ["events"]
    chat.clock_.now += 1.0  # one more a second
    chat.charge_event("s2")
    with pytest.raises(RateLimited):
        chat.charge_event("s1")


def test_new_rooms_spend_their_own_budget_and_joining_does_not(make_chat):
    chat = make_chat(room_rate=RateLimit(2, 60.0))
    connect(chat, "s1", {"name": "alice"})
    connect(chat, "s2", {"name": "bob"})
    chat.rooms.join_room("s1", {"room": "#one"})
    chat.rooms.join_room("s1", {"room": "#two"})
    with pytest.raises(RateLimited):
        chat.rooms.join_room("s1", {"room": "#three"})
    chat.rooms.join_room("s1", {"room": "#one"})  # already there: no new room
    chat.rooms.join_room("s2", {"room": "#two"})  # joining an existing one
    chat.rooms.join_room("s2", {"room": "#bobs"})
    assert [r["room"] for r in chat.rooms.list_rooms("s1")] == ["#bobs", "#one", "#two"]
    assert chat.refused == ["rooms"]


def test_password_checks_spend_the_address_first_then_the_target(make_chat):
    chat = make_chat(password_rate=RateLimit(3, 60.0), password_target_rate=RateLimit(2, 60.0))
    connect(chat, "owner", {"name": "owner", "password": "owners"})
    chat.rooms.join_room("owner", {"room": "#vault", "password": "right"})
    connect(chat, "a", address="198.51.100.1")
    connect(chat, "b", address="198.51.100.2")
    for _ in range(2):
        with pytest.raises(BadPassword):
            chat.rooms.join_room("a", {"room": "#vault", "password": "wrong"})
    with pytest.raises(RateLimited):  # the room's two are spent
        chat.rooms.join_room("a", {"room": "#vault", "password": "wrong"})
    with pytest.raises(RateLimited):  # ... for every address, the right password too
        chat.rooms.join_room("b", {"room": "#vault", "password": "right"})
    with pytest.raises(RateLimited):  # address a spent its three: any target is refused
        chat.identity.connect("a2", {"name": "owner", "password": "x"}, address="198.51.100.1")
    with pytest.raises(BadPassword):  # no password: no check, nothing spent
        chat.rooms.join_room("b", {"room": "#vault"})
    assert chat.refused == ["password_target", "password_target", "password_address"]
    chat.clock_.now += 30  # a slot of the room's budget is back
    assert chat.rooms.join_room("b", {"room": "#vault", "password": "right"})["room"][
        "members"] == 2
    chat.rooms.join_room("b", {"room": "#vault", "password": "wrong"})  # a member: no check


def test_signing_in_with_a_password_spends_the_names_budget(make_chat):
    chat = make_chat(password_target_rate=RateLimit(2, 60.0))
    first = connect(chat, "s1", {"name": "alice", "password": "secret"})  # no check
    for sid in ("s2", "s3"):
        with pytest.raises(BadPassword):
            chat.identity.connect(sid, {"name": "alice", "password": "guess"}, address=sid)
    with pytest.raises(RateLimited):
        chat.identity.connect("s4", {"name": "alice", "password": "secret"}, address="s4")
    assert connect(chat, "s5", {"token": first.token}).user.name == "alice"  # no check
    connect(chat, "s6", {"name": "bob", "password": "pw"})  # another name, another budget
    connect(chat, "s7", {"name": "bob", "password": "pw"})


def test_budgets_off_refuse_nothing_and_full_buckets_are_pruned(make_chat):
    chat = make_chat(event_rate=None, room_rate=None, password_rate=None,
                     password_target_rate=None)
    connect(chat, "s1", {"name": "alice"})
    for i in range(50):
        chat.charge_event("s1")
        chat.rooms.join_room("s1", {"room": f"#r{i}"})
    assert chat.refused == []
    limited = make_chat(event_rate=RateLimit(5, 5.0))
    connect(limited, "s1", {"name": "alice"})
    limited.charge_event("s1")
    assert limited.budgets.events.buckets
    limited.clock_.now += 2
    limited.budgets.prune()
    assert not limited.budgets.events.buckets
