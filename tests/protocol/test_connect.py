"""PROTOCOL.md section 1: connecting, guests, registered names, tokens and passwords."""

import json
import re
import time

import pytest
from support.actions import join, send
from support.checks import assert_has, expect_refused, ok, room_entry, user_entry
from support.client import ConnectRefused
from support.names import uid, uname, uroom

GUEST = re.compile(r"^guest-[0-9a-f]{8,}$")


def conversations(welcome):
    """welcome.conversations as {conversation: lastId}, checking each entry's shape."""
    out = {}
    for entry in welcome["conversations"]:
        assert set(entry) >= {"conversation", "lastId"}, entry
        assert entry["lastId"] is None or isinstance(entry["lastId"], int), entry
        out[entry["conversation"]] = entry["lastId"]
    return out


# -- guests ------------------------------------------------------------------------------

def test_no_auth_gets_guest_welcome(server, connect):
    """A client without auth is welcomed as a guest-<hex> with its sid, a token and lists."""
    c = connect(server.url)
    w = c.welcome
    assert set(w) >= {"sid", "name", "token", "rooms", "users", "conversations"}, w
    assert GUEST.match(w["name"]), w["name"]
    assert w["sid"] == c.socket_sid, "welcome.sid must be the Socket.IO sid"
    assert isinstance(w["token"], str) and w["token"]
    assert w["rooms"] == []
    assert isinstance(w["users"], list)
    assert "lobby" in conversations(w)


def test_guests_get_distinct_names(server, connect):
    """Every guest gets a name of its own."""
    names = {connect(server.url).name for _ in range(4)}
    assert len(names) == 4
    assert all(GUEST.match(n) for n in names)


def test_connect_packet_without_payload_is_guest(server, raw_factory, transport):
    """A seed-style CONNECT packet with no auth payload at all (`40`) is welcomed as a guest."""
    raw = raw_factory(server.url, transport)
    packets = raw.connect_socketio(auth=None)
    connect_pkts = [p for p in packets if p.startswith("40")]
    assert connect_pkts, f"no Socket.IO CONNECT reply in {packets!r}"
    sid = json.loads(connect_pkts[0][2:])["sid"]
    welcome_pkt = next(p for p in packets if p.startswith('42["welcome"'))
    _, welcome = json.loads(welcome_pkt[2:])
    assert GUEST.match(welcome["name"]), welcome
    assert welcome["sid"] == sid


def test_welcome_lists_online_users_and_newest_lobby_id(server, connect):
    """welcome.users contains the other online users with their sids, and lobby's lastId."""
    a = connect(server.url, auth={"name": uname("wa")})
    msg = send(a, "hello " + uid())
    b = connect(server.url)
    entry = user_entry(b.welcome["users"], a.name)
    assert entry is not None, f"{a.name} missing from welcome.users {b.welcome['users']!r}"
    assert set(entry) >= {"name", "sids"} and entry["name"] == a.name
    assert a.sid in entry["sids"]
    lobby_last = conversations(b.welcome)["lobby"]
    assert isinstance(lobby_last, int) and lobby_last >= msg["id"]


def test_addchat_goes_to_others_for_each_new_sid(server, connect):
    """Every other client gets addChat {sid, name} for a new connection; the newcomer does not."""
    watcher = connect(server.url)
    newcomer = connect(server.url)
    got = watcher.wait_for("addChat", lambda p: p.get("sid") == newcomer.sid)
    assert_has(got, {"sid": newcomer.sid, "name": newcomer.name})
    newcomer.assert_no_event("addChat", lambda p: p.get("sid") == newcomer.sid)


def test_welcome_goes_to_the_new_client_only(server, connect):
    """`welcome` is sent to the connecting client alone."""
    watcher = connect(server.url)
    newcomer = connect(server.url)
    watcher.wait_for("addChat", lambda p: p.get("sid") == newcomer.sid)
    assert len(watcher.events("welcome")) == 1
    assert len(newcomer.events("welcome")) == 1


# -- registered names and tokens ---------------------------------------------------------

def test_name_registers_and_welcome_has_it(server, connect):
    """`auth.name` never used registers the name: welcome has it as given and a token."""
    name = uname("Reg")
    c = connect(server.url, auth={"name": name})
    assert c.welcome["name"] == name
    assert isinstance(c.token, str) and c.token


def test_registered_name_cannot_be_taken(server, connect):
    """A registered name (compared case-insensitively) is refused to a client without its token."""
    name = uname("Taken")
    connect(server.url, auth={"name": name})
    expect_refused(connect, server.url, {"name": name}, "name_taken")
    expect_refused(connect, server.url, {"name": name.upper()}, "name_taken")
    expect_refused(connect, server.url, {"name": name.lower()}, "name_taken")


def test_registered_name_stays_taken_while_offline(server, connect):
    """Going offline does not free a registered name."""
    name = uname("off")
    a = connect(server.url, auth={"name": name})
    a.disconnect()
    expect_refused(connect, server.url, {"name": name}, "name_taken")


def test_token_restores_identity(server, connect):
    """Reconnecting with `auth.token` alone restores the same name."""
    name = uname("tok")
    a = connect(server.url, auth={"name": name})
    token = a.token
    a.disconnect()
    b = connect(server.url, auth={"token": token})
    assert b.name == name
    assert b.sid != a.sid


def test_name_with_its_token_restores_identity(server, connect):
    """`name` together with the name's token reconnects as that user."""
    name = uname("nt")
    a = connect(server.url, auth={"name": name})
    a.disconnect()
    b = connect(server.url, auth={"name": name, "token": a.token})
    assert b.name == name


def test_bad_token_is_refused(server, connect):
    """A well-formed token nobody was given is refused with `bad_token`."""
    expect_refused(connect, server.url, {"token": "nope"}, "bad_token")
    expect_refused(connect, server.url, {"token": "x" * 200}, "bad_token")


def test_tampered_token_is_refused(server, connect):
    """A real token with one character changed is refused with `bad_token`."""
    a = connect(server.url, auth={"name": uname("tt")})
    t = a.token
    tampered = t[:-1] + ("A" if t[-1] != "A" else "B")
    expect_refused(connect, server.url, {"token": tampered}, "bad_token")


def test_several_tabs_share_one_identity(server, connect):
    """Tabs connected with the same token are one USER with several sids."""
    name = uname("tabs")
    t1 = connect(server.url, auth={"name": name})
    t2 = connect(server.url, auth={"token": t1.token})
    t3 = connect(server.url, auth={"token": t1.token})
    assert t2.name == t3.name == name
    assert len({t1.sid, t2.sid, t3.sid}) == 3
    users = ok(t1.call("listUsers"))["users"]
    matching = [u for u in users if u["name"].lower() == name.lower()]
    assert len(matching) == 1, f"one USER per identity expected: {users!r}"
    assert set(matching[0]["sids"]) == {t1.sid, t2.sid, t3.sid}


INVALID_NAMES = [
    ("empty", ""),
    ("too_long", "a" * 33),
    ("space", "a b"),
    ("bang", "bad!"),
    ("slash", "a/b"),
    ("colon", "a:b"),
    ("at", "a@b"),
    ("html", "<b>x</b>"),
    ("emoji", "smile\U0001F600"),
    ("trailing_newline", "abc\n"),
    ("tab", "a\tb"),
    ("zero_width_space", "ab\u200b"),
    ("guest_prefix", "guest-1234abcd"),
    ("guest_prefix_upper", "GUEST-abcd1234"),
]


@pytest.mark.parametrize("name", [n for _, n in INVALID_NAMES],
                         ids=[i for i, _ in INVALID_NAMES])
def test_invalid_name_is_refused(server, connect, name):
    """A name breaking the naming rule is refused with `invalid_name`."""
    expect_refused(connect, server.url, {"name": name}, "invalid_name")

MALFORMED_AUTH = [
    ("not_an_object", "alice"),
    ("auth_list", ["alice"]),
    ("name_number", {"name": 12345}),
    ("name_list", {"name": ["abc"]}),
    ("name_object", {"name": {"n": "abc"}}),
    ("name_bool", {"name": True}),
    ("token_number", {"token": 42}),
    ("token_list", {"token": ["t"]}),
    ("token_empty", {"token": ""}),
    ("token_too_long", {"token": "x" * 201}),
    ("password_number", {"name": "pwshape", "password": 1234}),
    ("password_empty", {"name": "pwshape", "password": ""}),
    ("password_too_long", {"name": "pwshape", "password": "p" * 1025}),
    ("password_lone_surrogate", {"name": "pwshape", "password": "pw\ud800"}),
    ("last_id_negative", {"lastId": -1}),
    ("last_id_string", {"lastId": "12"}),
    ("last_id_float", {"lastId": 1.5}),
    ("last_id_bool", {"lastId": True}),
    ("last_id_too_big", {"lastId": 2**63}),
]


@pytest.mark.parametrize("auth", [a for _, a in MALFORMED_AUTH],
                         ids=[i for i, _ in MALFORMED_AUTH])
def test_malformed_auth_is_invalid_payload(server, connect, auth):
    """An `auth` that is not an object, or a field of the wrong type or out of its range
    (docs/protocol.md §1.1), is a malformed payload: `invalid_payload` (§1.6)."""
    expect_refused(connect, server.url, auth, "invalid_payload")


def test_malformed_password_is_invalid_payload_even_for_a_registered_name(server, connect):
    """A badly shaped password is refused for its shape, before any password check."""
    name = uname("pws")
    connect(server.url, auth={"name": name, "password": "right-one"})
    expect_refused(connect, server.url, {"name": name, "password": 7}, "invalid_payload")
    expect_refused(connect, server.url, {"name": name, "password": ""}, "invalid_payload")


def sid_shaped(u):
    """A 20-character name of A-Z a-z 0-9 _ -, unique per test."""
    return ("Sid_" + u + "-abcdefghijklmnop")[:20]


SID_SHAPED_NAMES = [
    ("mixed", sid_shaped),
    ("digits", lambda u: (u + "0123456789" * 2)[:20]),
    ("underscores", lambda u: ("__" + u + "_" * 20)[:20]),
    ("dashes_upper", lambda u: ("AB-" + u.upper() + "-" * 20)[:20]),
    ("folds_to_sid", lambda u: ("x" + u + "abcdefghijk")[:18] + "\u00df"),  # ß folds to ss
]


@pytest.mark.parametrize("make", [m for _, m in SID_SHAPED_NAMES],
                         ids=[i for i, _ in SID_SHAPED_NAMES])
def test_sid_shaped_name_cannot_be_registered(server, connect, make):
    """A name shaped like a sid (exactly 20 of `A-Z a-z 0-9 _ -`) is refused with
    `invalid_name`, with or without a password (docs/protocol.md §1.3 v2)."""
    name = make(uid(8))
    expect_refused(connect, server.url, {"name": name}, "invalid_name")
    expect_refused(connect, server.url, {"name": name, "password": "pw-123456"}, "invalid_name")


def test_a_real_sid_is_not_a_name(server, connect):
    """The sid of a connection, as a name, is refused with `invalid_name`."""
    other = connect(server.url)
    assert len(other.sid) == 20
    expect_refused(connect, server.url, {"name": other.sid}, "invalid_name")


@pytest.mark.parametrize("make", [
    lambda u: ("Sid_" + u + "-abcdefghijklmnop")[:19],
    lambda u: ("Sid_" + u + "-abcdefghijklmnop")[:21],
    lambda u: ("Sid." + u + "-abcdefghijklmnop")[:20],
    lambda u: ("S\u00efd_" + u + "-abcdefghijklmnop")[:20],
], ids=["19_chars", "21_chars", "with_dot", "with_accent"])
def test_names_near_the_sid_shape_are_accepted(server, connect, make):
    """Only the exact shape is refused: 19 or 21 characters, a '.', a letter outside A-Z."""
    name = make(uid(8))
    assert connect(server.url, auth={"name": name}).name == name


def test_a_sid_shaped_name_registered_before_v2_still_signs_in(server_factory, connect):
    """Names registered before the rule keep working, by token and by password; the name
    alone is `name_taken` as for any registered name (docs/protocol.md §1.3)."""
    from chat_server.domain import security
    from chat_server.domain.names import skeleton
    from chat_server.store import Store

    srv = server_factory()
    srv.stop()
    store = Store(srv.database_url)
    token = "legacy-token-" + uid(8)
    plain, protected = sid_shaped(uid(8)), sid_shaped(uid(8))
    now = int(time.time() * 1000)
    try:
        store.create_user(plain, plain.casefold(), False, security.hash_token(token), None,
                          skeleton(plain), now)
        store.create_user(protected, protected.casefold(), False,
                          security.hash_token("unused-" + uid(8)),
                          security.hash_password("legacy pass"), skeleton(protected), now)
    finally:
        store.close()
    srv.start()
    assert connect(srv.url, auth={"token": token}).name == plain
    assert connect(srv.url, auth={"name": plain, "token": token}).name == plain
    signed_in = connect(srv.url, auth={"name": protected, "password": "legacy pass"})
    assert signed_in.name == protected
    assert connect(srv.url, auth={"token": signed_in.token}).name == protected
    expect_refused(connect, srv.url, {"name": plain}, "name_taken")
    expect_refused(connect, srv.url, {"name": protected, "password": "wrong"}, "bad_password")


VALID_NAMES = [
    ("letters_digits", lambda u: "Ab9" + u),
    ("accented", lambda u: "Ünïcødé" + u),
    ("cyrillic", lambda u: "Иван" + u),
    ("cjk", lambda u: "名前" + u),
    ("punctuation", lambda u: "a.b_c-d" + u),
    ("guest_without_dash", lambda u: "guest_" + u),
    ("one_char_prefix", lambda u: "x" + u),
    ("max_length", lambda u: ("m" + u + "z" * 32)[:32]),
]


@pytest.mark.parametrize("make", [m for _, m in VALID_NAMES], ids=[i for i, _ in VALID_NAMES])
def test_valid_name_is_accepted_as_given(server, connect, make):
    """Names of 1-32 letters (any script), digits, `_`, `-`, `.` are accepted as given."""
    name = make(uid(8))
    c = connect(server.url, auth={"name": name})
    assert c.name == name


# -- passwords ---------------------------------------------------------------------------

def test_password_registers_and_logs_in_from_anywhere(server, connect):
    """name+password registers; the same pair later logs in without the token."""
    name = uname("pw")
    a = connect(server.url, auth={"name": name, "password": "s3cret pass"})
    assert a.name == name
    b = connect(server.url, auth={"name": name, "password": "s3cret pass"})
    assert b.name == name
    users = ok(b.call("listUsers"))["users"]
    assert set(user_entry(users, name)["sids"]) >= {a.sid, b.sid}


def test_password_login_is_case_insensitive_on_name(server, connect):
    """Logging in with a differently cased name reaches the same user."""
    name = uname("PwCase")
    a = connect(server.url, auth={"name": name, "password": "pw-123456"})
    a.disconnect()
    b = connect(server.url, auth={"name": name.lower(), "password": "pw-123456"})
    assert b.name.lower() == name.lower()


def test_wrong_password_is_refused(server, connect):
    """A wrong password for a password-registered name is refused with `bad_password`."""
    name = uname("pw")
    connect(server.url, auth={"name": name, "password": "right-one"})
    expect_refused(connect, server.url, {"name": name, "password": "wrong-one"}, "bad_password")
    expect_refused(connect, server.url, {"name": name, "password": "Right-one"}, "bad_password")


def test_password_user_cannot_be_taken_by_name_alone(server, connect):
    """A password-registered name without password or token is refused.

    PROTOCOL.md does not say which of `name_taken` / `bad_password` applies here; either
    refuses the take-over."""
    name = uname("pw")
    connect(server.url, auth={"name": name, "password": "pw-abcdef"})
    expect_refused(connect, server.url, {"name": name}, "name_taken", "bad_password")


def test_password_user_token_works(server, connect):
    """The token from a password registration restores the identity on its own."""
    name = uname("pw")
    a = connect(server.url, auth={"name": name, "password": "pw-abcdef"})
    a.disconnect()
    b = connect(server.url, auth={"token": a.token})
    assert b.name == name


def test_password_for_name_registered_without_one_is_name_taken(server, connect):
    """name+password for a name registered without a password is refused with `name_taken`."""
    name = uname("nopw")
    connect(server.url, auth={"name": name})
    expect_refused(connect, server.url, {"name": name, "password": "guess"}, "name_taken")


# -- guest tokens ------------------------------------------------------------------------

def test_guest_token_opens_second_tab_while_online(server, connect):
    """A guest's token, while the guest is connected, opens a second tab as the same guest."""
    g = connect(server.url)
    g2 = connect(server.url, auth={"token": g.token})
    assert g2.name == g.name
    users = ok(g.call("listUsers"))["users"]
    assert set(user_entry(users, g.name)["sids"]) == {g.sid, g2.sid}


def test_guest_token_dies_with_its_last_connection(server, connect):
    """Once a guest's last connection closes, its token is refused with `bad_token`."""
    watcher = connect(server.url)
    g = connect(server.url)
    g2 = connect(server.url, auth={"token": g.token})
    g.disconnect()
    g2.disconnect()
    watcher.wait_for("userLeft", lambda p: p.get("name") == g.name)
    expect_refused(connect, server.url, {"token": g.token}, "bad_token")


def test_gone_guest_leaves_its_rooms(server, connect):
    """A guest that is gone leaves its rooms: members see `left` and ownership moves on."""
    g = connect(server.url)
    member = connect(server.url, auth={"name": uname("m")})
    room = uroom()
    join(g, room)
    join(member, room)
    g.disconnect()
    ev = member.wait_for("roomEvent", lambda p: p.get("event") == "left")
    assert_has(ev, {"room": room, "event": "left", "name": g.name})
    info = room_entry(ok(member.call("listRooms"))["rooms"], room)
    assert info["members"] == 1
    assert info["owner"] == member.name


# -- server_full and rate_limited ----------------------------------------------------------

def test_connections_beyond_connect_rate_are_rate_limited(server_factory, connect):
    """More than CONNECT_RATE new connections from one address are refused with
    `rate_limited` (docs/protocol.md §1.6 v2), whoever asks; the budget refills."""
    srv = server_factory(env={"CONNECT_RATE": "3/3"})
    first = connect(srv.url, auth={"name": uname("cr")})
    connect(srv.url)
    connect(srv.url, auth={"token": first.token})
    expect_refused(connect, srv.url, None, "rate_limited")
    expect_refused(connect, srv.url, {"token": first.token}, "rate_limited")
    deadline = time.monotonic() + 5
    while True:
        try:
            again = connect(srv.url, auth={"token": first.token})
            break
        except ConnectRefused as refused:
            assert refused.code == "rate_limited", refused.payload
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert again.name == first.name


def test_connections_beyond_max_are_refused_server_full(server_factory, connect):
    """Beyond MAX_CONNECTIONS a connect is refused with `server_full`; a freed slot is reusable."""
    srv = server_factory(env={"MAX_CONNECTIONS": "2", "RATE_LIMIT": "off"})
    a = connect(srv.url)
    connect(srv.url)
    expect_refused(connect, srv.url, None, "server_full")
    a.disconnect()
    deadline = time.monotonic() + 3
    while True:
        try:
            c = connect(srv.url)
            break
        except ConnectRefused:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert GUEST.match(c.name)


def test_a_guest_outlives_its_last_connection_by_guest_grace(server_factory, connect):
    """docs/protocol.md §1.2 (v2): a reload within GUEST_GRACE keeps the guest, its name
    and its rooms; once the grace has passed the guest is gone (bad_token, rooms left)."""
    srv = server_factory(env={"GUEST_GRACE": "1.5"})
    room = uroom("grace")
    guest = connect(srv.url)
    ok(guest.call("joinRoom", {"room": room}))
    watcher = connect(srv.url, auth={"name": uname("watcher")})
    ok(watcher.call("joinRoom", {"room": room}))
    guest.disconnect()
    back = connect(srv.url, auth={"token": guest.token})
    assert back.name == guest.name
    assert room_entry(back.welcome["rooms"], room) is not None
    back.disconnect()
    watcher.wait_for("roomEvent", lambda e: e == {"room": room, "event": "left",
                                                  "name": guest.name}, timeout=6)
    expect_refused(connect, srv.url, {"token": guest.token}, "bad_token")
