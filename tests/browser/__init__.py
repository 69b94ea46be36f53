"""Browser tests: the chat page in headless Chromium (marker: browser)."""
