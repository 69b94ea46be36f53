"""Identity abuse (issue 12): guests that would pile up rows, names that look like someone
else's, and a token that outlives its sign-out. Each runs against a real server."""

import sqlite3

import pytest
from support.checks import eventually, expect_refused, ok
from support.names import uid, uname

ADDRESSES = [f"203.0.113.{n}" for n in range(1, 11)]  # documentation addresses, in a header


def rows(srv, query):
    with sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True) as db:
        return db.execute(query).fetchall()


def test_guests_from_ten_addresses_leave_no_rows_behind(server_factory, client_factory):
    """Was: every guest stayed a permanent user row. 100 guests from 10 client addresses
    (behind a trusted proxy) connect, join a room, write a DM, and leave: no row of them
    stays but their messages."""
    srv = server_factory(env={"TRUSTED_PROXIES": "127.0.0.1"})
    host = client_factory()
    host.connect(srv.url, auth={"name": uname("host")})
    room = f"#g-{uid()}"
    ok(host.call("joinRoom", {"room": room}))
    guests = []
    for n in range(100):
        guest = client_factory()
        guest.connect(srv.url, headers={"X-Forwarded-For": ADDRESSES[n % 10]})
        ok(guest.call("joinRoom", {"room": room}))
        ok(guest.call("sendMessage", {"content": f"hi {n}", "destId": host.name,
                                      "clientId": f"c{n}"}))
        guests.append(guest)
    assert rows(srv, "SELECT count(*) FROM users WHERE guest")[0][0] == 100
    for guest in guests:
        guest.disconnect()

    def gone():
        assert rows(srv, "SELECT count(*) FROM users WHERE guest") == [(0,)]
        assert rows(srv, "SELECT count(*) FROM sessions") == [(1,)]  # the host's
        assert rows(srv, "SELECT count(*) FROM memberships") == [(1,)]
        assert rows(srv, "SELECT count(*) FROM dm_members WHERE user_id NOT IN "
                         "(SELECT id FROM users)") == [(0,)]

    eventually(gone, timeout=10)
    assert rows(srv, "SELECT count(*) FROM messages WHERE kind = 'direct'") == [(100,)]
    assert rows(srv, "SELECT count(*) FROM messages WHERE client_id IS NOT NULL") == [(0,)]
    ok(host.call("listUsers"))


@pytest.mark.parametrize("swap", [("i", "\u0456"), ("a", "\u0430"), ("o", "\u043e")])
def test_a_name_that_looks_like_a_registered_one_is_name_taken(server, connect, swap):
    """Was: `vіctim` (Cyrillic і) registered beside `victim` and looked the same."""
    plain, lookalike = swap
    name = f"vict{plain}m{plain}{uid(6)}".replace("0", "x")
    owner = connect(server.url, auth={"name": name})
    expect_refused(connect, server.url, {"name": name.replace(plain, lookalike)},
                   "name_taken")
    expect_refused(connect, server.url, {"name": name.upper()}, "name_taken")
    assert owner.connected


def test_the_guest_namespace_in_fullwidth_letters_is_invalid_name(server, connect):
    """Was: `ｇｕｅｓｔ-…` registered, indistinguishable from a guest in the page."""
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in "guest") + "-" + uid(8)
    expect_refused(connect, server.url, {"name": fullwidth}, "invalid_name")
    expect_refused(connect, server.url, {"name": "gue\u0455t-" + uid(8)}, "invalid_name")
