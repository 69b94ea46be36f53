"""Several nodes on real Redis and PostgreSQL: clients spread over nodes cannot tell."""

import time

import pytest
import redis
from support.actions import join, send, send_to, send_while_store_is_locked
from support.checks import err, eventually, ok, user_entry
from support.client import ChatClient, ConnectRefused
from support.names import dm_key, uname, uroom

pytestmark = pytest.mark.scale


@pytest.fixture
def on(client_factory):
    """on(node, name=None, transport=..., **auth) -> a client connected to that node."""

    def connect(node, name=None, transport="websocket", **auth):
        client = client_factory()
        if name is not None:
            auth["name"] = name
        client.connect(node.url, auth=auth or None, transport=transport)
        return client

    return connect


def test_lobby_dm_room_and_typing_cross_nodes(cluster, on):
    """Lobby, direct messages (by name and by sid, to every tab), rooms and typing reach
    clients on the other node exactly as on one node."""
    n1, n2 = cluster(2)
    alice = on(n1, uname("alice"))
    bob = on(n2, uname("bob"), transport="polling")
    bob_tab2 = on(n1, token=bob.token)

    hello = send(alice, "hello everyone")
    for client in (bob, bob_tab2):
        got = client.wait_for("reply", lambda m: m["id"] == hello["id"])
        assert got["text"] == "hello everyone"

    dm = send_to(alice, bob.name, "psst")
    assert dm["conversation"] == dm_key(alice.name, bob.name)
    for client in (bob, bob_tab2, alice):
        client.wait_for("reply", lambda m: m["id"] == dm["id"])
    by_sid = send_to(bob, alice.sid, "by sid")
    alice.wait_for("reply", lambda m: m["id"] == by_sid["id"])

    room = uroom("team")
    join(alice, room)
    joined = join(bob, room.upper())
    assert sorted(joined["members"]) == sorted([alice.name, bob.name])
    alice.wait_for("roomEvent", lambda e: e["name"] == bob.name and e["event"] == "joined")
    in_room = send_to(alice, room, "in the room")
    for client in (bob, bob_tab2):
        client.wait_for("reply", lambda m: m["id"] == in_room["id"])

    ok(bob.call("typing", {"to": alice.name, "typing": True}))
    assert alice.wait_for("typing")["from"] == bob.name
    bob_tab2.assert_no_event("typing")  # never the sender's own tabs

    users = ok(alice.call("listUsers"))["users"]
    assert sorted(user_entry(users, bob.name)["sids"]) == sorted([bob.sid, bob_tab2.sid])


def test_presence_spans_nodes(cluster, on):
    """addChat for each new tab anywhere; userLeft only when the user's last tab, on
    whichever node, is gone."""
    n1, n2 = cluster(2)
    watcher = on(n1, uname("watch"))
    carol = on(n2, uname("carol"))
    watcher.wait_for("addChat", lambda e: e["sid"] == carol.sid)
    carol_tab2 = on(n1, token=carol.token)
    watcher.wait_for("addChat", lambda e: e["sid"] == carol_tab2.sid)
    welcome_users = carol_tab2.welcome["users"]
    assert sorted(user_entry(welcome_users, carol.name)["sids"]) == sorted(
        [carol.sid, carol_tab2.sid])
    carol.disconnect()
    watcher.assert_no_event("userLeft", lambda e: e["name"] == carol.name, wait=0.5)
    carol_tab2.disconnect()
    watcher.wait_for("userLeft", lambda e: e["name"] == carol.name)


def test_close_room_and_leave_cross_nodes(cluster, on):
    n1, n2 = cluster(2)
    owner = on(n1, uname("own"))
    member = on(n2, uname("mem"))
    room = uroom("closing")
    join(owner, room)
    join(member, room)
    err(member.call("closeRoom", {"room": room}), "forbidden")
    ok(owner.call("closeRoom", {"room": room}))
    member.wait_for("roomEvent", lambda e: e["event"] == "closed")
    err(member.call("sendMessage", {"content": "x", "destId": room}), "not_found")
    # The member's socket left the Socket.IO room on its own node: a new room of the same
    # name must not leak to it.
    join(owner, room)
    secret = send_to(owner, room, "new room, new members")
    member.assert_no_event("reply", lambda m: m["id"] == secret["id"])


def test_ids_grow_across_nodes_and_client_id_is_idempotent_anywhere(cluster, on):
    n1, n2 = cluster(2)
    a1 = on(n1, uname("ids"))
    a2 = on(n2, token=a1.token)
    ids = []
    for i in range(10):
        ids.append(send(a1 if i % 2 else a2, f"m{i}")["id"])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    first = send(a1, "once", clientId="same-everywhere")
    again = send(a2, "once", clientId="same-everywhere")
    assert again == first
    time.sleep(0.3)
    assert len(a1.events("reply", lambda m: m["text"] == "once")) == 1


def test_reconnect_to_other_node_replays_what_was_missed(cluster, on):
    n1, n2 = cluster(2)
    reader = on(n1, uname("reader"))
    writer = on(n2, uname("writer"))
    room = uroom("replay")
    join(reader, room)
    join(writer, room)
    seen = send(writer, "seen")["id"]
    reader.wait_for("reply", lambda m: m["id"] == seen)
    token = reader.token
    reader.disconnect()
    missed = [send_to(writer, room, f"missed {i}")["id"] for i in range(3)]
    missed.append(send_to(writer, reader.name, "dm while away")["id"])
    back = on(n2, token=token, lastId=seen)
    assert back.welcome["replayTruncated"] is False
    eventually(lambda: sorted({m["id"] for m in back.events("reply")}) == missed
               or (_ for _ in ()).throw(AssertionError(back.events("reply"))))


def test_killed_node_is_reaped_and_its_clients_resume_elsewhere(cluster, on):
    """SIGKILL one node: survivors drop its users from presence within the stated bound
    (PRESENCE_TTL 3 s here, heartbeats every 1 s) and its clients reconnect to the other
    node with token and lastId, missing nothing acked."""
    n1, n2 = cluster(2)
    survivor = on(n1, uname("surv"))
    victim = on(n2, uname("victim"))
    guest = on(n2)
    last = send(victim, "last words")["id"]
    survivor.wait_for("reply", lambda m: m["id"] == last)
    n2.kill()
    killed_at = time.monotonic()
    survivor.wait_for("userLeft", lambda e: e["name"] == victim.name, timeout=10)
    survivor.wait_for("userLeft", lambda e: e["name"] == guest.name, timeout=10)
    assert time.monotonic() - killed_at < 3 + 1 + 2  # ttl + one beat + slack
    users = ok(survivor.call("listUsers"))["users"]
    assert user_entry(users, victim.name) is None
    after = send(survivor, "while you were away")["id"]
    back = on(n1, token=victim.token, lastId=last)
    back.wait_for("reply", lambda m: m["id"] == after)
    # A guest's identity ends with its last connection, node death included.
    refused = ChatClient()
    with pytest.raises(ConnectRefused):
        refused.connect(n1.url, auth={"token": guest.token})
    refused.disconnect()


def test_redis_restart_keeps_acked_messages_and_recovers(cluster, on):
    """Redis goes away: sends are still stored and acked (PostgreSQL first), history has
    them; live delivery between nodes resumes by itself once Redis is back."""
    n1, n2 = cluster(2)
    alice = on(n1, uname("alice"))
    bob = on(n2, uname("bob"))
    cluster.redis.stop()
    try:
        during = ok(alice.call("message", "while redis is down", timeout=15))["message"]
        assert n1.get("/healthz").json()["redis"] == "unavailable"
    finally:
        cluster.redis.start()
    history = ok(bob.call("history", {"conversation": "lobby"}))["messages"]
    assert during["id"] in [m["id"] for m in history]

    def delivered():
        probe = send(alice, "after the restart")
        bob.wait_for("reply", lambda m: m["id"] == probe["id"], timeout=2)
        return True

    assert eventually(delivered, timeout=30)
    assert n1.get("/healthz").json()["redis"] == "ok"


def test_two_nodes_behind_nginx(cluster, on):
    """nginx with deploy/nginx.conf: long-polling sessions stay on their node through the
    chat_node cookie, clients land on both nodes, and they chat as on one server."""
    from support import services

    n1, n2 = cluster(2)
    proxy = services.NginxServer([n1.port, n2.port]).start()
    try:
        clients = [on(proxy, uname(f"p{i}"), transport="polling" if i % 2 else "websocket")
                   for i in range(6)]
        nodes = {c.sio.eio.http.cookies.get("chat_node") for c in clients
                 if c.sio.eio.http is not None}
        assert nodes <= {"node1", "node2", None}
        message = send(clients[0], "through nginx")
        for c in clients:
            c.wait_for("reply", lambda m: m["id"] == message["id"])
        dm = send_to(clients[1], clients[4].name, "direct via nginx")
        clients[4].wait_for("reply", lambda m: m["id"] == dm["id"])
        served = redis.Redis.from_url(cluster.redis.url)
        per_node = {n: served.scard(f"chat:presence:node:{n}") for n in ("node1", "node2")}
        served.close()
        assert per_node["node1"] > 0 and per_node["node2"] > 0, per_node
    finally:
        proxy.cleanup()


@pytest.mark.alone  # times round trips while PostgreSQL holds a lock
def test_postgres_waits_do_not_block_the_hub(cluster, on):
    """A send stuck behind a table lock held from outside waits in its own greenlet
    (psycopg2 is cooperative): other clients' round trips stay fast, and after the lock
    timeout the sender gets `unavailable` and nobody sees the message."""
    import psycopg2

    (node,) = cluster(1)
    alice, bob = on(node, uname("alice")), on(node, uname("bob"), transport="polling")
    send(alice, "warm up")
    locker = psycopg2.connect(cluster.database_url)
    locker.cursor().execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    ack, waited, round_trips = send_while_store_is_locked(alice, bob, locker.close)
    err(ack, "unavailable")
    assert waited > 2 and len(round_trips) >= 10
    assert max(round_trips) < waited / 2
    bob.assert_no_event("reply", lambda m: m["text"] == "while locked")
    after = send(alice, "after the lock")
    bob.wait_for("reply", lambda m: m["id"] == after["id"])


def test_readyz_turns_unready_when_the_store_is_unreachable(backing_services, server_factory):
    """/readyz answers 503 when PostgreSQL is gone, while /healthz still says the process
    is alive; both say which dependency failed."""
    from support import services

    redis_server, _ = backing_services
    own = services.PostgresServer().start()
    try:
        node = server_factory(env={"DATABASE_URL": own.create_database(),
                                   "REDIS_URL": redis_server.url, "NODE_NAME": "lonely"})
        assert node.get("/readyz").status_code == 200
        own.kill()  # returns when no backend is left to answer the node's pooled connections
        ready = node.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["store"] == "unavailable" and ready.json()["redis"] == "ok"
        health = node.get("/healthz")
        assert health.status_code == 200 and health.json()["store"] == "unavailable"
    finally:
        own.cleanup()


def test_rate_limit_is_shared_by_a_users_tabs_on_all_nodes(cluster, on):
    """Opening tabs on more nodes does not multiply a user's sends."""
    n1, n2 = cluster(2, env={"RATE_LIMIT": "4/60"})
    tab1 = on(n1, uname("limited"))
    tab2 = on(n2, token=tab1.token)
    results = [(tab1 if i % 2 else tab2).call("message", f"m{i}") for i in range(6)]
    assert [r["ok"] for r in results] == [True] * 4 + [False] * 2
    err(results[-1], "rate_limited")
    other = on(n2, uname("other"))
    ok(other.call("message", "someone else has their own budget"))


def test_a_redis_outage_keeps_each_node_chatting_and_catches_up(cluster, on):
    """docs/protocol.md §11. Redis stops: on each node users keep chatting live (acks,
    storage, local delivery), a new connection still signs in, /readyz stays 200 and names
    what is degraded, and users of the other node hear the messages from the store. When
    Redis is back, nothing was lost or doubled and each client saw one id order."""
    n1, n2 = cluster(2, env={"METRICS_TOKEN": "outage-metrics"})
    alice = on(n1, uname("alice"))
    ally = on(n1, uname("ally"), transport="polling")
    bob = on(n2, uname("bob"))
    marks = {c: c.mark() for c in (alice, ally, bob)}
    cluster.redis.stop()
    try:
        sent = [ok(alice.call("message", f"outage {i}", timeout=15))["message"]
                for i in range(3)]
        sent.append(ok(bob.call("message", "from the other node", timeout=15))["message"])
        for m in sent[:3]:
            ally.wait_for("reply", lambda p, m=m: p["id"] == m["id"], timeout=5)
        late = on(n1, uname("late"))
        assert late.welcome["online"] >= 1
        ready = n1.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["redis"] == "unavailable" and ready.json()["degraded"]
        for client in (alice, ally, bob):  # the other node's messages, from the store
            for m in sent:
                client.wait_for("reply", lambda p, m=m: p["id"] == m["id"], timeout=10)
    finally:
        cluster.redis.start()
    after = eventually(lambda: send(alice, "after the outage"), timeout=30)
    for client in (alice, ally, bob):
        client.wait_for("reply", lambda p: p["id"] == after["id"], timeout=10)
        ids = [p["id"] for p in client.events("reply", since=marks[client])
               if p["conversation"] == "lobby"]
        assert ids == sorted(ids) and len(ids) == len(set(ids)), ids
        assert {m["id"] for m in sent} <= set(ids)
    for node in (n1, n2):  # each heard the other's messages of the outage from the store
        text = node.get("/metrics", headers={"Authorization": "Bearer outage-metrics"}).text
        caught = [line for line in text.splitlines()
                  if line.startswith("chat_catch_up_messages_total ")]
        assert caught and float(caught[0].split()[1]) >= 1, caught


def test_connecting_while_another_node_sends_gets_each_once_in_order(cluster, on):
    """docs/protocol.md §1.9, §11: a client resuming with lastId on one node while a
    sender on another pipelines into their room gets every message once, in id order."""
    import threading

    n1, n2 = cluster(2, env={"EVENT_WINDOW": "1000", "EVENT_RATE": "off"})
    room = uroom("busy")
    sender = on(n1, uname("busy"))
    reader = on(n2, uname("reader"))
    join(sender, room)
    join(reader, room)
    start = send_to(sender, room, "start")["id"]
    token = reader.token
    reader.disconnect()
    for round_ in range(3):
        acks, done = [], threading.Event()

        def pipeline(round_=round_, acks=acks, done=done):
            acks.extend(sender.call_many("sendMessage", [
                {"content": f"flow {round_}.{i}", "destId": room} for i in range(80)]))
            done.set()

        threading.Thread(target=pipeline, daemon=True).start()
        time.sleep(0.01 * round_)
        back = on(n2, token=token, lastId=start)
        assert done.wait(30)
        ids = sorted(ok(a)["message"]["id"] for a in acks)
        back.wait_for("reply", lambda m, last=ids[-1]: m["id"] == last, timeout=10)
        got = [m["id"] for m in back.events("reply") if m["conversation"] == room]
        assert got == sorted(set(got)) and set(ids) <= set(got), (round_, got[:12])
        start = ids[-1]
        token = back.token
        back.disconnect()
