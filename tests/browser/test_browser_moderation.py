"""The page's moderation (docs/protocol.md §10; issue 16): the member list with roles on
every member's page, the menu on a member offering what the table allows (setRole, kick,
ban, mute for a while, unmute), a muted member's composer saying until when, kicked and
banned members leaving the room (a banned one cannot come back until unbanned), a server
admin's banUser ending the target's session with a clear word and no reconnect loop after
a reload, and blocking a user from the DM header."""

import time
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def shared_room(owner, *others):
    room = unique("#mod")
    owner.enter_room(room)
    for chat in others:
        chat.enter_room(room)
    return room


def open_members(chat):
    toggle = chat.tid("members-toggle")
    if toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    expect(chat.tid("member-panel")).to_be_visible()


def member(chat, name):
    return chat.tid("member-list").get_by_test_id(f"member-{name.lower()}")


def see_everyone(chat, *names):
    """Open the member panel on `chat` and wait until it lists exactly `names`: every join
    has reached this page and been drawn. A row drawn late, above the one being clicked,
    would move the button away from under the pointer between press and release."""
    open_members(chat)
    for name in names:
        expect(member(chat, name)).to_have_count(1)
    expect(chat.tid("member-list").locator("li[data-name]")).to_have_count(len(names))


def member_menu(chat, name):
    """Open the menu on `name` in the member panel; returns its actions."""
    open_members(chat)
    # An earlier action still waiting for its ack closes the menu when the ack comes: wait
    # for it first, so that the menu seen open now stays open.
    expect(chat.tid("member-panel")).not_to_have_attribute("aria-busy", "true")
    row = member(chat, name)
    actions = row.get_by_test_id("member-actions")
    if actions.count() == 0:
        row.get_by_test_id("member-menu").click()
    expect(actions).to_be_visible()
    return actions


def make_moderator(owner, name):
    member_menu(owner, name).get_by_test_id("member-action-role-moderator").click()
    expect(member(owner, name)).to_have_attribute("data-role", "moderator")


def test_owner_makes_a_member_moderator_and_both_pages_show_it(server, open_chat):
    own, mem = unique("own"), unique("mem")
    a = open_chat(server.url).sign_in(own)
    b = open_chat(server.url).sign_in(mem)
    room = shared_room(a, b)

    for chat in (a, b):
        see_everyone(chat, own, mem)
        expect(member(chat, own)).to_have_attribute("data-role", "owner")
        expect(member(chat, own).get_by_test_id("member-role")).to_have_text("owner")
        expect(member(chat, mem)).to_have_attribute("data-role", "member")

    # A member may do nothing to the owner: only "Message" (and the admin try, folded).
    theirs = member_menu(b, own)
    expect(theirs.get_by_test_id("member-action-message")).to_be_visible()
    for action in ("role-moderator", "kick", "ban", "mute-600"):
        expect(theirs.get_by_test_id(f"member-action-{action}")).to_have_count(0)
    expect(theirs.get_by_test_id("member-action-admin")).to_be_visible()

    # The owner has the whole menu on a member, and makes them a moderator.
    mine = member_menu(a, mem)
    for action in ("role-moderator", "kick", "ban", "mute-600", "mute-3600", "mute-86400",
                   "mute-0"):
        expect(mine.get_by_test_id(f"member-action-{action}")).to_be_visible()
    mine.get_by_test_id("member-action-role-moderator").click()
    for chat in (a, b):
        expect(member(chat, mem)).to_have_attribute("data-role", "moderator")
        expect(member(chat, mem).get_by_test_id("member-role")).to_have_text("moderator")
        expect(chat.messages()).to_have_count(0)  # notices are not messages
        expect(chat.page.get_by_test_id("notice").filter(has_text="moderator")).to_have_count(1)
    a.shot("moderation-members")

    # The role outlives a reload (ROOM_INFO.moderators, §10.1).
    b.page.reload()
    b.wait_online()
    b.open_conv(room.lower(), title=room)
    open_members(b)
    expect(member(b, mem)).to_have_attribute("data-role", "moderator")
    expect(member(b, own)).to_have_attribute("data-role", "owner")

    # And back to member; the menu now offers "Make moderator" again.
    member_menu(a, mem).get_by_test_id("member-action-role-member").click()
    for chat in (a, b):
        expect(member(chat, mem)).to_have_attribute("data-role", "member")
    expect(member_menu(a, mem).get_by_test_id("member-action-role-moderator")).to_be_visible()


def test_moderator_mutes_a_member_who_sees_until_when_then_unmutes(server, open_chat):
    own, mod, mem = unique("own"), unique("mod"), unique("mem")
    a = open_chat(server.url).sign_in(own)
    b = open_chat(server.url).sign_in(mod)
    c = open_chat(server.url).sign_in(mem)
    room = shared_room(a, b, c)
    see_everyone(a, own, mod, mem)
    make_moderator(a, mod)
    see_everyone(b, own, mod, mem)
    expect(member(b, mod)).to_have_attribute("data-role", "moderator")

    # A moderator may not act on the owner, nor set roles (§10.2).
    on_owner = member_menu(b, own)
    for action in ("kick", "ban", "mute-600", "role-member", "role-moderator"):
        expect(on_owner.get_by_test_id(f"member-action-{action}")).to_have_count(0)
    on_member = member_menu(b, mem)
    expect(on_member.get_by_test_id("member-action-kick")).to_be_visible()
    expect(on_member.get_by_test_id("member-action-role-moderator")).to_have_count(0)

    on_member.get_by_test_id("member-action-mute-600").click()
    muted = c.tid("composer-muted")
    expect(muted).to_be_visible()
    expect(muted).to_contain_text(f"You are muted in {room} until")
    expect(muted).to_contain_text(mod)
    expect(c.tid("composer-input")).to_be_disabled()
    expect(c.tid("send-button")).to_be_disabled()
    for chat in (a, b):
        expect(member(chat, mem).get_by_test_id("member-muted")).to_contain_text("muted until")
    c.shot("moderation-muted")

    # The page forgets a mute over a reload (nothing on the wire says it again): the
    # server still refuses, and the refused message says why.
    c.page.reload()
    c.wait_online()
    c.open_conv(room.lower(), title=room)
    c.send("may I speak?")
    failed = c.tid("failed-message")
    expect(failed).to_have_count(1)
    expect(failed.get_by_test_id("msg-error")).to_contain_text("muted")
    b.expect_absent("may I speak?")
    failed.get_by_test_id("discard-send").click()

    # Unmute: the member writes again, and everyone sees it.
    member_menu(b, mem).get_by_test_id("member-action-mute-0").click()
    expect(c.tid("composer-input")).to_be_enabled()
    expect(muted).to_be_hidden()
    expect(member(b, mem).get_by_test_id("member-muted")).to_have_count(0)
    c.send("thanks, I will behave")
    for chat in (a, b, c):
        chat.expect_once("thanks, I will behave")

    # Muted live again, for a day: the composer says so and it lifts as live.
    member_menu(b, mem).get_by_test_id("member-action-mute-86400").click()
    expect(muted).to_contain_text("until")
    expect(c.tid("composer-input")).to_be_disabled()
    expect(member(a, mem).get_by_test_id("member-muted")).to_contain_text("muted until")
    member_menu(a, mem).get_by_test_id("member-action-mute-0").click()
    expect(c.tid("composer-input")).to_be_enabled()


def test_kick_and_ban_from_the_menu(server, open_chat):
    own, mem = unique("own"), unique("mem")
    a = open_chat(server.url).sign_in(own)
    b = open_chat(server.url).sign_in(mem)
    room = shared_room(a, b)
    see_everyone(a, own, mem)

    # Kick: the member's page leaves the room and says why; they may join again.
    member_menu(a, mem).get_by_test_id("member-action-kick").click()
    expect(b.conv_button(room.lower())).to_have_count(0)
    expect(b.tid("conv-title")).to_have_text("Lobby")
    expect(b.tid("conv-error")).to_contain_text(f"You were removed from {room} by {own}")
    expect(member(a, mem)).to_have_count(0)
    expect(a.page.get_by_test_id("notice").filter(has_text=f"{mem} was removed")).to_have_count(1)
    b.enter_room(room)
    expect(member(a, mem)).to_have_count(1)

    # Ban: a second click confirms; the member is out and cannot come back.
    ban = member_menu(a, mem).get_by_test_id("member-action-ban")
    ban.click()
    expect(ban).to_contain_text("again")
    expect(b.tid("conv-title")).to_have_text(room)  # not yet
    ban.click()
    expect(b.conv_button(room.lower())).to_have_count(0)
    expect(b.tid("conv-error")).to_contain_text(f"You were banned from {room} by {own}")
    expect(member(a, mem)).to_have_count(0)
    b.join_room(room)
    expect(b.tid("room-name-error")).to_contain_text("banned")
    expect(b.tid("conv-title")).to_have_text("Lobby")

    # The owner lifts the ban from the panel's "Banned here"; the member joins again.
    banned = a.tid("member-banned-list").get_by_test_id(f"banned-{mem.lower()}")
    expect(banned).to_be_visible()
    banned.get_by_test_id("member-action-unban").click()
    expect(banned).to_have_count(0)
    b.enter_room(room)
    expect(member(a, mem)).to_have_attribute("data-role", "member")


def test_a_press_on_the_menu_survives_the_panel_redrawing_before_the_release(
        server, open_chat):
    """The member panel redraws on every presence change and room event. Chromium fires no
    click when the element pressed has left the document by the release, so a panel that
    rebuilt its rows would swallow a click straddling a redraw: it must update them in place."""
    # "zed…" sorts after "mem…": the late member's row comes below the held button.
    own, mem, late = unique("own"), unique("mem"), unique("zed")
    a = open_chat(server.url).sign_in(own)
    b = open_chat(server.url).sign_in(mem)
    room = shared_room(a, b)
    see_everyone(a, own, mem)

    kick = member_menu(a, mem).get_by_test_id("member-action-kick")
    kick.scroll_into_view_if_needed()
    box = kick.bounding_box()
    a.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    a.page.mouse.down()
    # While the button is held, someone comes online and joins: the panel redraws.
    c = open_chat(server.url).sign_in(late)
    c.join_room(room)
    expect(member(a, late)).to_have_count(1)
    a.page.mouse.up()

    expect(b.conv_button(room.lower())).to_have_count(0)
    expect(b.tid("conv-error")).to_contain_text(f"You were removed from {room} by {own}")
    expect(member(a, mem)).to_have_count(0)


def _handshakes(chat):
    """Count the Engine.IO handshakes (new sessions) the page makes from now on."""
    seen = []

    def on_request(request):
        url = request.url
        if "/socket.io/" in url and "sid=" not in url:
            seen.append(url)

    chat.page.on("request", on_request)
    return seen


def test_admin_bans_a_user_from_the_server(server_factory, open_chat):
    boss, target = unique("boss"), unique("tgt")
    srv = server_factory(env={"ADMINS": boss})
    a = open_chat(srv.url).sign_in(boss, password="correct horse battery")
    t = open_chat(srv.url).sign_in(target, password="target's own password")
    shared_room(t, a)  # the target owns the room; the admin is a plain member there
    see_everyone(t, target, boss)
    see_everyone(a, target, boss)

    # Not an admin: the target's try is refused, and the panel says so.
    actions = member_menu(t, boss)
    actions.get_by_test_id("member-action-admin").click()
    ban_server = actions.get_by_test_id("member-action-banUser-true")
    ban_server.click()
    ban_server.click()
    expect(t.tid("member-error")).to_contain_text("only a server admin")

    # The admin: "Server admin…" unfolds kick/ban/mute on the owner and the server ban.
    actions = member_menu(a, target)
    expect(actions.get_by_test_id("member-action-kick")).to_have_count(0)
    actions.get_by_test_id("member-action-admin").click()
    expect(actions.get_by_test_id("member-action-kick")).to_be_visible()
    ban_server = actions.get_by_test_id("member-action-banUser-true")
    ban_server.click()
    expect(ban_server).to_contain_text("again")
    ban_server.click()

    # The target's page: why the connection ended, and no more tries.
    expect(t.banner).to_have_attribute("data-state", "banned")
    expect(t.banner).to_contain_text(f"banned from this chat server by {boss}")
    t.shot("moderation-banned")
    expect(a.tid("toast")).to_contain_text(f"{target} is banned from the server")

    # Now known as an admin, the page shows admin actions at once.
    actions = member_menu(a, target)
    expect(actions.get_by_test_id("member-action-kick")).to_be_visible()
    expect(actions.get_by_test_id("member-action-admin")).to_have_count(0)

    # A reload: refused with `banned` (§1.6), said clearly, no reconnect loop.
    handshakes = _handshakes(t)
    t.page.reload()
    expect(t.banner).to_have_attribute("data-state", "banned")
    expect(t.banner).to_contain_text("banned from this chat server")
    expect(t.tid("me-name")).to_have_text(target)
    time.sleep(6)
    assert len(handshakes) <= 2, handshakes  # the page's one try (polling, maybe websocket)
    expect(t.banner).to_have_attribute("data-state", "banned")

    # Signing in afresh (another browser) is refused on the form, with the reason.
    fresh = open_chat(srv.url).goto()
    fresh.tid("signin-name").fill(target)
    fresh.tid("signin-password").fill("target's own password")
    fresh.tid("signin-submit").click()
    expect(fresh.tid("signin-error")).to_contain_text("banned from this chat server")
    expect(fresh.tid("signin-submit")).to_be_enabled()

    # Lifted: the next reload gets in.
    member_menu(a, target).get_by_test_id("member-action-banUser-false").click()
    expect(a.tid("toast")).to_contain_text(f"{target} may connect again")
    t.page.reload()
    t.wait_online()

    # The DM header's "Ban from server" asks for a second click too, and opening another
    # conversation disarms it.
    a.open_dm_with(target)
    ban = a.tid("ban-user")
    expect(ban).to_have_text("Ban from server")
    ban.click()
    expect(ban).to_have_text("Click again to ban from the server")
    a.open_conv("lobby", "Lobby")
    a.open_dm_with(target)
    expect(ban).to_have_text("Ban from server")
    ban.click()
    ban.click()
    expect(t.banner).to_have_attribute("data-state", "banned")
    expect(a.tid("toast")).to_contain_text(f"{target} is banned from the server")


def test_block_in_the_dm_header_stops_the_other_users_dms(server, open_chat):
    me, pest = unique("me"), unique("pest")
    a = open_chat(server.url).sign_in(me)
    b = open_chat(server.url).sign_in(pest)
    a.open_dm_with(pest)
    b.open_dm_with(me)
    b.send("hello there")
    a.expect_once("hello there")

    block = a.tid("block-user")
    expect(block).to_have_text("Block")
    block.click()
    expect(block).to_have_text("Unblock")
    expect(block).to_have_attribute("aria-pressed", "true")
    expect(a.tid("conv-meta")).to_contain_text("You blocked them")

    b.send("are you there?")
    failed = b.tid("failed-message")
    expect(failed).to_have_count(1)
    expect(failed.get_by_test_id("msg-error")).to_contain_text(
        f"{me} does not accept your direct messages")
    time.sleep(0.5)
    a.expect_absent("are you there?")
    b.shot("moderation-blocked")

    # The block outlives a reload (welcome.blocked, §10.5).
    a.page.reload()
    a.wait_online()
    expect(a.tid("block-user")).to_have_text("Unblock")

    a.tid("block-user").click()
    expect(a.tid("block-user")).to_have_text("Block")
    failed.get_by_test_id("retry-send").click()
    a.expect_once("are you there?")
    b.expect_once("are you there?")
