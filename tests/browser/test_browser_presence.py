"""The page's online list above PRESENCE_LIMIT (docs/protocol.md §7): the count from
`welcome.online` and `onlineCount`, the list paged in by `listUsers` with a search box
and "more", the users shown watched (`watchUsers`) so that their going and coming shows,
the watch list sent again after a reconnect; and at or below the limit, the v1 list."""

import uuid

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

LIMIT = 3
PAGE = 20  # users per listUsers page in static/directory.js
NAMED = ["alice", "albert", "bob", "carol"]


@pytest.fixture
def crowded_server(server_factory):
    return server_factory(env={"PRESENCE_LIMIT": str(LIMIT), "RATE_LIMIT": "off",
                               "EVENT_RATE": "off", "EVENT_WINDOW": "1000"})


@pytest.fixture
def online(client_factory):
    """online(url, name, token=None) -> a connected python-socketio ChatClient."""

    def connect(url, name, token=None):
        client = client_factory()
        client.connect(url, auth={"name": name, **({"token": token} if token else {})})
        return client

    return connect


def listed(page):
    return page.tid("user-list").locator(".user-btn")


def names_listed(page):
    return [button.get_attribute("data-name") for button in listed(page).all()]


def expect_online(page, name, is_online):
    state = "true" if is_online else "false"
    expect(page.tid(f"user-{name}")).to_have_attribute("data-online", state)


def test_above_the_limit_the_list_is_paged_searchable_and_watched(crowded_server, online,
                                                                 open_chat):
    srv = crowded_server
    fillers = [f"m{i:02d}" for i in range(PAGE)]
    clients = {name: online(srv.url, name) for name in NAMED + fillers}
    page = open_chat(srv.url).sign_in("zed")
    everyone = sorted(NAMED + fillers + ["zed"])  # all ASCII lower case: folded order

    # The count: welcome.online, here and in the lobby's header.
    expect(page.tid("online-count")).to_have_text(f"({len(everyone)})")
    expect(page.tid("conv-meta")).to_have_text(f"Everyone · {len(everyone)} online")

    # The list is not everyone: a page of listUsers, a search box, "more".
    search, more = page.tid("user-search"), page.tid("users-more")
    expect(search).to_be_visible()
    expect(listed(page)).to_have_count(PAGE)
    assert names_listed(page) == everyone[:PAGE]
    expect(more).to_be_visible()
    page.shot("presence-truncated-first-page")
    more.click()
    expect(listed(page)).to_have_count(len(everyone))
    assert names_listed(page) == everyone
    expect(more).to_be_hidden()
    expect(page.tid("user-zed")).to_contain_text("you")

    # Search by prefix, case-insensitively, as one types.
    search.fill("AL")
    expect(listed(page)).to_have_count(2)
    assert names_listed(page) == ["albert", "alice"]
    expect(more).to_be_hidden()
    page.shot("presence-truncated-search")

    # alice is shown, so watched: her leaving and coming back show, and count.
    expect_online(page, "alice", True)
    token = clients["alice"].token
    clients["alice"].disconnect()
    expect_online(page, "alice", False)
    expect(page.tid("online-count")).to_have_text(f"({len(everyone) - 1})")
    expect_online(page, "albert", True)
    clients["alice"] = online(srv.url, "alice", token)
    expect_online(page, "alice", True)
    expect(page.tid("online-count")).to_have_text(f"({len(everyone)})")

    # A DM opened from the list (no message yet, so not yet a DM peer for the server) stays
    # watched when the list no longer shows its peer.
    search.fill("bo")
    expect(listed(page)).to_have_count(1)
    page.tid("user-bob").click()
    expect(page.tid("conv-title")).to_have_text("bob")
    expect(page.tid("conv-meta")).to_have_text("Online")
    search.fill("nobody")
    expect(page.tid("user-list-note")).to_contain_text("No one online has a name starting with")
    expect(listed(page)).to_have_count(0)
    clients["bob"].disconnect()
    expect(page.tid("conv-meta")).to_contain_text("Offline")
    expect(page.conv_button("@bob").locator(".dot")).not_to_have_class("dot online")


def test_a_reconnect_asks_the_list_again_and_watches_anew(crowded_server, online, open_chat):
    srv = crowded_server
    # Enough to stay above the limit when two leave (at the limit everyone hears of all).
    clients = {name: online(srv.url, name) for name in [*NAMED, "m00", "m01", "m02"]}
    page = open_chat(srv.url).sign_in("zed")
    expect(page.tid("online-count")).to_have_text("(8)")
    page.tid("user-search").fill("al")
    expect(listed(page)).to_have_count(2)

    # Offline: the page misses carol leaving; back: a new welcome, a new connection.
    page.page.context.set_offline(True)
    expect(page.banner).to_contain_text("Reconnecting")
    clients["carol"].disconnect()
    page.page.context.set_offline(False)
    page.wait_online(timeout=15_000)
    expect(page.tid("online-count")).to_have_text("(7)")

    # The search typed before is asked again, and the new connection watches what it shows.
    expect(page.tid("user-search")).to_have_value("al")
    expect(listed(page)).to_have_count(2)
    assert names_listed(page) == ["albert", "alice"]
    clients["albert"].disconnect()
    expect_online(page, "albert", False)
    expect_online(page, "alice", True)
    expect(page.tid("online-count")).to_have_text("(6)")


def test_at_or_below_the_limit_the_list_is_everyone_until_it_grows_past_it(crowded_server,
                                                                           online, open_chat):
    srv = crowded_server
    online(srv.url, "ann")
    online(srv.url, "ben")
    page = open_chat(srv.url).sign_in("cy")

    # v1: everyone online listed, no search, no "more"; arrivals and departures show.
    expect(page.tid("online-count")).to_have_text("(3)")
    expect(listed(page)).to_have_count(3)
    assert names_listed(page) == ["cy", "ann", "ben"]  # yourself first, as before
    expect(page.tid("user-search")).to_be_hidden()
    expect(page.tid("users-more")).to_be_hidden()
    expect(page.tid("user-list-note")).to_be_hidden()

    # Past the limit, the server stops telling everyone of everyone and sends onlineCount
    # (at most every 5 s): the page then lists by listUsers.
    dee = online(srv.url, "dee")
    online(srv.url, "eve")
    expect(page.tid("user-search")).to_be_visible(timeout=15_000)
    expect(page.tid("online-count")).to_have_text("(5)")
    expect(listed(page)).to_have_count(5)
    assert names_listed(page) == ["ann", "ben", "cy", "dee", "eve"]
    dee.disconnect()
    expect_online(page, "dee", False)
    expect(page.tid("online-count")).to_have_text("(4)")


def test_a_press_on_a_name_survives_the_list_redrawing_before_the_release(server_factory,
                                                                          open_chat):
    """The online list redraws whenever anyone comes or goes. Chromium fires no click when
    the element pressed has left the document by the release, so a list that rebuilt its
    buttons would swallow a click straddling someone signing in."""
    srv = server_factory()  # no one else online: nothing but the arrival below moves
    tag = uuid.uuid4().hex[:6]
    # "zed…" sorts after "bob…": the late user's button comes below the held one.
    me, other, late = f"ann{tag}", f"bob{tag}", f"zed{tag}"
    a = open_chat(srv.url).sign_in(me)
    open_chat(srv.url).sign_in(other)
    expect(listed(a)).to_have_count(2)

    a.hold_mouse_on(a.tid(f"user-{other}"))
    # While the button is held, someone signs in: the list redraws.
    open_chat(srv.url).sign_in(late)
    expect(a.tid(f"user-{late}")).to_have_count(1)
    a.page.mouse.up()

    expect(a.tid("conv-title")).to_have_text(other)
    expect(a.conv_button(f"@{other}")).to_have_attribute("aria-current", "true")
