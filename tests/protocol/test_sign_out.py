"""docs/protocol.md §1.5: signing out revokes tokens; their connections are told and closed."""

from support.checks import err, expect_refused, ok
from support.names import uname


def test_sign_out_closes_this_sign_ins_tabs_and_revokes_its_token(server, connect):
    name = uname()
    first = connect(server.url, auth={"name": name, "password": "correct horse"})
    second_tab = connect(server.url, auth={"token": first.token})
    other_device = connect(server.url, auth={"name": name, "password": "correct horse"})
    assert ok(first.call("signOut")) == {"ok": True}
    for tab in (first, second_tab):
        tab.wait_for("signedOut")
        tab.wait_disconnected()
    expect_refused(connect, server.url, {"token": first.token}, "bad_token")
    assert other_device.connected
    other_device.assert_no_event("signedOut")
    ok(other_device.call("listUsers"))


def test_sign_out_everywhere_closes_every_connection_of_the_user(server, connect):
    name = uname()
    first = connect(server.url, auth={"name": name, "password": "correct horse"})
    second = connect(server.url, auth={"name": name, "password": "correct horse"})
    ok(first.call("signOut", {"everywhere": True}))
    for client in (first, second):
        client.wait_for("signedOut")
        client.wait_disconnected()
    for token in (first.token, second.token):
        expect_refused(connect, server.url, {"token": token}, "bad_token")


def test_a_guest_who_signs_out_is_gone(server, connect):
    guest = connect(server.url)
    watcher = connect(server.url)
    ok(guest.call("signOut"))
    guest.wait_disconnected()
    watcher.wait_for("userLeft", lambda p: p["name"] == guest.name)
    expect_refused(connect, server.url, {"token": guest.token}, "bad_token")


def test_sign_out_with_a_bad_payload_changes_nothing(server, connect):
    client = connect(server.url, auth={"name": uname()})
    err(client.call("signOut", {"everywhere": "yes"}), "invalid_payload")
    assert client.connected
    again = connect(server.url, auth={"token": client.token})
    assert again.name == client.name
