"""docs/protocol.md §7 on two nodes sharing Redis: the number online, the pages of
`listUsers` and the watchers of a user span the nodes (PRESENCE_LIMIT=2)."""

import pytest
from support.checks import ok
from support.names import uname

pytestmark = pytest.mark.scale


@pytest.fixture
def nodes(cluster, client_factory):
    """Two nodes with PRESENCE_LIMIT=2 and `on(node, name=None, **auth)` to connect."""
    n1, n2 = cluster(2, env={"PRESENCE_LIMIT": "2"})

    def on(node, name=None, transport="websocket", **auth):
        client = client_factory()
        if name is not None:
            auth["name"] = name
        client.connect(node.url, auth=auth or None, transport=transport)
        return client

    return n1, n2, on


def test_watchers_and_dm_peers_hear_across_nodes_and_bystanders_do_not(nodes):
    n1, n2, on = nodes
    ann = on(n1, uname("ann"))
    bob = on(n2, uname("bob"), transport="polling")
    ok(ann.call("sendMessage", {"content": "hi", "destId": bob.name}))
    bystander = on(n1, uname("by"))
    watcher = on(n2, uname("watch"))
    assert watcher.welcome["online"] == 4 and watcher.welcome["usersTruncated"] is True
    star_name = uname("star")
    assert ok(watcher.call("watchUsers", {"names": [star_name]}))["users"] == []
    star = on(n1, star_name)
    assert watcher.wait_for("addChat", lambda p: p["name"] == star.name)["sid"] == star.sid
    mark = ann.mark()
    bob.disconnect()
    ann.wait_for("userLeft", lambda p: p["name"] == bob.name, since=mark)
    bob_back = on(n1, token=bob.token)
    added = ann.wait_for("addChat", lambda p: p["name"] == bob.name, since=mark)
    assert added["sid"] == bob_back.sid
    assert [u["name"] for u in bob_back.welcome["users"]] == [ann.name]
    for event in ("addChat", "userLeft"):
        bystander.assert_no_event(event, lambda p: p["name"] in (star.name, bob.name))


def test_list_users_pages_and_counts_over_both_nodes(nodes):
    n1, n2, on = nodes
    people = [on(n1 if i % 2 else n2, uname(f"p{i}")) for i in range(5)]
    assert people[-1].welcome["online"] == 5
    seen, after = [], None
    while True:
        page = {"limit": 2} if after is None else {"limit": 2, "after": after}
        answer = ok(people[0].call("listUsers", page))
        seen += [u["name"] for u in answer["users"]]
        after = answer.get("next")
        if after is None:
            break
    assert seen == sorted((p.name for p in people), key=str.casefold)
    found = ok(people[1].call("listUsers", {"prefix": people[3].name[:4].upper()}))["users"]
    assert people[3].name in [u["name"] for u in found]
    for client in (people[0], people[1]):  # one on each node
        assert client.wait_for("onlineCount", timeout=7) == {"online": 5}
