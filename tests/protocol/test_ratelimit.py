"""PROTOCOL.md section 5: the send rate limit (token bucket per connection and per user)."""

import threading
import time

from support.checks import err, ok
from support.names import uid, uname
from support.server import private_server

RATE, PERIOD = 20, 10.0


def allowed_max(elapsed):
    """The most sends a full bucket may accept within `elapsed` seconds."""
    return RATE + int(elapsed * RATE / PERIOD) + 1


def split(acks):
    oks = [a for a in acks if isinstance(a, dict) and a.get("ok") is True]
    refused = [a for a in acks if a not in oks]
    for a in refused:
        err(a, "rate_limited")
    return oks, refused


def test_sends_beyond_20_per_connection_are_rate_limited(limited_server, connect):
    """A connection gets 20 message/sendMessage sends; more are `rate_limited` and undelivered."""
    c = connect(limited_server.url)
    watcher = connect(limited_server.url)
    tag = uid()
    t0 = time.monotonic()
    acks = c.call_many("message", [f"{tag} m{i}" for i in range(12)])
    acks += c.call_many("sendMessage", [{"content": f"{tag} d{i}", "destId": watcher.sid}
                                        for i in range(13)])
    elapsed = time.monotonic() - t0
    c.emit("message", f"{tag} no ack")  # at once: the bucket refills 2 tokens a second
    oks, refused = split(acks)
    assert RATE <= len(oks) <= allowed_max(elapsed), f"{len(oks)} accepted in {elapsed:.2f}s"
    assert refused, "nothing was rate limited"
    delivered = {a["message"]["text"] for a in oks}
    time.sleep(0.3)
    seen = {m["text"] for m in watcher.events("reply", lambda m: m["text"].startswith(tag))
            if m["text"] != f"{tag} no ack"}
    assert seen == delivered, "a rate-limited message was delivered (or an accepted one lost)"
    e = c.wait_for("error", lambda p: p.get("code") == "rate_limited")
    assert e["event"] == "message" and isinstance(e["message"], str)
    assert ok(c.call("listUsers"))["users"], "other events must keep working"


def test_limit_is_per_user_across_tabs(limited_server, connect):
    """Two tabs of one user share one budget of 20."""
    t1 = connect(limited_server.url, auth={"name": uname("rl")})
    t2 = connect(limited_server.url, auth={"token": t1.token})
    results = {}
    t0 = time.monotonic()

    def burst(client, key):
        results[key] = client.call_many("message", [f"{key} {i}" for i in range(14)])

    threads = [threading.Thread(target=burst, args=(t, k)) for t, k in ((t1, "t1"), (t2, "t2"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(15)
    elapsed = time.monotonic() - t0
    oks, refused = split(results["t1"] + results["t2"])
    assert RATE <= len(oks) <= allowed_max(elapsed), f"{len(oks)} of 28 accepted across tabs"
    assert len(refused) == 28 - len(oks)


def test_idempotent_retries_are_not_counted(limited_server, connect):
    """Retries of accepted clientIds are acked with the original even with an empty bucket."""
    c = connect(limited_server.url, auth={"name": uname("retry")})
    t0 = time.monotonic()
    cids = [uid(16) for _ in range(RATE)]
    first = [ok(a)["message"] for a in
             c.call_many("message", [{"text": f"r{i}", "clientId": cid}
                                     for i, cid in enumerate(cids)])]
    again = [ok(a)["message"] for a in
             c.call_many("message", [{"text": f"r{i}", "clientId": cid}
                                     for i, cid in enumerate(cids)])]
    assert again == first
    fresh = c.call_many("message", [{"text": f"new{i}", "clientId": uid(16)} for i in range(4)])
    elapsed = time.monotonic() - t0
    oks, refused = split(fresh)
    assert len(oks) <= allowed_max(elapsed) - RATE, "retries seem to have used the budget"
    assert refused, "a full bucket should be empty after 20 sends"


def test_malformed_sends_count_as_attempts(limited_server, connect):
    """The limit counts attempts: 20 invalid or too long sends, on both events, empty the
    bucket as 20 good ones would, and the good sends after them are `rate_limited`."""
    c = connect(limited_server.url, auth={"name": uname("bad")})
    bad = [("message", ""), ("message", "x" * 2001), ("message", {"text": 5}),
           ("message", {"text": "ok", "clientId": ""}), ("sendMessage", {"content": "hi"}),
           ("sendMessage", {"content": "x" * 2001, "destId": c.sid})]
    t0 = time.monotonic()
    acks = []
    for i in range(RATE):
        event, payload = bad[i % len(bad)]
        acks += c.call_many(event, [payload])
    for a in acks:
        err(a, "invalid_payload", "too_large", "rate_limited")
    fresh = c.call_many("message", [f"good {i}" for i in range(4)])
    elapsed = time.monotonic() - t0
    oks, refused = split(fresh)
    assert len(oks) <= allowed_max(elapsed) - RATE, "malformed sends were not counted"
    assert refused, "20 malformed sends should have emptied the bucket"


def test_bucket_refills_over_time(limited_server, connect):
    """After the bucket is emptied, waiting lets a few sends through again."""
    c = connect(limited_server.url)
    oks, refused = split(c.call_many("message", [f"fill {i}" for i in range(RATE + 3)]))
    assert refused
    time.sleep(1.2)  # 2 tokens per second at 20 per 10 s
    oks, refused = split(c.call_many("message", [f"later {i}" for i in range(6)]))
    assert 1 <= len(oks) <= 4, f"{len(oks)} accepted after 1.2 s"


three_per_ten_server = private_server({"RATE_LIMIT": "3/10"})


def test_rate_limit_is_configurable(three_per_ten_server, connect):
    """RATE_LIMIT=3/10 allows 3 sends per 10 s."""
    srv = three_per_ten_server
    c = connect(srv.url)
    oks, refused = split(c.call_many("message", [f"c{i}" for i in range(6)]))
    assert len(oks) == 3 and len(refused) == 3


def test_rate_limit_off_allows_bursts(server, connect):
    """RATE_LIMIT=off (the shared test server) accepts a burst of 60."""
    c = connect(server.url)
    oks, refused = split(c.call_many("message", [f"burst {i}" for i in range(60)]))
    assert len(oks) == 60 and not refused
