"""Presence at scale without a server (docs/protocol.md §7): who is told of whom, the
sorted index behind `listUsers`, and when `onlineCount` goes out."""

import random

from support.effects import sent

from chat_server.domain.effects import lobby, user_target, watch_target
from chat_server.domain.models import User
from chat_server.domain.presence import Connection, Presence
from chat_server.domain.watching import dm_peers


def live(chat, sid, auth=None):
    conn = chat.identity.connect(sid, auth)
    chat.live.go_live(sid)
    return conn


def emits(chat, event=None):
    return sent(chat.published, event)


def test_dm_peers_are_the_other_party_of_each_dm():
    assert dm_peers("bob", ["lobby", "#r", "dm:alice:bob", "dm:bob:carol", "dm:bob:bob"]) \
        == ["alice", "carol"]


def test_users_page_matches_a_sort_of_everyone():
    """The bisected index gives what sorting everyone online would, for random names,
    prefixes, `after` values and departures."""
    rng = random.Random(7)
    presence = Presence()
    keys = {"".join(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(80)}
    for n, key in enumerate(sorted(keys)):
        presence.add(Connection(f"s{n}", User(n, key.upper(), key, False), "t", 0.0))
    for sid in rng.sample(sorted(presence.by_sid), 20):
        presence.remove(sid)
    online = sorted(presence.by_user)
    for _ in range(300):
        prefix = "".join(rng.choice("abc") for _ in range(rng.randint(0, 2)))
        after = rng.choice([None, *online, "b", "zz"])
        limit = rng.randint(1, 10)
        expected = [k for k in online if k.startswith(prefix)
                    and (after is None or k > after)][:limit]
        got = [u["name"].lower() for u in presence.users_page(prefix, after, limit)]
        assert got == expected, (prefix, after, limit)


def test_below_the_limit_presence_goes_to_everyone(make_chat):
    chat = make_chat(presence_limit=2)
    live(chat, "s1", {"name": "ann"})
    live(chat, "s2", {"name": "bob"})
    (added,) = [e for e in emits(chat, "addChat") if e.data["name"] == "bob"]
    assert added.to == [lobby()] and added.skip == ["s2"]


def test_above_the_limit_presence_goes_to_watchers_and_dm_peers(make_chat):
    chat = make_chat(presence_limit=2)
    live(chat, "s1", {"name": "ann"})
    bob = live(chat, "s2", {"name": "bob"})
    chat.sending.send_message("s1", {"content": "hi", "destId": "bob"})
    live(chat, "s3", {"name": "cy"})
    (cy_added,) = [e for e in emits(chat, "addChat") if e.data["sid"] == "s3"]
    assert cy_added.to == [watch_target("cy")]  # three online: above the limit
    chat.identity.disconnect("s2")  # two left: at the limit, v1
    assert [e.to for e in emits(chat, "userLeft")] == [[lobby()]]
    live(chat, "s4", {"token": bob.token})
    (bob_added,) = [e for e in emits(chat, "addChat") if e.data["sid"] == "s4"]
    assert bob_added.to == [watch_target("bob"), user_target("ann")]
    assert bob_added.skip == ["s4"]


def test_a_departure_above_the_limit_reaches_dm_peers(make_chat):
    chat = make_chat(presence_limit=1)
    live(chat, "s1", {"name": "ann"})
    bob = live(chat, "s2", {"name": "bob"})
    chat.sending.send_message("s2", {"content": "hi", "destId": "ann"})
    live(chat, "s3", {"name": "cy"})
    chat.published.clear()
    chat.identity.disconnect("s2")
    (left,) = emits(chat, "userLeft")
    assert left.data == {"sid": "s2", "name": bob.user.name}
    assert left.to == [watch_target("bob"), user_target("ann")]


def test_welcome_above_the_limit_lists_only_online_dm_peers(make_chat):
    chat = make_chat(presence_limit=1)
    live(chat, "s1", {"name": "ann"})
    live(chat, "s2", {"name": "bob"})
    chat.sending.send_message("s2", {"content": "hi", "destId": "ann"})
    token = chat.presence.get("s2").token
    chat.identity.disconnect("s2")
    live(chat, "s3", {"name": "cy"})
    chat.published.clear()
    live(chat, "s4", {"token": token})
    (welcome,) = emits(chat, "welcome")
    assert welcome.data["usersTruncated"] is True and welcome.data["online"] == 3
    assert welcome.data["users"] == [{"name": "ann", "sids": ["s1"]}]


def test_online_count_only_above_the_limit_when_it_changed(make_chat):
    chat = make_chat(presence_limit=2)
    watching = chat.watching
    live(chat, "s1", {"name": "ann"})
    live(chat, "s2", {"name": "bob"})
    assert watching.online_count() == []
    live(chat, "s3", {"name": "cy"})
    (count,) = watching.online_count()
    assert count.data == {"online": 3} and count.to == [lobby()] and count.local
    assert watching.online_count() == []  # unchanged
    live(chat, "s4", {"name": "dee"})
    assert watching.online_count()[0].data == {"online": 4}
    chat.identity.disconnect("s4")
    chat.identity.disconnect("s3")
    assert watching.online_count()[0].data == {"online": 2}  # once more, back at the limit
    assert watching.online_count() == []
