"""docs/protocol.md §1.8 and §7: listUsers (paged), addChat per new sid, userLeft when the
last tab closes, welcome.online."""

import pytest
from support.checks import assert_has, err, ok, user_entry
from support.names import uid, uname


def users_of(client):
    users = ok(client.call("listUsers"))["users"]
    for u in users:
        assert set(u) >= {"name", "sids"} and isinstance(u["sids"], list), u
    return users


def test_list_users_shows_online_users_with_their_sids(server, connect):
    """listUsers lists each online user once with the sids of all its connections."""
    a1 = connect(server.url, auth={"name": uname("a")})
    a2 = connect(server.url, auth={"token": a1.token})
    g = connect(server.url)
    users = users_of(g)
    assert set(user_entry(users, a1.name)["sids"]) == {a1.sid, a2.sid}
    assert user_entry(users, g.name)["sids"] == [g.sid]
    assert len([u for u in users if u["name"].lower() == a1.name.lower()]) == 1


def test_add_chat_per_tab_and_user_left_only_after_the_last(server, connect):
    """Each new tab is announced with addChat; userLeft comes only when the last tab closes."""
    watcher = connect(server.url)
    t1 = connect(server.url, auth={"name": uname("multi")})
    t2 = connect(server.url, auth={"token": t1.token})
    assert_has(watcher.wait_for("addChat", lambda p: p.get("sid") == t1.sid),
               {"sid": t1.sid, "name": t1.name})
    assert_has(watcher.wait_for("addChat", lambda p: p.get("sid") == t2.sid),
               {"sid": t2.sid, "name": t1.name})
    t1.disconnect()
    watcher.assert_no_event("userLeft", lambda p: p.get("name") == t1.name)
    assert user_entry(users_of(watcher), t1.name)["sids"] == [t2.sid]
    t2.disconnect()
    left = watcher.wait_for("userLeft", lambda p: p.get("name") == t1.name)
    assert set(left) >= {"sid", "name"} and left["sid"] in (t1.sid, t2.sid)
    assert user_entry(users_of(watcher), t1.name) is None
    assert len(watcher.events("userLeft", lambda p: p.get("name") == t1.name)) == 1


def test_guest_leaving_is_announced(server, connect):
    """A guest's departure is announced to all with userLeft {sid, name}."""
    watcher = connect(server.url)
    g = connect(server.url)
    g.disconnect()
    assert_has(watcher.wait_for("userLeft", lambda p: p.get("name") == g.name),
               {"sid": g.sid, "name": g.name})
    assert user_entry(users_of(watcher), g.name) is None


def test_reconnect_is_announced_again(server, connect):
    """A user coming back with its token is announced again with its new sid."""
    watcher = connect(server.url)
    a = connect(server.url, auth={"name": uname("again")})
    a.disconnect()
    watcher.wait_for("userLeft", lambda p: p.get("name") == a.name)
    b = connect(server.url, auth={"token": a.token})
    assert_has(watcher.wait_for("addChat", lambda p: p.get("sid") == b.sid),
               {"sid": b.sid, "name": a.name})
    assert user_entry(users_of(watcher), a.name)["sids"] == [b.sid]


def test_list_users_pages_by_case_folded_name_with_a_prefix(server, connect):
    """§7: sorted by case-folded name; `prefix` (any case) narrows, `after` and `limit`
    page, and `next` is the `after` of the next page while more remain."""
    tag = uid(8)
    names = [f"Pg{tag}-{letter}" for letter in "cAdBe"]
    clients = [connect(server.url, auth={"name": name}) for name in names]
    seen, after = [], None
    while True:
        payload = {"prefix": f"pg{tag.upper()}", "limit": 2}
        if after is not None:
            payload["after"] = after
        page = ok(clients[0].call("listUsers", payload))
        assert len(page["users"]) <= 2
        seen += [u["name"] for u in page["users"]]
        if "next" not in page:
            break
        assert page["next"] == page["users"][-1]["name"]
        after = page["next"]
    assert seen == sorted(names, key=str.casefold)
    everyone = ok(clients[0].call("listUsers", {"prefix": f"pg{tag}"}))
    assert [u["name"] for u in everyone["users"]] == seen and "next" not in everyone


@pytest.mark.parametrize("payload", [{"limit": 0}, {"limit": 501}, {"limit": "2"},
                                     {"prefix": 5}, {"after": ["x"]}, {"prefix": "x" * 65},
                                     "abc", 7])
def test_list_users_with_a_bad_page_is_invalid(server, connect, payload):
    err(connect(server.url).call("listUsers", payload), "invalid_payload")


def test_welcome_counts_who_is_online(server, connect):
    """§7: `welcome.online` is how many users are online, this one included."""
    first = connect(server.url, auth={"name": uname("count")})
    assert isinstance(first.welcome["online"], int)
    assert first.welcome["online"] == len(first.welcome["users"]) >= 1
