"""docs/protocol.md §7, presence at scale, against servers started with PRESENCE_LIMIT=3.

At most 3 users online, presence is v1; above it `welcome.users` holds only watched
users, `addChat`/`userLeft` reach only watchers (DM peers, `watchUsers`), every
connection hears `onlineCount`, and rooms above 3 members get no joined/left/typing.
Each test has its own server, so the number online is the test's own.
"""

import itertools

import pytest
from support.actions import join
from support.checks import err, ok, user_entry
from support.names import uname, uroom

LIMIT = 3


@pytest.fixture
def crowd(server_factory, connect):
    """A server with PRESENCE_LIMIT=3 and a helper that connects named users to it."""
    srv = server_factory(env={"PRESENCE_LIMIT": str(LIMIT), "RATE_LIMIT": "off"})

    def people(*prefixes):
        return [connect(srv.url, auth={"name": uname(p)}) for p in prefixes]

    people.url = srv.url
    people.connect = lambda auth=None: connect(srv.url, auth=auth)
    return people


def dm(sender, receiver, text="hi"):
    return ok(sender.call("sendMessage", {"content": text, "destId": receiver.name}))


def names(users):
    return sorted(u["name"] for u in users)


def test_at_the_limit_presence_is_v1(crowd):
    """With 3 online, welcome lists all of them and addChat/userLeft go to everyone."""
    a, b = crowd("a", "b")
    c = crowd("c")[0]
    assert c.welcome["online"] == 3 and "usersTruncated" not in c.welcome
    assert names(c.welcome["users"]) == sorted([a.name, b.name, c.name])
    a.wait_for("addChat", lambda p: p["sid"] == c.sid)
    c.disconnect()
    a.wait_for("userLeft", lambda p: p["name"] == c.name)


def test_above_the_limit_welcome_lists_only_watched_users(crowd):
    """The fourth user's welcome says it is truncated, counts everyone, and lists only
    its DM peers who are online."""
    peer, other, _ = crowd("peer", "other", "third")
    late = crowd("late")[0]
    assert late.welcome["online"] == 4 and late.welcome["usersTruncated"] is True
    assert late.welcome["users"] == []
    dm(late, peer)
    late.disconnect()
    again = crowd.connect({"token": late.token})
    assert again.welcome["usersTruncated"] is True and again.welcome["online"] == 4
    assert names(again.welcome["users"]) == [peer.name]
    assert user_entry(again.welcome["users"], peer.name)["sids"] == [peer.sid]
    assert user_entry(again.welcome["users"], other.name) is None


def test_above_the_limit_arrivals_reach_only_watchers(crowd):
    """Above the limit a DM peer (every tab) and a watchUsers watcher hear of an arrival
    and of the departure; a bystander hears of neither."""
    star, fan, bystander, filler = crowd("star", "fan", "by", "fill")
    dm(star, fan)
    ok(bystander.call("watchUsers", {"names": [filler.name]}))
    watcher = crowd.connect()
    watched = ok(watcher.call("watchUsers", {"names": [star.name]}))["users"]
    assert watched == [{"name": star.name, "sids": [star.sid]}]
    fan_tab = crowd.connect({"token": fan.token})
    star.disconnect()
    for c in (fan, fan_tab, watcher):
        c.wait_for("userLeft", lambda p: p["name"] == star.name)
    star_back = crowd.connect({"token": star.token})
    for c in (fan, fan_tab, watcher):
        added = c.wait_for("addChat", lambda p: p["name"] == star.name)
        assert added == {"sid": star_back.sid, "name": star_back.name}
    bystander.assert_no_event("addChat", lambda p: p["name"] == star.name)
    bystander.assert_no_event("userLeft", lambda p: p["name"] == star.name)
    filler.assert_no_event("addChat", lambda p: p["name"] == star.name)


def test_watch_users_replaces_the_list_and_answers_who_is_online(crowd):
    """Six online, so that two leaving, in either order, leave it above the limit."""
    a, b, c, d, _, _ = crowd("a", "b", "c", "d", "e", "f")
    answer = ok(d.call("watchUsers", {"names": [a.name.upper(), b.name, "nobody-here",
                                                 b.name]}))
    assert names(answer["users"]) == sorted([a.name, b.name])
    assert ok(d.call("watchUsers", {"names": [c.name]}))["users"][0]["name"] == c.name
    a.disconnect()
    c.disconnect()
    d.wait_for("userLeft", lambda p: p["name"] == c.name)
    d.assert_no_event("userLeft", lambda p: p["name"] == a.name)


@pytest.mark.parametrize("payload", [
    None, [], {}, {"names": "alice"}, {"names": [5]}, {"names": ["x" * 65]},
    {"names": [f"user{i}" for i in range(501)]},
])
def test_watch_users_with_a_bad_payload_is_invalid(crowd, payload):
    (a,) = crowd("a")
    err(a.call("watchUsers", payload), "invalid_payload")


def test_watch_users_takes_500_names(crowd):
    (a,) = crowd("a")
    assert ok(a.call("watchUsers", {"names": [f"user{i}" for i in range(500)]}))["users"] == []


def test_online_count_above_the_limit_at_most_every_five_seconds(crowd):
    """Above the limit every connection hears onlineCount when the number changed, at most
    once every 5 s; back at the limit it hears the count once more, then nothing."""
    first, *_ = crowd("a", "b", "c", "d")
    got = first.wait_for("onlineCount", timeout=7)
    assert got == {"online": 4}
    crowd("e")
    assert first.wait_for_n("onlineCount", 2, timeout=7)[1] == {"online": 5}
    stamps = first.event_times("onlineCount")
    assert all(later - earlier >= 4.5 for earlier, later in itertools.pairwise(stamps))
    first.assert_no_event("onlineCount", since=first.mark(), wait=5.5)


def test_rooms_above_the_limit_get_no_joined_left_or_typing(crowd):
    """A room of 4 members (limit 3) gets no roomEvent joined/left and no typing; its
    listRooms entry counts the members. Closing it is still told."""
    owner, m2, m3 = crowd("own", "m2", "m3")
    room = uroom("big")
    for c in (owner, m2, m3):
        join(c, room)
    owner.wait_for("roomEvent", lambda p: p["event"] == "joined" and p["name"] == m3.name)
    ok(m3.call("typing", {"to": room, "typing": True}))
    owner.wait_for("typing", lambda p: p["from"] == m3.name)
    (m4,) = crowd("m4")
    mark = owner.mark()
    join(m4, room)
    ok(m4.call("typing", {"to": room, "typing": True}))
    owner.assert_no_event("roomEvent", since=mark)
    owner.assert_no_event("typing", since=mark)
    listed = [r for r in ok(owner.call("listRooms"))["rooms"] if r["room"] == room]
    assert listed[0]["members"] == 4
    mark = owner.mark()
    ok(m2.call("leaveRoom", {"room": room}))
    owner.assert_no_event("roomEvent", since=mark)
    ok(m4.call("sendMessage", {"content": "still heard", "destId": room}))
    owner.wait_for("reply", lambda p: p["text"] == "still heard")
    ok(owner.call("closeRoom", {"room": room}))
    m4.wait_for("roomEvent", lambda p: p["event"] == "closed")


def test_list_users_pages_above_the_limit(crowd):
    """listUsers still pages through everyone online, whatever the limit."""
    people = crowd("pa", "pb", "pc", "pd", "pe")
    seen, after = [], None
    while True:
        answer = ok(people[0].call("listUsers", {"limit": 2, **({"after": after} if after
                                                                 else {})}))
        seen += [u["name"] for u in answer["users"]]
        after = answer.get("next")
        if after is None:
            break
    assert sorted(seen, key=str.casefold) == seen
    assert set(seen) == {p.name for p in people}


def test_online_count_falls_back_to_the_limit_once(crowd):
    first, *_, last = crowd("a", "b", "c", "d")
    first.wait_for("onlineCount", lambda p: p == {"online": 4}, timeout=7)
    last.disconnect()
    first.wait_for("onlineCount", lambda p: p == {"online": 3}, timeout=7)
    first.assert_no_event("onlineCount", since=first.mark(), wait=5.5)
