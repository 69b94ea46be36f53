"""Assertions on what the server answers: acks, MESSAGEs, USER and ROOM_INFO lists,
refused connections; and `eventually` for what becomes true a little later."""

import time

import pytest

from support.client import WAIT_TIMEOUT, ConnectRefused


def ok(ack):
    """Assert the ack is a success object and return it."""
    assert isinstance(ack, dict), f"ack is not one object: {ack!r}"
    assert ack.get("ok") is True, f"expected ok ack, got {ack!r}"
    return ack


def err(ack, *codes):
    """Assert the ack is a failure with one of `codes`; return the code."""
    assert isinstance(ack, dict), f"ack is not one object: {ack!r}"
    assert ack.get("ok") is False, f"expected failed ack with {codes}, got {ack!r}"
    error = ack.get("error")
    assert isinstance(error, dict), f"ack error is not an object: {ack!r}"
    assert error.get("code") in codes, f"expected code in {codes}, got {ack!r}"
    assert isinstance(error.get("message"), str) and error["message"], \
        f"error message must be a non-empty string: {ack!r}"
    return error["code"]


def assert_has(actual, expected):
    """Assert `actual` is an object holding `expected`'s fields (servers may add fields)."""
    assert isinstance(actual, dict), f"expected an object like {expected!r}, got {actual!r}"
    wrong = {k: actual.get(k, "<missing>") for k, v in expected.items() if actual.get(k) != v}
    assert not wrong, f"expected {expected!r}; these differ: {wrong!r} in {actual!r}"
    return actual


def check_message(msg, **expected):
    """Assert `msg` has the MESSAGE shape, and the given field values."""
    assert isinstance(msg, dict), f"not a MESSAGE: {msg!r}"
    for key in ("id", "conversation", "kind", "from", "fromSid", "to", "text", "ts"):
        assert key in msg, f"MESSAGE lacks {key!r}: {msg!r}"
    assert isinstance(msg["id"], int) and not isinstance(msg["id"], bool), msg
    assert msg["kind"] in ("broadcast", "room", "direct"), msg
    assert isinstance(msg["conversation"], str) and isinstance(msg["text"], str), msg
    assert isinstance(msg["from"], str) and isinstance(msg["fromSid"], str), msg
    assert msg["to"] is None or isinstance(msg["to"], str), msg
    assert isinstance(msg["ts"], int) and not isinstance(msg["ts"], bool), msg
    assert abs(msg["ts"] - time.time() * 1000) < 120_000, f"ts not epoch ms now: {msg!r}"
    for key, value in expected.items():
        key = {"from_": "from"}.get(key, key)
        assert msg[key] == value, f"MESSAGE {key!r}: expected {value!r}, got {msg!r}"
    return msg


def user_entry(users, name):
    """The USER entry named `name` (case-insensitively) in a USER list, or None."""
    return _entry(users, "name", name)


def room_entry(rooms, room):
    """The ROOM_INFO for `room` (case-insensitively) in a list, or None."""
    return _entry(rooms, "room", room)


def _entry(entries, field, value):
    for entry in entries:
        if isinstance(entry, dict) and str(entry.get(field, "")).lower() == value.lower():
            return entry
    return None


def eventually(check, timeout=WAIT_TIMEOUT, interval=0.05):
    """Retry `check()` until it stops raising AssertionError; return its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


def expect_refused(connect, url, auth, *codes, **kw):
    """Assert that connecting with `auth` is refused with a connect error in `codes`."""
    with pytest.raises(ConnectRefused) as info:
        connect(url, auth=auth, **kw)
    refusal = info.value
    assert isinstance(refusal.data, dict), \
        f"connect error has no data object: {refusal.payload!r}"
    assert refusal.code in codes, \
        f"expected connect error code in {codes}, got {refusal.payload!r}"
    assert isinstance(refusal.data.get("message"), str) and refusal.data["message"], \
        f"connect error data lacks a message: {refusal.payload!r}"
    return refusal
