"""The chat page across reloads, sign-in errors, disconnections, restarts, rate limits and
phone-sized screens."""

import json
import re
import uuid

import pytest
import socketio
from playwright.sync_api import expect
from support.client import ConnectRefused

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def tag():
    return uuid.uuid4().hex[:6]


def test_reload_keeps_identity_rooms_and_history(server, open_chat, client_factory):
    name, password = unique("rel"), "correct horse"
    a = open_chat(server.url).sign_in(name, password)
    in_lobby = f"lobby before reload {tag()}"
    a.send(in_lobby)
    a.expect_once(in_lobby)
    room = unique("#den")
    a.enter_room(room)
    in_room = f"room before reload {tag()}"
    a.send(in_room)
    a.expect_once(in_room)

    # Reload: same identity, same open conversation, history back from the server.
    a.page.reload()
    expect(a.tid("me-name")).to_have_text(name)
    a.wait_online()
    expect(a.tid("conv-title")).to_have_text(room)
    a.expect_once(in_room)
    a.open_conv("lobby", title="Lobby")
    a.expect_once(in_lobby)
    a.shot("after-reload")

    # A new tab of the same browser resumes the same identity.
    tab = open_chat(server.url, context=a.page.context).goto()
    expect(tab.tid("me-name")).to_have_text(name)
    tab.wait_online()
    tab.expect_once(in_lobby)
    expect(tab.conv_button(room)).to_be_visible()

    # Signing out forgets the identity, in every tab, and across a reload; the server
    # revoked the token, so a copy of it signs no one in (docs/protocol.md §1.5).
    token = json.loads(a.page.evaluate("localStorage.getItem('chat.identity')"))["token"]
    tab.tid("signout-button").click()
    expect(tab.tid("signin-view")).to_be_visible()
    expect(a.tid("signin-view")).to_be_visible()
    a.page.reload()
    expect(a.tid("signin-view")).to_be_visible()
    assert a.page.evaluate("localStorage.getItem('chat.identity')") is None
    with pytest.raises(ConnectRefused) as refused:
        client_factory().connect(server.url, auth={"token": token})
    assert refused.value.code == "bad_token"

    # The name stays protected: refused without its password, and with a wrong one.
    other = open_chat(server.url).goto()
    other.shot("signin")
    other.tid("signin-name").fill(name)
    other.tid("signin-submit").click()
    expect(other.tid("signin-name-error")).to_contain_text("already uses this name")
    expect(other.tid("signin-name")).to_have_attribute("aria-invalid", "true")
    other.tid("signin-password").fill("wrong horse")
    other.tid("signin-submit").click()
    expect(other.tid("signin-password-error")).to_contain_text("password is not right")
    expect(other.tid("signin-name-error")).to_have_text("")
    other.shot("signin-bad-password")
    # With the password, from another browser: the same person, rooms and history.
    other.tid("signin-password").fill(password)
    other.tid("signin-submit").click()
    expect(other.tid("me-name")).to_have_text(name)
    other.wait_online()
    other.open_conv(room, title=room)
    other.expect_once(in_room)


def test_bad_token_invalid_name_and_guest(server, open_chat):
    p = open_chat(server.url).goto()
    expect(p.tid("signin-view")).to_be_visible()
    p.page.evaluate(
        "localStorage.setItem('chat.identity', "
        "JSON.stringify({name: 'ghost', token: 'not-a-token'}))")
    p.page.reload()
    expect(p.tid("signin-view")).to_be_visible()
    expect(p.tid("signin-error")).to_contain_text("no longer valid")
    assert p.page.evaluate("localStorage.getItem('chat.identity')") is None

    for bad in ("guest-1234abcd", "two words", "semi;colon"):
        p.tid("signin-name").fill(bad)
        p.tid("signin-submit").click()
        expect(p.tid("signin-name-error")).to_contain_text("cannot start with")
        expect(p.tid("signin-view")).to_be_visible()

    # A name shaped like a sid (docs/protocol.md §1.3): explained before sending; with a
    # password (it might be an older name signing in) the server refuses it.
    sid_like = ("Sid_" + uuid.uuid4().hex)[:20]
    p.tid("signin-name").fill(sid_like)
    p.tid("signin-submit").click()
    expect(p.tid("signin-name-error")).to_contain_text("looks like a session id")
    p.tid("signin-password").fill("some password")
    p.tid("signin-submit").click()
    expect(p.tid("signin-name-error")).to_contain_text("look like a session id")
    expect(p.tid("signin-submit")).to_be_enabled()
    p.tid("signin-password").fill("")

    # Name is focused on arrival: keyboard only from here.
    p.tid("signin-name").fill("")
    p.tid("guest-button").focus()
    p.page.keyboard.press("Enter")
    expect(p.tid("me-name")).to_have_text(re.compile(r"^guest-[0-9a-f]{8,}$"))
    p.wait_online()
    text = f"hello from a guest {tag()}"
    box = p.tid("composer-input")
    box.focus()
    p.page.keyboard.type(text)
    p.page.keyboard.press("Enter")
    p.expect_once(text)


def test_missed_messages_come_back_with_unread_counts(server, open_chat):
    a_name, b_name = unique("awy"), unique("chr")
    a = open_chat(server.url).sign_in(a_name)
    room = unique("#news")
    a.enter_room(room)
    a.open_conv("lobby", title="Lobby")
    b = open_chat(server.url).sign_in(b_name)
    b.enter_room(room)

    # ann closes her only tab: she is offline.
    context = a.page.context
    a.page.close()
    expect(b.tid(f"user-{a_name.lower()}")).to_have_count(0)

    missed = [f"while you were away {i} {tag()}" for i in range(2)]
    for text in missed:
        b.send(text)
        b.expect_once(text)
    b.tid("dm-panel-toggle").click()
    b.tid("dm-name").fill(a_name)
    b.tid("dm-submit").click()
    direct = f"call me back {tag()}"
    b.send(direct)
    b.expect_once(direct)
    in_lobby = f"lobby news {tag()}"
    b.open_conv("lobby", title="Lobby")
    b.send(in_lobby)
    b.expect_once(in_lobby)

    # ann comes back: what she missed is there, counted as unread, each message once.
    a2 = open_chat(server.url, context=context).goto()
    expect(a2.tid("me-name")).to_have_text(a_name)
    a2.wait_online()
    a2.expect_once(in_lobby)
    expect(a2.tid(f"unread-{room.lower()}")).to_have_text("2")
    expect(a2.tid(f"unread-@{b_name.lower()}")).to_have_text("1")
    a2.shot("missed-unread")
    a2.open_conv(room, title=room)
    for text in missed:
        a2.expect_once(text)
    expect(a2.tid(f"unread-{room.lower()}")).to_have_count(0)
    a2.open_conv(f"@{b_name}", title=b_name)
    a2.expect_once(direct)


def test_server_killed_and_restarted_while_sending_delivers_exactly_once(server_factory, open_chat):
    srv = server_factory(env={"RATE_LIMIT": "off"})
    a_name, b_name = unique("snd"), unique("rcv")
    a = open_chat(srv.url).sign_in(a_name)
    b = open_chat(srv.url).sign_in(b_name)

    # Sent, and the server dies at once: maybe stored, maybe not, but never acked.
    first = f"sent as the server dies {tag()}"
    a.send(first)
    srv.kill()
    expect(a.banner).to_be_visible()
    expect(a.banner).to_contain_text("Reconnecting")
    expect(b.banner).to_be_visible()

    # Typed while it is down: kept as pending.
    second = f"typed while the server is down {tag()}"
    a.send(second)
    waiting = a.pending().filter(has_text=second)
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text("Waiting for connection")
    a.shot("offline-pending")

    srv.start()
    a.wait_online(timeout=20_000)
    b.wait_online(timeout=20_000)
    for page in (a, b):
        page.expect_once(first)
        page.expect_once(second)
    expect(a.pending()).to_have_count(0)
    texts = b.messages().get_by_test_id("message-text").all_text_contents()
    assert texts.index(first) < texts.index(second)

    # And the server stored each exactly once: a fresh page load reads them from history.
    b.page.reload()
    b.wait_online()
    b.expect_once(first)
    b.expect_once(second)

    # A tab closed while a send is unacknowledged: the send is kept (localStorage) and
    # delivered once when the page is opened again.
    srv.kill()
    expect(a.banner).to_be_visible()
    third = f"survives closing the tab {tag()}"
    a.send(third)
    expect(a.pending().filter(has_text=third)).to_have_count(1)
    context = a.page.context
    a.page.close()
    srv.start()
    b.wait_online(timeout=20_000)
    again = open_chat(srv.url, context=context).goto()
    expect(again.tid("me-name")).to_have_text(a_name)
    again.wait_online()
    again.expect_once(third)
    b.expect_once(third)
    expect(again.pending()).to_have_count(0)
    outboxes = "Object.keys(localStorage).filter(k => k.startsWith('chat.outbox'))"
    assert again.page.evaluate(outboxes) == []


@pytest.mark.alone  # 26 sends must outrun the refill (2 per second) to meet the limit
def test_rate_limited_sends_show_why_then_arrive_once_in_order(limited_server, open_chat):
    a = open_chat(limited_server.url).sign_in(unique("fst"))
    b = open_chat(limited_server.url).sign_in(unique("obs"))
    mark = tag()
    texts = [f"burst {mark} {i:02d}" for i in range(26)]
    box = a.tid("composer-input")
    for text in texts:
        box.fill(text)
        box.press("Enter")
    expect(a.tid("pending-list").get_by_test_id("msg-error").first).to_contain_text("too fast")
    a.shot("rate-limited")
    mine = b.messages().filter(has_text=f"burst {mark} ")
    expect(mine).to_have_count(len(texts), timeout=25_000)
    assert mine.get_by_test_id("message-text").all_text_contents() == texts
    expect(a.pending()).to_have_count(0)
    expect(a.messages().filter(has_text=f"burst {mark} ")).to_have_count(len(texts))


def test_usable_at_phone_width(server, open_chat):
    p = open_chat(server.url, viewport=PHONE).goto()
    expect(p.tid("signin-name")).to_be_visible()
    p.shot("phone-signin")
    name = unique("mob")
    p.sign_in(name)

    def no_sideways_scroll():
        width = p.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width

    no_sideways_scroll()
    expect(p.tid("sidebar")).to_be_hidden()
    expect(p.tid("menu-toggle")).to_be_visible()
    box = p.tid("composer-input").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert box["y"] + box["height"] <= PHONE["height"]
    send = p.tid("send-button").bounding_box()
    assert send["x"] + send["width"] <= PHONE["width"]

    hello = f"hello from a phone {tag()}"
    p.send(hello)
    p.expect_once(hello)
    p.shot("phone-lobby")

    # The drawer opens, closes with Escape, and closes when a conversation is picked.
    p.tid("menu-toggle").click()
    expect(p.tid("sidebar")).to_be_visible()
    expect(p.tid("menu-toggle")).to_have_attribute("aria-expanded", "true")
    p.shot("phone-drawer")
    p.page.keyboard.press("Escape")
    expect(p.tid("sidebar")).to_be_hidden()

    room = unique("#pocket")
    p.enter_room(room)
    expect(p.tid("sidebar")).to_be_hidden()
    in_room = f"a long message that has to wrap on a narrow screen {'x' * 80} {tag()}"
    p.send(in_room)
    p.expect_once(in_room)
    no_sideways_scroll()
    p.shot("phone-room")

    # A direct message from a desktop user: the menu button shows the unread count.
    d_name = unique("dsk")
    d = open_chat(server.url).sign_in(d_name)
    d.open_dm_with(name)
    ping = f"ping {tag()}"
    d.send(ping)
    expect(p.tid("menu-unread")).to_have_text("1")
    p.open_conv(f"@{d_name}", title=d_name)
    expect(p.tid("sidebar")).to_be_hidden()
    p.expect_once(ping)
    no_sideways_scroll()
    p.shot("phone-dm")


def test_more_missed_messages_than_one_replay_arrive_without_gaps(server, open_chat):
    """Replay stops at 1000 messages (welcome.replayTruncated): the page fetches the rest."""
    a_name = unique("gap")
    a = open_chat(server.url).sign_in(a_name)
    room = unique("#flood")
    a.enter_room(room)
    a.open_conv("lobby", title="Lobby")
    context = a.page.context
    a.page.close()

    total = 1100
    seeder = socketio.SimpleClient()
    seeder.connect(server.url, auth={"name": unique("fld")}, transports=["websocket"])
    try:
        assert seeder.call("joinRoom", {"room": room})["ok"]
        for i in range(1, total + 1):
            ack = seeder.call("sendMessage", {"content": f"flood {i:04d}", "destId": room})
            assert ack["ok"], ack
    finally:
        seeder.disconnect()

    back = open_chat(server.url, context=context).goto()
    expect(back.tid("me-name")).to_have_text(a_name)
    back.wait_online()
    expect(back.tid(f"unread-{room.lower()}")).to_have_text("99+", timeout=20_000)
    back.open_conv(room, title=room)
    expect(back.messages().filter(has_text="flood ")).to_have_count(total, timeout=20_000)
    texts = back.messages().get_by_test_id("message-text").all_text_contents()
    assert texts == [f"flood {i:04d}" for i in range(1, total + 1)]


def test_full_server_is_explained_on_the_form(server_factory, open_chat):
    srv = server_factory(args=("--max-connections", "1"))
    first = open_chat(srv.url).sign_in(unique("one"))
    late = open_chat(srv.url).goto()
    late.tid("signin-name").fill(unique("two"))
    late.tid("signin-submit").click()
    expect(late.tid("signin-error")).to_contain_text("full")
    expect(late.tid("signin-view")).to_be_visible()
    expect(late.tid("signin-submit")).to_be_enabled()
    # Once the first person leaves, the same form works.
    first.tid("signout-button").click()
    expect(first.tid("signin-view")).to_be_visible()
    late.tid("signin-submit").click()
    expect(late.tid("chat-view")).to_be_visible()
    late.wait_online()


def test_network_drop_shows_banner_and_replays_what_this_tab_missed(server, open_chat):
    a_name, b_name = unique("net"), unique("tlk")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    room = unique("#wifi")
    a.enter_room(room)
    b.enter_room(room)
    a.open_conv("lobby", title="Lobby")

    a.page.context.set_offline(True)
    expect(a.banner).to_be_visible()
    expect(a.banner).to_contain_text("Reconnecting")
    missed_lobby = f"lobby while offline {tag()}"
    missed_room = f"room while offline {tag()}"
    b.send(missed_room)
    b.expect_once(missed_room)
    b.open_conv("lobby", title="Lobby")
    b.send(missed_lobby)
    b.expect_once(missed_lobby)
    queued = f"written offline {tag()}"
    a.send(queued)
    expect(a.pending().filter(has_text=queued)).to_have_count(1)
    # Meanwhile another tab of ann's saw newer messages and moved the shared lastId on:
    # this tab must still ask for what *it* missed.
    a.page.evaluate(f"localStorage.setItem('chat.lastId.{a_name.lower()}', '999999999')")

    a.page.context.set_offline(False)
    a.wait_online(timeout=15_000)
    a.expect_once(missed_lobby)
    a.expect_once(queued)
    b.expect_once(queued)
    expect(a.tid(f"unread-{room.lower()}")).to_have_text("1")
    a.open_conv(room, title=room)
    a.expect_once(missed_room)


def test_too_many_connections_are_explained_and_retried(server_factory, open_chat,
                                                        client_factory):
    """Past CONNECT_RATE (`rate_limited`, docs/protocol.md §1.6) the form says why; a tab
    resuming its session says so in the banner and gets in once the budget refills."""
    srv = server_factory(env={"CONNECT_RATE": "2/16"})  # two at once, then one per 8 s
    name = unique("rl")
    a = open_chat(srv.url).sign_in(name)
    client_factory().connect(srv.url)  # the address's budget is spent now
    late = open_chat(srv.url).goto()
    late.tid("signin-name").fill(unique("late"))
    late.tid("signin-submit").click()
    expect(late.tid("signin-error")).to_contain_text("Too many attempts")
    expect(late.tid("signin-submit")).to_be_enabled()
    a.page.reload()
    expect(a.banner).to_contain_text("Too many attempts")
    expect(a.tid("me-name")).to_have_text(name)
    a.wait_online(timeout=30_000)
