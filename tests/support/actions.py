"""Protocol steps that assert they succeeded, so tests read as what a user does."""

import threading
import time

from support.checks import ok


def send(client, text, **kw):
    """Send a lobby `message` with an ack; return the MESSAGE (asserting ok)."""
    payload = {"text": text, **kw} if kw else text
    return ok(client.call("message", payload))["message"]


def send_to(client, dest, content, **kw):
    """`sendMessage` to `dest` with an ack; return the MESSAGE (asserting ok)."""
    return ok(client.call("sendMessage", {"content": content, "destId": dest, **kw}))["message"]


def join(client, room, **kw):
    """`joinRoom` with an ack; return the ack (asserting ok)."""
    return ok(client.call("joinRoom", {"room": room, **kw}))


def send_while_store_is_locked(sender, prober, release, text="while locked"):
    """Send `text` from `sender` while the store is locked from outside, and meanwhile
    time `prober`'s listUsers round trips; `release()` lifts the lock once the send is
    answered. Returns (the send's ack, seconds the send waited, the round trips).

    If the store ran on the event loop, every round trip would wait as long as the send."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "ack", sender.call("message", text, timeout=20)))
    started = time.monotonic()
    thread.start()
    round_trips = []
    try:
        while thread.is_alive() and time.monotonic() - started < 20:
            t0 = time.monotonic()
            ok(prober.call("listUsers"))
            round_trips.append(time.monotonic() - t0)
            time.sleep(0.05)
        thread.join(20)
    finally:
        release()
    return result.get("ack"), time.monotonic() - started, round_trips
