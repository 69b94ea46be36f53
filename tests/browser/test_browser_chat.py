"""The chat page in a real browser: lobby, rooms, direct messages, the composer, safe text."""

import uuid

import pytest
import socketio
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_lobby_room_and_direct_chat_and_what_a_third_sees(server, open_chat):
    a_name, b_name, c_name = unique("ann"), unique("bob"), unique("cat")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    c = open_chat(server.url).sign_in(c_name)

    # Presence: everyone is listed as online for the others.
    expect(a.tid(f"user-{b_name.lower()}")).to_be_visible()
    expect(a.tid(f"user-{c_name.lower()}")).to_be_visible()

    # Lobby: everyone sees it, once.
    hello = f"hello lobby {uuid.uuid4().hex[:6]}"
    a.send(hello)
    for page in (a, b, c):
        page.expect_once(hello)
    expect(a.pending()).to_have_count(0)
    expect(b.messages(hello).get_by_test_id("message-from")).to_have_text(a_name)

    # A room: ann creates it, bob joins it; cat does not.
    room = unique("#talk")
    a.enter_room(room)
    expect(a.tid("close-room")).to_be_visible()
    b.join_room(room.lstrip("#"))  # the # is optional in the form
    expect(b.tid("conv-title")).to_have_text(room)
    expect(b.tid("close-room")).to_be_hidden()  # not the owner
    expect(a.tid("notice").filter(has_text=f"{b_name} joined")).to_have_count(1)

    in_room = f"room only {uuid.uuid4().hex[:6]}"
    a.send(in_room)
    a.expect_once(in_room)
    b.expect_once(in_room)

    # Direct: ann clicks bob in the online list.
    a.open_dm_with(b_name)
    secret = f"just for bob {uuid.uuid4().hex[:6]}"
    a.send(secret)
    a.expect_once(secret)
    # bob is in the room: the DM shows up with an unread count, opened with the keyboard.
    dm_key = f"@{a_name.lower()}"
    expect(b.tid(f"unread-{dm_key}")).to_have_text("1")
    b.conv_button(dm_key).focus()
    b.page.keyboard.press("Enter")
    expect(b.tid("conv-title")).to_have_text(a_name)
    b.expect_once(secret)
    expect(b.tid(f"unread-{dm_key}")).to_have_count(0)
    answer = f"thanks ann {uuid.uuid4().hex[:6]}"
    b.send(answer)
    a.expect_once(answer)
    b.expect_once(answer)

    a.shot("desktop-dm")
    b.open_conv(room.lower(), title=room)
    b.shot("desktop-room")

    # The third user sees the lobby, but neither the room nor the DM.
    c.expect_once(hello)
    expect(c.conv_button(room)).to_have_count(0)
    expect(c.conv_button(f"@{a_name}")).to_have_count(0)
    expect(c.conv_button(f"@{b_name}")).to_have_count(0)
    for text in (in_room, secret, answer):
        c.expect_absent(text)
    c.shot("desktop-lobby")


def test_private_room_refuses_wrong_password_and_owner_closes_it(server, open_chat):
    owner, guest, third = unique("own"), unique("vis"), unique("out")
    a = open_chat(server.url).sign_in(owner)
    b = open_chat(server.url).sign_in(guest)
    c = open_chat(server.url).sign_in(third)

    room = unique("#vault")
    a.join_room(room, password="open sesame")
    expect(a.tid("conv-title")).to_have_text(room)
    expect(a.tid("conv-meta")).to_contain_text("Private room")
    early = f"said before you came {uuid.uuid4().hex[:6]}"
    a.send(early)
    a.expect_once(early)

    # Wrong password, then none: refused, explained beside the password field.
    b.join_room(room, password="guess")
    expect(b.tid("room-password-error")).to_contain_text("Wrong password")
    expect(b.conv_button(room)).to_have_count(0)
    b.shot("private-room-refused")
    b.join_room(room)
    expect(b.tid("room-password-error")).to_contain_text("private")
    expect(b.conv_button(room)).to_have_count(0)

    # A private room is not listed to outsiders.
    c.ensure_sidebar()
    c.tid("room-panel-toggle").click()
    c.tid("browse-rooms").click()
    expect(c.tid("public-room-list").locator("li").first).to_be_visible()
    expect(c.tid(f"public-room-{room.lower()}")).to_have_count(0)

    # The right password: in, with the history from before.
    b.join_room(room, password="open sesame")
    expect(b.tid("conv-title")).to_have_text(room)
    b.expect_once(early)
    expect(b.tid("close-room")).to_be_hidden()

    # Only the owner can close it; closing removes it for every member.
    close = a.tid("close-room")
    close.click()
    expect(close).to_contain_text("again")
    close.click()
    expect(a.conv_button(room)).to_have_count(0)
    expect(b.conv_button(room)).to_have_count(0)
    expect(b.tid("toast")).to_contain_text("closed")
    expect(b.tid("conv-title")).to_have_text("Lobby")
    c.expect_absent(early)


def test_leave_room_and_dm_to_unknown_user_shows_error(server, open_chat):
    a_name, b_name = unique("lea"), unique("sta")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    room = unique("#hall")
    a.enter_room(room)
    b.enter_room(room)

    b.tid("leave-room").click()
    expect(b.conv_button(room)).to_have_count(0)
    expect(b.tid("conv-title")).to_have_text("Lobby")
    expect(a.tid("notice").filter(has_text=f"{b_name} left")).to_have_count(1)
    after = f"after you left {uuid.uuid4().hex[:6]}"
    a.send(after)
    a.expect_once(after)
    b.expect_absent(after)

    # A direct message to a name nobody has: the error is shown beside that message.
    nobody = unique("nobody")
    b.ensure_sidebar()
    b.tid("dm-panel-toggle").click()
    b.tid("dm-name").fill(nobody)
    b.tid("dm-submit").click()
    expect(b.tid("conv-title")).to_have_text(nobody)
    b.send("anyone there?")
    failed = b.tid("failed-message")
    expect(failed).to_have_count(1)
    expect(failed.get_by_test_id("msg-error")).to_contain_text("no such")
    b.shot("dm-error")
    failed.get_by_test_id("discard-send").click()
    expect(failed).to_have_count(0)


def test_composer_typing_newlines_and_counter(server, open_chat):
    a_name, b_name = unique("typ"), unique("rdr")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    a.open_dm_with(b_name)
    b.open_dm_with(a_name)

    box = a.tid("composer-input")
    box.click()
    box.press_sequentially("hel", delay=30)
    expect(b.tid("typing-indicator")).to_have_text(f"{a_name} is typing…")

    # Shift+Enter is a new line; Enter sends.
    box.press_sequentially("lo", delay=10)
    box.press("Shift+Enter")
    box.press_sequentially("second line", delay=5)
    expect(box).to_have_value("hello\nsecond line")
    box.press("Enter")
    expect(box).to_have_value("")
    b.expect_once("hello\nsecond line")
    text = b.messages("hello\nsecond line").get_by_test_id("message-text")
    assert text.evaluate("el => el.textContent") == "hello\nsecond line"
    expect(b.tid("typing-indicator")).to_have_text("")

    # The counter appears near the limit; over it, nothing is sent.
    box.fill("x" * 1990)
    expect(a.tid("char-counter")).to_have_text("10 characters left")
    box.fill("y" * 2003)
    expect(a.tid("char-counter")).to_have_text("3 characters over the limit")
    box.press("Enter")
    expect(a.tid("composer-error")).to_contain_text("too long")
    expect(a.pending()).to_have_count(0)
    box.fill("")
    expect(a.tid("char-counter")).to_have_text("")


def test_html_and_script_payloads_render_as_text(server, open_chat):
    a = open_chat(server.url).sign_in(unique("mal"))
    b = open_chat(server.url).sign_in(unique("vic"))
    payloads = [
        '<img src=x onerror="window.__pwned=1;alert(1)">',
        "<script>window.__pwned=2;alert(2)</script>",
        '<b>bold</b> &amp; <a href="javascript:alert(3)">click</a> "quoted"',
        "javascript:alert(4) and data:text/html,<h1>x</h1>",
    ]
    for p in payloads:
        a.send(p)
    for p in payloads:
        b.expect_once(p)
    lst = b.tid("message-list")
    for p in payloads:
        node = b.messages(p).get_by_test_id("message-text")
        assert node.evaluate("el => el.textContent") == p
    assert lst.locator("img, script, b, h1, a[href^='javascript'], a[href^='data']").count() == 0
    assert b.page.evaluate("window.__pwned") is None
    assert a.page.evaluate("window.__pwned") is None

    # A plain http(s) link becomes a safe anchor; the rest stays text.
    a.send("see https://example.com/page?a=1&b=2.")
    link = b.messages("see https://example.com/page?a=1&b=2.").locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.com/page?a=1&b=2")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    b.shot("html-as-text")
    assert b.dialogs == [] and a.dialogs == []


def test_older_history_loads_when_scrolling_up(server, open_chat):
    room = unique("#long")
    seeder = socketio.SimpleClient()
    seeder.connect(server.url, auth={"name": unique("seed")}, transports=["websocket"])
    try:
        ack = seeder.call("joinRoom", {"room": room})
        assert ack["ok"], ack
        for i in range(1, 131):
            ack = seeder.call("sendMessage", {"content": f"line {i:03d}", "destId": room})
            assert ack["ok"], ack
    finally:
        seeder.disconnect()

    r = open_chat(server.url).sign_in(unique("rdr"))
    r.enter_room(room)
    r.expect_once("line 130")
    assert r.messages().count() < 130  # only the newest page at first
    expect(r.messages("line 001")).to_have_count(0)

    scroller = r.tid("scroller")
    for _ in range(10):
        if r.messages("line 001").count():
            break
        before = r.messages().count()
        scroller.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        expect(r.messages()).not_to_have_count(before)
    expect(r.messages()).to_have_count(130)
    r.expect_once("line 001")
    expect(r.tid("history-status")).to_contain_text("beginning")
    ids = r.messages().evaluate_all("els => els.map(e => Number(e.dataset.id))")
    assert ids == sorted(ids) and len(set(ids)) == 130


def test_a_press_on_a_room_survives_the_sidebar_redrawing_before_the_release(server, open_chat):
    """The sidebar redraws on every message, unread count and presence change. Chromium
    fires no click when the element pressed has left the document by the release, so a
    sidebar that rebuilt its buttons would swallow a click straddling a redraw."""
    a_name, b_name = unique("ann"), unique("bob")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    room = unique("#held")
    a.enter_room(room)
    b.enter_room(room)
    expect(a.tid("notice").filter(has_text=f"{b_name} joined")).to_have_count(1)
    a.open_conv("lobby", title="Lobby")

    a.hold_mouse_on(a.conv_button(room))
    # While the button is held, a message arrives in that room: the sidebar redraws (the
    # room's unread count).
    said = f"while you pressed {uuid.uuid4().hex[:6]}"
    b.send(said)
    expect(a.tid(f"unread-{room.lower()}")).to_have_text("1")
    a.page.mouse.up()

    expect(a.conv_button(room)).to_have_attribute("aria-current", "true")
    expect(a.tid("conv-title")).to_have_text(room)
    a.expect_once(said)


def test_a_press_on_a_public_room_survives_the_list_redrawing_before_the_release(
        server, open_chat):
    """The list of public rooms is asked again after every room event in the user's rooms
    and drawn again: a press on a room in it must not be lost to that redraw."""
    a_name, b_name, c_name = unique("ann"), unique("bob"), unique("cat")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    c = open_chat(server.url).sign_in(c_name)
    # ours (two members, soon three) sorts above theirs (one): the room whose count changes
    # stays above the one pressed, and does not push it from under the pointer.
    ours, theirs = unique("#ours"), unique("#theirs")
    a.enter_room(ours)
    b.enter_room(ours)
    b.enter_room(theirs)
    expect(a.tid("notice").filter(has_text=f"{b_name} joined")).to_have_count(1)

    a.ensure_sidebar()
    if a.page.locator("#room-panel").get_attribute("open") is None:
        a.tid("room-panel-toggle").click()
    a.tid("browse-rooms").click()
    rows = a.tid("public-room-list").locator("li")
    ours_row = rows.filter(has=a.tid(f"public-room-{ours.lower()}"))
    expect(ours_row).to_contain_text("2 members")
    pick = a.tid(f"public-room-{theirs.lower()}")
    expect(pick).to_be_visible()

    a.hold_mouse_on(pick)
    # While the button is held, someone joins a room of the user's: the list is asked
    # again and redrawn.
    c.enter_room(ours)
    expect(ours_row).to_contain_text("3 members")
    a.page.mouse.up()

    expect(a.conv_button(theirs)).to_have_count(1)
    expect(a.tid("conv-title")).to_have_text(theirs)
