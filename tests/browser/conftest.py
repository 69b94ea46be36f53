"""Browser fixtures: Debian's Chromium driven by Playwright for Python.

The browser is never downloaded: tests use the system Chromium (`apt-get install chromium`)
and are skipped when it is missing. The page under test is served by the real server
(`server` / `server_factory` from tests/conftest.py).
"""

import os
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 375, "height": 740}

# The server runs in another process and may be restarted: be patient, but not forever.
expect.set_options(timeout=10_000)


class ChatPage:
    """One browser tab on the chat page, with helpers that read like a person using it."""

    def __init__(self, page, base_url):
        self.page = page
        self.base_url = base_url
        self.page_errors = []
        self.csp_violations = []
        self.dialogs = []
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("console", self._on_console)
        page.on("dialog", self._on_dialog)

    def _on_console(self, msg):
        if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
            self.csp_violations.append(msg.text)

    def _on_dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    # -- locators --------------------------------------------------------------------
    def tid(self, test_id):
        return self.page.get_by_test_id(test_id)

    @property
    def banner(self):
        return self.tid("conn-banner")

    def messages(self, text=None):
        """Confirmed (acknowledged or received) messages in the open conversation."""
        loc = self.tid("message-list").get_by_test_id("message")
        if text is not None:
            text_node = self.page.get_by_test_id("message-text").get_by_text(text, exact=True)
            loc = loc.filter(has=text_node)
        return loc

    def pending(self):
        return self.tid("pending-list").get_by_test_id("pending-message")

    def conv_button(self, key):
        return self.tid(f"conv-{key.lower()}")

    # -- actions ---------------------------------------------------------------------
    def goto(self):
        self.page.goto(self.base_url + "/")
        return self

    def sign_in(self, name, password=None):
        self.goto()
        self.tid("signin-name").fill(name)
        if password:
            self.tid("signin-password").fill(password)
        self.tid("signin-submit").click()
        expect(self.tid("me-name")).to_have_text(name)
        self.wait_online()
        return self

    def wait_online(self, timeout=10_000):
        expect(self.banner).to_have_attribute("data-state", "online", timeout=timeout)
        expect(self.banner).to_be_hidden()

    def ensure_sidebar(self):
        """On a phone the sidebar is a drawer: open it first."""
        toggle = self.tid("menu-toggle")
        if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
            expect(self.tid("sidebar")).to_be_visible()

    def open_conv(self, key, title=None):
        self.ensure_sidebar()
        self.conv_button(key).click()
        expect(self.conv_button(key)).to_have_attribute("aria-current", "true")
        if title is not None:
            expect(self.tid("conv-title")).to_have_text(title)

    def open_dm_with(self, name):
        self.ensure_sidebar()
        self.tid(f"user-{name.lower()}").click()
        expect(self.tid("conv-title")).to_have_text(name)

    def join_room(self, room, password=None):
        self.ensure_sidebar()
        panel = self.page.locator("#room-panel")
        if panel.get_attribute("open") is None:
            self.tid("room-panel-toggle").click()
        self.tid("room-name").fill(room)
        self.tid("room-password").fill(password or "")
        self.tid("room-submit").click()

    def enter_room(self, room, password=None):
        """Join (or create) `room` and wait until it is the open conversation."""
        self.join_room(room, password)
        expect(self.tid("conv-title")).to_have_text(room)

    def hold_mouse_on(self, locator):
        """Press the mouse button on the middle of `locator` and keep it down: the release
        (self.page.mouse.up()) is the test's to send, after whatever should come between."""
        locator.scroll_into_view_if_needed()
        box = locator.bounding_box()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        self.page.mouse.down()

    def send(self, text):
        box = self.tid("composer-input")
        box.fill(text)
        box.press("Enter")

    def expect_once(self, text, timeout=10_000):
        """`text` is shown exactly once as a confirmed message (and stays so)."""
        expect(self.messages(text)).to_have_count(1, timeout=timeout)
        time.sleep(0.3)  # a late duplicate would show up here
        expect(self.messages(text)).to_have_count(1)

    def expect_absent(self, text):
        expect(self.page.get_by_text(text)).to_have_count(0)

    def shot(self, name):
        ARTIFACTS.mkdir(exist_ok=True)
        # Let transitions (the phone drawer) settle first.
        self.page.evaluate("Promise.allSettled(document.getAnimations().map(a => a.finished))")
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def open_chat(browser):
    """open_chat(base_url, viewport=None, context=None) -> ChatPage in a new (or given) context."""
    contexts = []
    pages = []

    def make(base_url, viewport=None, context=None):
        if context is None:
            context = browser.new_context(viewport=viewport or DESKTOP)
            contexts.append(context)
        chat = ChatPage(context.new_page(), base_url)
        pages.append(chat)
        return chat

    yield make

    problems = []
    for chat in pages:
        problems += [f"uncaught page error: {e}" for e in chat.page_errors]
        problems += [f"CSP violation: {v}" for v in chat.csp_violations]
        problems += [f"unexpected dialog: {d}" for d in chat.dialogs]
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)

