"""The page's messages that change and read state (docs/protocol.md §8, §9; issue 15):
edit and delete shown in place to the other user and the other tab, Up arrow and Escape in
the composer, replies with their quote and the jump to it, reactions toggled with counts,
unread badges and the divider cleared by viewing and synced to a second tab, "Seen" in a
DM, @ autocomplete and highlighted mentions, and search opening the conversation at the
message found. Two users, and two tabs of one of them."""

import uuid

import pytest
import socketio
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def second_tab(open_chat, chat):
    """Another tab of the same browser profile: it resumes the same identity."""
    tab = open_chat(chat.base_url, context=chat.page.context).goto()
    tab.wait_online()
    return tab


def shared_room(a, b):
    room = unique("#chg")
    a.enter_room(room)
    b.enter_room(room)
    return room


def menu(chat, text):
    """Open the menu of the message showing `text`; returns the message."""
    msg = chat.messages(text)
    msg.hover()
    msg.get_by_test_id("message-menu").click()
    expect(msg.get_by_test_id("message-actions")).to_be_visible()
    return msg


def seeder(url, name, room):
    client = socketio.SimpleClient()
    client.connect(url, auth={"name": name}, transports=["websocket"])
    ack = client.call("joinRoom", {"room": room})
    assert ack["ok"], ack
    return client


def test_edit_and_delete_show_in_place_for_the_other_user_and_tab(server, open_chat):
    a_name, b_name = unique("ed"), unique("rd")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    room = shared_room(a, b)
    a2 = second_tab(open_chat, a)
    a2.open_conv(room.lower(), title=room)

    first = f"helo wrold {uuid.uuid4().hex[:4]}"
    a.send(first)
    for chat in (a, b, a2):
        chat.expect_once(first)

    # Edit from the menu: the composer holds the text, Enter saves.
    msg = menu(a, first)
    expect(msg.get_by_test_id("action-delete")).to_be_visible()
    msg.get_by_test_id("action-edit").click()
    box = a.tid("composer-input")
    expect(box).to_have_value(first)
    expect(a.tid("composer-context")).to_contain_text("Editing")
    fixed = f"hello world {uuid.uuid4().hex[:4]}"
    box.fill(fixed)
    box.press("Enter")
    expect(box).to_have_value("")
    expect(a.tid("composer-context")).to_be_hidden()
    for chat in (b, a2, a):
        chat.expect_once(fixed)
        expect(chat.messages(fixed).get_by_test_id("message-edited")).to_be_visible()
        chat.expect_absent(first)

    # bob may not edit or delete ann's message.
    other = menu(b, fixed)
    expect(other.get_by_test_id("action-edit")).to_have_count(0)
    expect(other.get_by_test_id("action-delete")).to_have_count(0)
    b.page.keyboard.press("Escape")
    expect(other.get_by_test_id("message-actions")).to_have_count(0)

    # Up arrow in the empty composer edits the last own message; Escape gives the draft back.
    box.click()
    box.press("ArrowUp")
    expect(box).to_have_value(fixed)
    box.press("Escape")
    expect(box).to_have_value("")
    expect(a.tid("composer-context")).to_be_hidden()
    box.press("ArrowUp")
    expect(box).to_have_value(fixed)
    final = f"hello everyone <b>{uuid.uuid4().hex[:4]}</b>"
    box.fill(final)
    box.press("Enter")
    for chat in (b, a2):
        chat.expect_once(final)
    assert b.messages(final).get_by_test_id("message-text").evaluate("e => e.textContent") == final
    assert b.messages(final).locator("b").count() == 0

    # Delete: a second click confirms; everyone sees the tombstone in place.
    msg = menu(a, final)
    msg.get_by_test_id("action-delete").click()
    expect(msg.get_by_test_id("action-delete")).to_contain_text("again")
    msg.get_by_test_id("action-delete").click()
    for chat in (a, b, a2):
        expect(chat.tid("message-deleted")).to_have_count(1)
        chat.expect_absent(final)
    a.shot("changes-deleted")

    # The room's owner (ann) deletes bob's message too.
    said = f"owner may remove this {uuid.uuid4().hex[:4]}"
    b.send(said)
    a.expect_once(said)
    msg = menu(a, said)
    expect(msg.get_by_test_id("action-edit")).to_have_count(0)
    msg.get_by_test_id("action-delete").click()
    msg.get_by_test_id("action-delete").click()
    for chat in (a, b, a2):
        expect(chat.tid("message-deleted")).to_have_count(2)
        chat.expect_absent(said)

    # A reload shows the state from history: edited and deleted.
    b.page.reload()
    b.wait_online()
    expect(b.tid("conv-title")).to_have_text(room)
    expect(b.tid("message-deleted")).to_have_count(2)


def test_replies_quote_and_jump_and_reactions_toggle(server, open_chat):
    a_name, b_name = unique("rp"), unique("rx")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    room = shared_room(a, b)
    a2 = second_tab(open_chat, a)
    a2.open_conv(room.lower(), title=room)

    # An old message, far back: 80 others after it, then a reply to it.
    seed = seeder(server.url, unique("sd"), room)
    try:
        old = seed.call("sendMessage", {"content": "the original question", "destId": room})
        assert old["ok"], old
        for i in range(80):
            seed.call("sendMessage", {"content": f"filler {i:02d}", "destId": room})
        answer = seed.call("sendMessage", {"content": "an answer to it", "destId": room,
                                            "replyTo": old["message"]["id"]})
        assert answer["ok"], answer
    finally:
        seed.disconnect()
    b.expect_once("an answer to it")
    b.page.reload()  # now only the newest page is held
    b.wait_online()
    b.expect_once("an answer to it")
    expect(b.messages("the original question")).to_have_count(0)
    quote = b.messages("an answer to it").get_by_test_id("reply-quote")
    expect(quote).to_be_visible()
    quote.click()
    original = b.messages("the original question")
    expect(original).to_be_in_viewport()
    expect(original).to_have_class("msg flash")
    # Scrolling down loads the newer pages back: the answer again, once.
    for _ in range(10):
        if b.messages("an answer to it").count():
            break
        b.tid("scroller").evaluate(
            "el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }")
        b.page.wait_for_timeout(300)
    b.expect_once("an answer to it")
    ids = b.messages().evaluate_all("els => els.map(e => Number(e.dataset.id))")
    assert ids == sorted(ids) and len(ids) == len(set(ids))

    # A reply from the page: the quote shows who and what, and jumps to it.
    ask = f"which one {uuid.uuid4().hex[:4]}"
    a.send(ask)
    b.expect_once(ask)
    msg = menu(b, ask)
    msg.get_by_test_id("action-reply").click()
    expect(b.tid("composer-context")).to_contain_text(f"Replying to {a_name}")
    reply = f"this one {uuid.uuid4().hex[:4]}"
    b.send(reply)
    expect(b.tid("composer-context")).to_be_hidden()
    for chat in (a, a2, b):
        chat.expect_once(reply)
        q = chat.messages(reply).get_by_test_id("reply-quote")
        expect(q).to_contain_text(a_name)
        expect(q).to_contain_text(ask)
    a.messages(reply).get_by_test_id("reply-quote").click()
    expect(a.messages(ask)).to_have_class("msg mine flash")

    # Reactions: bob picks one, ann adds hers by clicking it, then takes it back.
    msg = menu(b, ask)
    msg.get_by_test_id("pick-emoji").first.click()
    thumbs = "👍"
    for chat in (a, a2, b):
        r = chat.messages(ask).locator(f'[data-testid="reaction"][data-emoji="{thumbs}"]')
        expect(r.get_by_test_id("reaction-count")).to_have_text("1")
        you = " (you)" if chat is b else ""
        expect(r).to_have_attribute("title", f"{b_name}{you} reacted with {thumbs}")
    mine = a.messages(ask).locator(f'[data-testid="reaction"][data-emoji="{thumbs}"]')
    expect(mine).to_have_attribute("aria-pressed", "false")
    mine.click()
    for chat in (a, a2, b):
        r = chat.messages(ask).locator(f'[data-testid="reaction"][data-emoji="{thumbs}"]')
        expect(r.get_by_test_id("reaction-count")).to_have_text("2")
    expect(mine).to_have_attribute("aria-pressed", "true")
    expect(a2.messages(ask).locator('[data-testid="reaction"]')).to_have_attribute(
        "aria-pressed", "true")
    expect(mine).to_have_attribute("title", f"{b_name}, {a_name} (you) reacted with {thumbs}")
    mine.click()
    for chat in (a, a2, b):
        r = chat.messages(ask).locator(f'[data-testid="reaction"][data-emoji="{thumbs}"]')
        expect(r.get_by_test_id("reaction-count")).to_have_text("1")
    expect(mine).to_have_attribute("aria-pressed", "false")

    # Any emoji typed in; bob's own reaction clicked goes away for everyone.
    msg = menu(a, ask)
    msg.get_by_test_id("emoji-input").fill("🦄")
    msg.get_by_test_id("emoji-add").click()
    unicorn = b.messages(ask).locator('[data-testid="reaction"][data-emoji="🦄"]')
    expect(unicorn.get_by_test_id("reaction-count")).to_have_text("1")
    b.messages(ask).locator(f'[data-testid="reaction"][data-emoji="{thumbs}"]').click()
    for chat in (a, a2, b):
        expect(chat.messages(ask).locator(f'[data-emoji="{thumbs}"]')).to_have_count(0)
        expect(chat.messages(ask).get_by_test_id("reaction")).to_have_count(1)
    a.shot("changes-reactions")


def test_unread_badges_divider_synced_tabs_and_seen(server, open_chat):
    a_name, b_name = unique("un"), unique("pe")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    a2 = second_tab(open_chat, a)
    expect(a2.tid("conv-title")).to_have_text("Lobby")

    # bob writes: both of ann's tabs count it.
    b.open_dm_with(a_name)
    b.send("dm one")
    b.expect_once("dm one")
    b.send("dm two")
    b.expect_once("dm two")
    key = f"@{b_name.lower()}"
    for chat in (a, a2):
        expect(chat.tid(f"unread-{key}")).to_have_text("2")
    expect(b.tid("seen")).to_have_count(0)

    # ann reads in one tab: the divider is at the first unread one, the other tab's count
    # goes (readMarker), bob sees "Seen" under his last message (read).
    a.open_conv(key, title=b_name)
    a.expect_once("dm two")
    divider = a.tid("unread-divider")
    expect(divider).to_have_count(1)
    following = divider.evaluate(
        "el => el.nextElementSibling.querySelector('[data-testid=message-text]').textContent")
    assert following == "dm one"
    expect(a2.tid(f"unread-{key}")).to_have_count(0)
    expect(b.messages("dm two").get_by_test_id("seen")).to_have_count(1)
    expect(b.tid("seen")).to_have_count(1)
    b.shot("dm-seen")

    # A new message while ann looks: read at once, "Seen" moves down; no new count.
    b.send("dm three")
    a.expect_once("dm three")
    expect(b.messages("dm three").get_by_test_id("seen")).to_have_count(1)
    expect(b.tid("seen")).to_have_count(1)
    expect(a2.tid(f"unread-{key}")).to_have_count(0)

    # Away from it, a mention in a room: counted, and marked as a mention.
    room = unique("#men")
    a.enter_room(room)
    b.enter_room(room)
    a.open_conv("lobby", title="Lobby")
    b.send(f"look @{a_name} here")
    expect(a.tid(f"unread-{room.lower()}")).to_have_text("1")
    expect(a.tid(f"mentions-{room.lower()}")).to_be_visible()
    b.open_conv(f"@{a_name.lower()}", title=a_name)
    b.send("dm four")
    expect(a.tid(f"unread-{key}")).to_have_text("1")

    # A tab opened now learns the counts from its welcome (lastRead, unread, mentions).
    a2.page.reload()
    a2.wait_online()
    expect(a2.tid(f"unread-{key}")).to_have_text("1")
    expect(a2.tid(f"unread-{room.lower()}")).to_have_text("1")
    expect(a2.tid(f"mentions-{room.lower()}")).to_be_visible()

    # Reading the room in the reloaded tab clears it in the first one.
    a2.open_conv(room.lower(), title=room)
    expect(a2.tid("unread-divider")).to_have_count(1)
    expect(a2.tid("mention-me")).to_have_text(f"@{a_name}")
    expect(a.tid(f"unread-{room.lower()}")).to_have_count(0)
    expect(a.tid(f"mentions-{room.lower()}")).to_have_count(0)
    # Reading it again later: no divider any more.
    a2.open_conv("lobby", title="Lobby")
    a2.open_conv(room.lower(), title=room)
    expect(a2.tid("unread-divider")).to_have_count(0)


def test_mention_autocomplete_and_highlight(server, open_chat):
    a_name, b_name = unique("au"), unique("bz")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    room = shared_room(a, b)
    a.page.reload()  # the room now comes from the welcome: its members are asked for
    a.wait_online()
    expect(a.tid("conv-title")).to_have_text(room)

    box = a.tid("composer-input")
    box.click()
    box.press_sequentially(f"hi @{b_name[:3]}", delay=20)
    options = a.tid("mention-option")
    expect(options).to_have_count(1)
    expect(options).to_have_text(f"@{b_name}")
    box.press("Enter")  # takes the name, does not send
    expect(box).to_have_value(f"hi @{b_name} ")
    expect(a.tid("mention-list")).to_be_hidden()
    box.press_sequentially("how are you", delay=5)
    box.press("Enter")
    text = f"hi @{b_name} how are you"
    b.expect_once(text)
    a.expect_once(text)
    expect(b.messages(text).get_by_test_id("mention-me")).to_have_text(f"@{b_name}")
    expect(a.messages(text).get_by_test_id("mention")).to_have_text(f"@{b_name}")
    expect(a.messages(text).get_by_test_id("mention-me")).to_have_count(0)

    # Escape closes the list and keeps the text; nobody matches: no list.
    box.press_sequentially("@", delay=5)
    expect(options).to_have_count(1)
    box.press("Escape")
    expect(a.tid("mention-list")).to_be_hidden()
    expect(box).to_have_value("@")
    box.press_sequentially("zzzz", delay=5)
    expect(a.tid("mention-list")).to_be_hidden()
    b.shot("mention-highlight")


def test_search_opens_the_conversation_at_the_message(server, open_chat):
    a_name, b_name = unique("se"), unique("fi")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    room = shared_room(a, b)
    word = f"quokka{uuid.uuid4().hex[:6]}"
    a.send(f"the {word} lives on an island")
    b.expect_once(f"the {word} lives on an island")
    seed = seeder(server.url, unique("sd"), room)
    try:
        for i in range(80):
            seed.call("sendMessage", {"content": f"noise {i:02d}", "destId": room})
    finally:
        seed.disconnect()
    b.expect_once("noise 79")
    b.open_conv("lobby", title="Lobby")

    b.tid("search-input").fill(word[:-2])  # the last word matches as a prefix
    b.tid("search-input").press("Enter")
    result = b.tid("search-result")
    expect(result).to_have_count(1)
    expect(result).to_contain_text(room)
    expect(result).to_contain_text(a_name)
    b.shot("search-results")
    result.click()
    expect(b.tid("search-panel")).to_be_hidden()
    expect(b.tid("conv-title")).to_have_text(room)
    found = b.messages(f"the {word} lives on an island")
    expect(found).to_be_in_viewport()
    expect(found).to_have_class("msg flash")

    # Nothing found says so; a deleted message is never found.
    b.tid("search-input").fill(f"nothing{uuid.uuid4().hex[:8]}")
    b.tid("search-input").press("Enter")
    expect(b.tid("search-status")).to_contain_text("No messages")
    b.tid("search-close").click()
    expect(b.tid("search-panel")).to_be_hidden()


def test_a_press_on_a_reaction_survives_the_message_redrawing_before_the_release(
        server, open_chat):
    """A message is drawn again whenever someone reacts to it or edits it. Chromium fires
    no click when the element pressed has left the document by the release, so a message
    redrawn by replacing its node would swallow a click on its reaction straddling that."""
    a_name, b_name, c_name = unique("rp"), unique("rx"), unique("rz")
    a = open_chat(server.url).sign_in(a_name)
    b = open_chat(server.url).sign_in(b_name)
    c = open_chat(server.url).sign_in(c_name)
    room = shared_room(a, b)
    c.enter_room(room)
    # Everything that adds a line to ann's page comes before the press: nothing scrolls.
    expect(a.tid("notice").filter(has_text=f"{c_name} joined")).to_have_count(1)
    text = f"react to this {uuid.uuid4().hex[:4]}"
    b.send(text)
    for chat in (a, c):
        chat.expect_once(text)
    menu(b, text).get_by_test_id("pick-emoji").first.click()
    thumbs = "👍"
    chip = a.messages(text).locator(f'[data-testid="reaction"][data-emoji="{thumbs}"]')
    expect(chip.get_by_test_id("reaction-count")).to_have_text("1")
    expect(c.messages(text).get_by_test_id("reaction-count")).to_have_text("1")

    a.hold_mouse_on(chip)
    # While the chip is held, a third user adds the same reaction: the message redraws.
    menu(c, text).get_by_test_id("pick-emoji").first.click()
    expect(chip.get_by_test_id("reaction-count")).to_have_text("2")
    a.page.mouse.up()

    expect(chip).to_have_attribute("aria-pressed", "true")
    for chat in (a, b, c):
        r = chat.messages(text).locator(f'[data-testid="reaction"][data-emoji="{thumbs}"]')
        expect(r.get_by_test_id("reaction-count")).to_have_text("3")
