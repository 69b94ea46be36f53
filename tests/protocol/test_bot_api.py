"""docs/protocol.md §12: bot accounts (`python -m chat_server bot add|list|remove`) and the
HTTP API, against a real server: every endpoint and error status, idempotency with
`clientId`, rate limits with `Retry-After`, delivery to Socket.IO clients in id order,
and the OpenAPI description, checked by openapi-spec-validator and against the answers."""

import concurrent.futures
import sqlite3
import subprocess
import sys
import time

import pytest
import requests
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from support import ROOT
from support.checks import ok
from support.client import ConnectRefused
from support.names import dm_key, uid, uname, uroom
from support.server import private_server

MESSAGES = "/api/v1/messages"
JOIN = "/api/v1/rooms/join"
# Sends under RATE_LIMIT's default of 20 per 10 s, events off: the send bucket is the one
# that refuses.
limited_api_server = private_server({"EVENT_RATE": "off"})
# Tokens unused for 0.00003 days (2.6 s) expire; a bot's do not.
short_ttl_server = private_server({"TOKEN_TTL": "0.00003", "RATE_LIMIT": "off",
                                   "EVENT_RATE": "off"})


def bot_cli(srv, *args):
    return subprocess.run(
        [sys.executable, "-m", "chat_server", "bot", *args,
         "--database-url", srv.database_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60)


def add_bot(srv, prefix="bot"):
    name = uname(prefix)
    done = bot_cli(srv, "add", name)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token and "\n" not in token, done.stdout  # the token alone on stdout
    return Bot(srv, name, token)


class Bot:
    def __init__(self, srv, name, token):
        self.srv, self.name, self.token = srv, name, token
        self.http = requests.Session()

    def headers(self, extra=None):
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def post(self, path, body, **kw):
        return self.http.post(self.srv.url + path, json=body, headers=self.headers(),
                              timeout=30, **kw)

    def send(self, to, text, **fields):
        return self.post(MESSAGES, {"to": to, "text": text, **fields})

    def join(self, room, password=None):
        body = {"room": room} if password is None else {"room": room, "password": password}
        return self.post(JOIN, body)

    def history(self, **query):
        return self.http.get(self.srv.url + MESSAGES, params=query, headers=self.headers(),
                             timeout=30)


@pytest.fixture(scope="module")
def bot(server):
    return add_bot(server)


@pytest.fixture(scope="module")
def spec(server):
    r = server.get("/api/v1/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def conforms(spec, path, method, response):
    """The response matches what the OpenAPI description says of that status."""
    described = spec["paths"][path][method]["responses"][str(response.status_code)]
    if "$ref" in described:
        described = spec["components"]["responses"][described["$ref"].rsplit("/", 1)[1]]
    schema = {**described["content"]["application/json"]["schema"],
              "components": spec["components"]}
    try:
        OAS31Validator(schema).validate(response.json())
    except ValidationError as error:
        raise AssertionError(f"{method} {path} {response.status_code}: {error.message}") from None
    return response.json()


def error_of(response, status, code):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    assert "Set-Cookie" not in response.headers
    return body["error"]


# -- the description -------------------------------------------------------------------

def test_openapi_description_is_valid_openapi_3_1(spec):
    """/api/v1/openapi.json needs no token and passes a real OpenAPI 3.1 validator."""
    assert spec["openapi"].startswith("3.1")
    validate_spec(spec)
    assert set(spec["paths"]) >= {MESSAGES, JOIN}
    assert set(spec["paths"][MESSAGES]) == {"get", "post"}
    described = set(spec["paths"][MESSAGES]["post"]["responses"])
    assert described == {"201", "400", "401", "403", "404", "413", "429", "503"}


# -- sending ---------------------------------------------------------------------------

def test_post_to_the_lobby_reaches_socketio_clients(server, bot, spec, connect):
    """201 {"message": MESSAGE}, and every Socket.IO client gets it as a `reply`."""
    watcher = connect(server.url, auth={"name": uname("watch")})
    r = bot.send("lobby", "  deploy finished  ")
    assert r.status_code == 201, r.text
    message = conforms(spec, MESSAGES, "post", r)["message"]
    assert message["from"] == bot.name and message["kind"] == "broadcast"
    assert message["conversation"] == "lobby" and message["to"] is None
    assert message["text"] == "  deploy finished  "  # exactly what was sent
    assert "Set-Cookie" not in r.headers
    assert watcher.wait_for("reply", lambda m: m["id"] == message["id"]) == message


def test_join_then_post_to_a_room(server, bot, spec, connect):
    """rooms/join answers joinRoom's ack (without ok); room members get the bot's message,
    and someone outside the room does not."""
    room = uroom()
    member = connect(server.url, auth={"name": uname("member")})
    outsider = connect(server.url, auth={"name": uname("out")})
    ok(member.call("joinRoom", {"room": room}))
    r = bot.join(room)
    assert r.status_code == 200, r.text
    joined = conforms(spec, JOIN, "post", r)
    assert joined["room"]["room"] == room
    assert sorted(joined["members"]) == sorted([member.name, bot.name])
    member.wait_for("roomEvent", lambda e: e["event"] == "joined" and e["name"] == bot.name)
    r = bot.send(room, "hello room")
    assert r.status_code == 201, r.text
    message = r.json()["message"]
    assert (message["kind"], message["to"], message["conversation"]) == ("room", room, room)
    assert member.wait_for("reply", lambda m: m["id"] == message["id"])["text"] == "hello room"
    outsider.assert_no_event("reply", lambda m: m["id"] == message["id"])
    again = bot.join(room)  # already a member: still 200
    assert again.status_code == 200 and again.json()["history"][-1]["id"] == message["id"]


def test_post_a_direct_message_and_a_reply(server, bot, connect):
    """`to` a user name is a DM; `replyTo` as over Socket.IO."""
    peer = connect(server.url, auth={"name": uname("peer")})
    first = bot.send(peer.name, "ping")
    assert first.status_code == 201, first.text
    dm = first.json()["message"]
    assert dm["kind"] == "direct" and dm["to"] == peer.name
    assert dm["conversation"] == dm_key(bot.name, peer.name)
    assert peer.wait_for("reply", lambda m: m["id"] == dm["id"])["text"] == "ping"
    answer = ok(peer.call("sendMessage", {"destId": bot.name, "content": "pong"}))["message"]
    reply = bot.send(peer.name, "got it", replyTo=answer["id"])
    assert reply.status_code == 201 and reply.json()["message"]["replyTo"] == answer["id"]
    peer.wait_for("reply", lambda m: m["id"] == reply.json()["message"]["id"])


def test_a_retry_with_the_same_client_id_is_stored_and_delivered_once(server, bot, connect):
    """Idempotency: the second POST answers the original message; one row, one delivery."""
    room = uroom()
    member = connect(server.url, auth={"name": uname("member")})
    ok(member.call("joinRoom", {"room": room}))
    assert bot.join(room).status_code == 200
    client_id = f"job-{uid()}"  # a bot's clientIds are its own, across conversations
    first = bot.send(room, "exactly once", clientId=client_id)
    second = bot.send(room, "exactly once", clientId=client_id)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    message_id = first.json()["message"]["id"]
    member.wait_for("reply", lambda m: m["id"] == message_id)
    member.assert_no_event("reply", lambda m: m["text"] == "exactly once" and
                           m["id"] != message_id, wait=0.5)
    assert len(member.events("reply", lambda m: m["text"] == "exactly once")) == 1
    stored = bot.history(conversation=room).json()["messages"]
    assert [m["id"] for m in stored if m["text"] == "exactly once"] == [message_id]
    # The same clientId over Socket.IO, from the bot's own connection, is that message too.
    tab = connect(server.url, auth={"name": bot.name, "token": bot.token})
    same = ok(tab.call("sendMessage", {"destId": room, "content": "exactly once",
                                       "clientId": client_id}))
    assert same["message"]["id"] == message_id


def test_messages_reach_socketio_clients_in_id_order(server, bot, connect):
    """Concurrent POSTs: each client gets every message once, in increasing id order."""
    room = uroom()
    readers = [connect(server.url, auth={"name": uname("reader")}) for _ in range(2)]
    for reader in readers:
        ok(reader.call("joinRoom", {"room": room}))
    assert bot.join(room).status_code == 200
    texts = [f"n{i}-{uid()}" for i in range(30)]

    def post(text):
        session = Bot(server, bot.name, bot.token)
        r = session.send(room, text, clientId=text)
        assert r.status_code == 201, r.text
        return r.json()["message"]["id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(post, texts))
    assert len(set(ids)) == len(texts)
    for reader in readers:
        got = reader.wait_for_n("reply", len(texts), lambda m: m["conversation"] == room)
        assert [m["id"] for m in got] == sorted(ids)
        assert {m["text"] for m in got} == set(texts)


# -- reading ---------------------------------------------------------------------------

def test_history_pages_oldest_first(server, bot, spec):
    """GET /api/v1/messages: as `history`, oldest first, with before, after and limit."""
    room = uroom()
    assert bot.join(room).status_code == 200
    ids = [bot.send(room, f"h{i}").json()["message"]["id"] for i in range(5)]
    r = bot.history(conversation=room)
    assert r.status_code == 200
    assert [m["id"] for m in conforms(spec, MESSAGES, "get", r)["messages"]] == ids
    assert [m["id"] for m in bot.history(conversation=room, limit=2).json()["messages"]] == \
        ids[-2:]
    assert [m["id"] for m in bot.history(conversation=room, before=ids[3],
                                         limit=2).json()["messages"]] == ids[1:3]
    assert [m["id"] for m in bot.history(conversation=room, after=ids[0],
                                         limit=2).json()["messages"]] == ids[1:3]
    lobby = bot.history(conversation="lobby", limit=1)
    assert lobby.status_code == 200 and len(lobby.json()["messages"]) == 1


def test_history_of_a_direct_conversation(server, bot, connect):
    peer = connect(server.url, auth={"name": uname("peer")})
    ok(peer.call("sendMessage", {"destId": bot.name, "content": "for the bot"}))
    by_name = bot.history(conversation=peer.name).json()["messages"]
    by_key = bot.history(conversation=dm_key(bot.name, peer.name)).json()["messages"]
    assert [m["text"] for m in by_name] == [m["text"] for m in by_key] == ["for the bot"]


# -- errors ----------------------------------------------------------------------------

def test_400_invalid_payload(server, bot, spec):
    url = server.url + MESSAGES
    cases = [
        requests.post(url, data=b"{not json", headers=bot.headers(
            {"Content-Type": "application/json"}), timeout=10),
        requests.post(url, data=b"\xff\xfe", headers=bot.headers(
            {"Content-Type": "application/json"}), timeout=10),
        requests.post(url, data=b'{"to": "lobby", "text": "x"}', headers=bot.headers(
            {"Content-Type": "text/plain"}), timeout=10),
        bot.post(MESSAGES, ["lobby", "hi"]),
        bot.send("lobby", ""),
        bot.send("lobby", 5),
        bot.post(MESSAGES, {"text": "no destination"}),
        bot.send("not a name!", "hi"),
        bot.send("lobby", "hi", clientId=""),
        bot.send("lobby", "hi", replyTo=-1),
        bot.history(),
        bot.history(conversation="lobby", limit=0),
        bot.history(conversation="lobby", limit="ten"),
        bot.history(conversation="lobby", before=["1", "2"]),
        bot.join("no-hash"),
    ]
    for r in cases:
        error_of(r, 400, "invalid_payload")
    conforms(spec, MESSAGES, "post", cases[0])


def test_401_without_a_bots_token(server, bot, spec, connect):
    """No token, a wrong one, a malformed header, and an ordinary user's session token."""
    user = connect(server.url, auth={"name": uname("human")})
    body = {"to": "lobby", "text": "hi"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": bot.token},
                    {"Authorization": f"Basic {bot.token}"},
                    {"Authorization": f"Bearer {user.token}"}):
        r = requests.post(server.url + MESSAGES, json=body, headers=headers, timeout=10)
        error_of(r, 401, "bad_token")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        conforms(spec, MESSAGES, "post", r)
    r = requests.get(server.url + MESSAGES, params={"conversation": "lobby"}, timeout=10)
    error_of(r, 401, "bad_token")
    error_of(requests.post(server.url + JOIN, json={"room": uroom()}, timeout=10), 401,
             "bad_token")


def test_403_forbidden(server, bot, connect):
    """A room the bot is not in; a private room's wrong password; another user's DM."""
    owner = connect(server.url, auth={"name": uname("owner")})
    room, secret = uroom(), uroom("secret")
    ok(owner.call("joinRoom", {"room": room}))
    ok(owner.call("joinRoom", {"room": secret, "password": "hunter22"}))
    error_of(bot.send(room, "not a member"), 403, "forbidden")
    error_of(bot.history(conversation=room), 403, "forbidden")
    error_of(bot.join(secret), 403, "forbidden")
    error_of(bot.join(secret, "wrong"), 403, "forbidden")
    assert bot.join(secret, "hunter22").status_code == 200
    other = dm_key(owner.name, uname("someone"))
    error_of(bot.history(conversation=other), 403, "forbidden")


def test_404_not_found(server, bot, connect):
    error_of(bot.send(uroom("nowhere"), "hi"), 404, "not_found")
    error_of(bot.send(uname("nobody"), "hi"), 404, "not_found")
    error_of(bot.history(conversation=uroom("nowhere")), 404, "not_found")
    error_of(bot.history(conversation=uname("nobody")), 404, "not_found")
    error_of(bot.send("lobby", "answering nothing", replyTo=2**62), 404, "not_found")
    error_of(requests.get(server.url + "/api/v1/nothing", headers=bot.headers(), timeout=10),
             404, "not_found")
    error_of(requests.get(server.url + "/api/v1", timeout=10), 404, "not_found")


def test_405_for_other_methods(server, bot):
    r = requests.delete(server.url + MESSAGES, headers=bot.headers(), timeout=10)
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) == {"GET", "POST"}
    assert r.json()["error"]["code"] == "invalid_payload"
    r = requests.get(server.url + JOIN, headers=bot.headers(), timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_413_too_large(server, bot, spec):
    """A text over MAX_TEXT_LENGTH, and a body over MAX_HTTP_BUFFER_SIZE (not read)."""
    r = bot.send("lobby", "x" * 2001)
    error_of(r, 413, "too_large")
    conforms(spec, MESSAGES, "post", r)
    assert bot.send("lobby", "x" * 2000).status_code == 201
    huge = b'{"to": "lobby", "text": "' + b"y" * 70_000 + b'"}'
    r = requests.post(server.url + MESSAGES, data=huge, timeout=10,
                      headers=bot.headers({"Content-Type": "application/json"}))
    error_of(r, 413, "too_large")

    def chunks():
        yield huge[:1000]
        yield huge[1000:]

    r = requests.post(server.url + MESSAGES, data=chunks(), timeout=10,
                      headers=bot.headers({"Content-Type": "application/json"}))
    error_of(r, 413, "too_large")
    assert bot.send("lobby", "still serving").status_code == 201


def test_429_rate_limited_with_retry_after(limited_api_server, spec, connect):
    """RATE_LIMIT (20 per 10 s) counts a bot's HTTP sends: the 21st is 429 with
    Retry-After, nothing is stored for it, and after that wait a send goes through. A
    retry of an accepted clientId still answers its original."""
    bot = add_bot(limited_api_server)
    sent = []
    while len(sent) < 40:  # the bucket refills at 2 per second while these go out
        r = bot.send("lobby", f"r{len(sent)}", clientId=f"c{len(sent)}")
        if r.status_code != 201:
            break
        sent.append(r)
    assert 20 <= len(sent) < 40, len(sent)
    refused = bot.send("lobby", "one too many", clientId="extra")
    error_of(refused, 429, "rate_limited")
    conforms(spec, MESSAGES, "post", refused)
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 10
    retry = bot.send("lobby", "r0", clientId="c0")
    assert retry.status_code == 201 and retry.json() == sent[0].json()
    history = bot.history(conversation="lobby", limit=100).json()["messages"]
    assert "one too many" not in [m["text"] for m in history]
    # The bot's Socket.IO tab shares the user's bucket.
    tab = connect(limited_api_server.url, auth={"name": bot.name, "token": bot.token})
    assert tab.call("message", {"text": "from the tab"})["ok"] is False
    time.sleep(wait)
    assert bot.send("lobby", "after the wait", clientId="extra").status_code == 201


def test_503_when_the_store_cannot_write(server_factory):
    """The store locked by someone else: `unavailable`, then it works again."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    bot = add_bot(srv)
    assert bot.send("lobby", "before").status_code == 201
    db = sqlite3.connect(str(srv.db_path), timeout=10, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        r = bot.send("lobby", "while locked")
        error_of(r, 503, "unavailable")
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert bot.send("lobby", "after").status_code == 201
    assert "Traceback" not in r.text


# -- bot accounts ----------------------------------------------------------------------

def test_bot_cli_add_list_remove(server, connect):
    """add prints a token once; list shows the bot; a second add of the name, a bad name
    and removing an unknown bot fail; remove revokes the token (401 at once) and closes
    the bot's Socket.IO connections, and the name stays taken."""
    bot = add_bot(server)
    listed = bot_cli(server, "list")
    assert listed.returncode == 0
    assert any(line.split("\t")[0] == bot.name for line in listed.stdout.splitlines())
    assert bot_cli(server, "add", bot.name).returncode == 1
    assert bot_cli(server, "add", "not a name!").returncode == 1
    assert bot_cli(server, "add", "guest-abc").returncode == 1
    human = connect(server.url, auth={"name": uname("human")})
    assert bot_cli(server, "remove", human.name).returncode == 1  # not a bot
    assert bot_cli(server, "remove", uname("nobody")).returncode == 1
    tab = connect(server.url, auth={"name": bot.name, "token": bot.token})
    assert bot.send("lobby", "before removal").status_code == 201
    removed = bot_cli(server, "remove", bot.name)
    assert removed.returncode == 0, removed.stderr
    error_of(bot.send("lobby", "after removal"), 401, "bad_token")
    tab.wait_disconnected(timeout=10)
    assert bot.name not in bot_cli(server, "list").stdout.split()
    with pytest.raises(ConnectRefused):
        connect(server.url, auth={"name": bot.name, "token": bot.token})
    with pytest.raises(ConnectRefused) as refused:
        connect(server.url, auth={"name": bot.name})
    assert refused.value.code == "name_taken"


def test_a_bot_also_uses_socketio(server, bot, connect):
    """auth {name, token}: the bot is welcomed under its name, sends over Socket.IO, and
    hears what it posts over HTTP like any other tab of its user."""
    tab = connect(server.url, auth={"name": bot.name, "token": bot.token})
    assert tab.name == bot.name
    other = connect(server.url, auth={"name": uname("other")})
    sent = ok(tab.call("message", {"text": "over socket.io"}))["message"]
    assert other.wait_for("reply", lambda m: m["id"] == sent["id"])["from"] == bot.name
    posted = bot.send("lobby", "over http").json()["message"]
    assert tab.wait_for("reply", lambda m: m["id"] == posted["id"])["fromSid"] != tab.sid


def test_bot_tokens_do_not_expire(short_ttl_server, connect):
    """TOKEN_TTL expires a user's unused token; a bot's never does (docs/protocol.md
    §12.1)."""
    bot = add_bot(short_ttl_server)
    user = connect(short_ttl_server.url, auth={"name": uname("human"), "password": "pw-1234"})
    token = user.token
    user.disconnect()
    time.sleep(3.5)
    assert bot.send("lobby", "still here").status_code == 201
    connect(short_ttl_server.url, auth={"name": bot.name, "token": bot.token})
    with pytest.raises(ConnectRefused) as refused:
        connect(short_ttl_server.url, auth={"token": token})
    assert refused.value.code == "bad_token"
