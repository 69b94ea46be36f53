"""Messages that change, read state and search (docs/protocol.md §8-9, §11) on two nodes
sharing PostgreSQL and Redis: an edit made on one node reaches a client on the other as
`update`, in one id order with the messages; replay after lastId interleaves them; search
(PostgreSQL's tsvector) and the unread counts in `welcome` work there as on SQLite."""

import json

import pytest
from support.actions import join, send_to
from support.checks import ok
from support.names import uid, uname, uroom

pytestmark = pytest.mark.scale


def emit_all(client, calls, timeout=20):
    """Emit several (event, payload) at once; the acks, in the order sent."""
    return client.call_each(calls, timeout)


def stream(client, conversation, since=0):
    return [(name, payload["id"]) for name, payload in client.all_events(since)
            if name in ("reply", "update") and isinstance(payload, dict)
            and payload.get("conversation") == conversation]


def test_changes_search_and_unread_across_two_nodes(cluster, client_factory):
    n1, n2 = cluster(2)

    def on(node, transport="websocket", **auth):
        client = client_factory()
        client.connect(node.url, auth=auth, transport=transport, timeout=15)
        return client

    alice = on(n1, name=uname("alice"))
    bob = on(n2, transport="polling", name=uname("bob"))
    carol = on(n2, name=uname("carol"))
    room = uroom("pg")
    for c in (alice, bob, carol):
        join(c, room)
    old_word, new_word, gone_word = ("w" + uid(12) for _ in range(3))
    base = send_to(alice, room, f"{old_word} base")
    bob.wait_for("reply", lambda m: m["id"] == base["id"], timeout=10)  # before the mark
    carol_token = carol.token
    carol.disconnect()
    mark = bob.mark()

    calls = []
    for i in range(8):
        text = f"m{i} @{carol.name}" if i % 2 else f"m{i} {gone_word}"
        calls += [("sendMessage", {"content": text, "destId": room}),
                  ("editMessage", {"messageId": base["id"], "text": f"{new_word} v{i}"}),
                  ("react", {"messageId": base["id"], "emoji": f"e{i}", "on": True})]
    acks = emit_all(alice, calls)
    sent = [ok(a)["message"] for a in acks[0::3]]
    changes = [ok(a)["update"] for a in acks if "update" in a]
    ids = [ok(a).get("message", a.get("update"))["id"] for a in acks]
    assert ids == sorted(ids), "one connection's sends and changes keep their order"
    gone = ok(alice.call("deleteMessage", {"messageId": sent[0]["id"]}))["update"]

    # On the other node, the messages and changes in one id order, each once.
    bob.wait_for("update", lambda u: u["id"] == gone["id"], timeout=10)
    assert stream(bob, room, mark) == sorted(
        [("reply", m["id"]) for m in sent] + [("update", u["id"]) for u in changes]
        + [("update", gone["id"])], key=lambda pair: pair[1])
    by_id = {u["id"]: u for u in bob.events("update", since=mark)}
    assert all(by_id[u["id"]] == u for u in changes)

    # Search on PostgreSQL, from the other node: new text, not the old; prefix; case;
    # deleted never.
    def search(client, query, **fields):
        return ok(client.call("search", {"query": query, **fields}))["messages"]

    found = search(bob, new_word.upper())
    assert [m["id"] for m in found] == [base["id"]]
    assert found[0]["text"] == f"{new_word} v7" and found[0]["editedAt"] == changes[-2]["ts"]
    assert search(bob, old_word) == []
    assert [m["id"] for m in search(bob, f"v7 {new_word[:6]}", conversation=room)] == [
        base["id"]]
    assert [m["id"] for m in search(bob, gone_word)] == [m["id"] for m in sent[2::2]][::-1]

    # Read state: carol comes back on the other node; replay interleaves and hides the
    # deleted text; unread counts the 8 messages left (base too), 4 of them mentioning her.
    back = on(n1, token=carol_token, lastId=base["id"])
    state = next(c for c in back.welcome["conversations"] if c["conversation"] == room)
    assert state == {"conversation": room, "lastId": sent[-1]["id"], "lastRead": None,
                     "unread": 8, "mentions": 4}
    back.wait_for("update", lambda u: u["id"] == gone["id"], timeout=10)
    replayed = stream(back, room)
    assert replayed == sorted(replayed, key=lambda pair: pair[1])
    tomb = next(m for m in back.events("reply") if m["id"] == sent[0]["id"])
    assert tomb["deleted"] is True and tomb["text"] == ""
    assert "m0 " + gone_word not in json.dumps(back.all_events())

    tab2 = on(n2, token=carol_token)
    ok(back.call("markRead", {"conversation": room, "id": sent[3]["id"]}))
    assert tab2.wait_for("readMarker", timeout=10) == {"conversation": room,
                                                       "lastRead": sent[3]["id"]}
    again = on(n2, token=carol_token)
    state = next(c for c in again.welcome["conversations"] if c["conversation"] == room)
    assert (state["lastRead"], state["unread"], state["mentions"]) == (sent[3]["id"], 4, 2)
