"""Hostile input, generated: every client event with any JSON value, any nesting, any string.

Issue 5, "Hostile input". protocol/test_bad_payloads.py holds a hand-written table of bad
payloads and protocol/test_robustness.py a table of undecodable packets; here hypothesis
generates the inputs. Every example goes to a real server over one shared connection
(the *sender*), and after each one:

- the ack arrived within a bound (no hung handler) and is a valid success for that event
  or exactly `{"ok": false, "error": {"code": PROTOCOL CODE, "message": str}}`, with no
  traceback text; `unavailable` counts as a failure here (the store is healthy, so it can
  only mean a handler crashed);
- a *bystander* saw nothing unless the event succeeded and was meant to reach it (a lobby
  message, a DM to it, typing to it), and a *stranger* saw nothing at all after a
  failure: a sentinel sent after the ack reaches both, so anything the example caused
  would have arrived before it;
- the sender's connection still works (the next example's ack proves it) and was not
  disconnected; the server logs no traceback.

The bystander is only in private rooms whose passwords the sender never sees, so no
successful room action of the sender can reach it either.

The strings include empty ones, blanks, control characters, NUL, lone surrogates, right-to-
left and other bidi marks, zero-width characters, combining marks, astral characters, and
huge strings up to about 58 KB of JSON (the packet limit is 64 KiB). Values nest up to 100
deep through the client and about 3000 deep in the raw tests at the end, which send what
python-socketio's client cannot encode.
"""

import json
import re
import time
import unicodedata

import pytest
import socketio
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from support.actions import join
from support.checks import check_message, err, ok
from support.client import NO_DATA, ChatClient, disconnect_all
from support.names import dm_key, uid, uname, uroom
from support.server import private_server

# No budgets: one sender tries thousands of payloads (rooms included) as fast as acks come.
hostile_server = private_server({"RATE_LIMIT": "off", "EVENT_RATE": "off", "ROOM_RATE": "off"})

EVENTS = ("message", "sendMessage", "joinRoom", "leaveRoom", "closeRoom", "listRooms",
          "listUsers", "history", "typing")
# What a failure may say. `rate_limited` is off on this server and `unavailable` would
# mean a crash (the store is healthy), so neither is accepted.
FAILURE_CODES = {"invalid_payload", "too_large", "not_found", "forbidden", "bad_password"}
TRACEBACK_MARKS = re.compile(r"Traceback|File \"|\.py\b|line \d+|Error\(|Exception")
ACK_TIMEOUT = 15  # generous for a loaded CI machine: argon2 runs for private rooms
PACKET_BUDGET = 58_000  # bytes of JSON, under the 64 KiB packet limit

# Budgets: examples per test and transport (websocket, polling).
EXAMPLES = {"websocket": 100, "polling": 30}
# No shrinking: each failing example costs up to ACK_TIMEOUT, and the CI budget is tight;
# the failing example is reported as generated.
FUZZ = {"deadline": None, "database": None,
        "phases": (Phase.explicit, Phase.reuse, Phase.generate),
        "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                  HealthCheck.data_too_large, HealthCheck.filter_too_much]}


def fuzz_settings(transport_name, scale=1.0):
    return settings(max_examples=max(10, int(EXAMPLES[transport_name] * scale)), **FUZZ)


# -- strings ---------------------------------------------------------------------------

NASTY = [
    "", " ", "   \n\t  ", "\x00", "a\x00b", "\x01\x02\x1f\x7f", "\x1b[31mred\x1b[0m", "\r\n",
    "\u200f", "\u200e", "\u202e", "\u202egnp.exe", "\u2066x\u2069", "\u061c", "\ufeff",
    "\u200b", "\u200d", "\u2028\u2029", "a\u0301", "\u0301", "\ufffd", "\uffff",
    "\ud800", "\udfff", "x\udc00y", "\ud83d", "\U0001F600", "\U0010FFFF", "\U000E0041",
    "𝕬𝖑𝖎𝖈𝖊", "ﬀ", "İ", "ß", "Σ", "ς", "ǅ", "аlice", "<script>alert(1)</script>",
    "'; DROP TABLE messages; --", "%s%n%x", "{}", "[]", "null", "true", "0", "-1",
    "__proto__", "constructor", "../../etc/passwd", "lobby", "LOBBY", "#", "##", "#lobby",
    "dm:", "dm::", "dm:a:b", "guest-", "guest-0123456789", "\\", "\"", "'",
]
_chars = st.characters(exclude_categories=())  # every code point, lone surrogates too
small_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(_chars, max_size=24),
    st.text(st.sampled_from("ab#:-_. \u202e\u200f\ud800\x00\t"), max_size=12),
)


def _json_len(text):
    return len(json.dumps(text))


@st.composite
def huge_text(draw):
    """A long repetition of a (possibly nasty) piece, up to the packet budget."""
    piece = draw(st.one_of(st.sampled_from(["x", "é", "\u202e", "\ud800", " ", "\x00", "ab\ncd",
                                            "\U0001F600", "\u200b", "y "]),
                           st.text(_chars, min_size=1, max_size=4)))
    most = max(1, (PACKET_BUDGET - 200) // max(1, _json_len(piece) - 2))
    count = draw(st.one_of(st.integers(1, most), st.integers(1990, 2010).map(
        lambda n: min(n, most)), st.just(most)))
    return piece * count


@st.composite
def near_limit_text(draw):
    """Texts around the 2,000 code point limit, with padding that trimming removes."""
    n = draw(st.integers(1995, 2005))
    body = draw(st.sampled_from(["x", "é", "\U0001F600", "\u202e"])) * n
    pad = draw(st.sampled_from(["", " ", "\n\t ", "\u3000"]))
    return pad + body + pad


any_text = st.one_of(small_text, small_text, small_text, huge_text(), near_limit_text())

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2 ** 70), 2 ** 70),
    st.sampled_from([0, 1, -1, 100, 101, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, -(2 ** 63)]),
    st.floats(allow_nan=False, allow_infinity=False),
    small_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(small_text, children, max_size=4)),
    max_leaves=16,
)


def nested(depth, leaf="x"):
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


deep_values = st.integers(20, 100).map(nested)
any_value = st.one_of(json_values, json_values, any_text, deep_values,
                      st.binary(max_size=16))


# -- the stage -------------------------------------------------------------------------

class Stage:
    """The sender under test, two observers and a pinger, on the private server.

    - `bystander`: in no room the sender can join (its only room is private).
    - `stranger`: owns a public room and a private one; after a failed example it must
      have seen nothing.
    - `pinger`: after every example, types in a private room of the observers: the
      sentinel that tells everything the example caused has arrived.
    """

    def __init__(self, url, transport_name):
        self.url, self.transport = url, transport_name
        self.clients = []
        self.sender = None
        self.seen_ids = set()
        self.client_ids = {}
        self.examples = 0

    def _client(self, prefix, transport_name="websocket"):
        c = ChatClient()
        self.clients.append(c)
        c.connect(self.url, auth={"name": uname(prefix)}, transport=transport_name)
        return c

    def open(self):
        self.bystander = self._client("by")
        self.stranger = self._client("str")
        self.pinger = self._client("ping")
        self.sentinel_room = uroom("sentinel")
        secret = "pw-" + uid(16)
        join(self.pinger, self.sentinel_room, password=secret)
        join(self.bystander, self.sentinel_room, password=secret)
        join(self.stranger, self.sentinel_room, password=secret)
        self.strangers_room = uroom("public")
        join(self.stranger, self.strangers_room)
        self.secret_room = uroom("secret")
        join(self.stranger, self.secret_room, password="pw-" + uid(16))
        self.connect_sender()
        return self

    def connect_sender(self):
        self.sender = self._client("fuzz", self.transport)
        self.client_ids = {}  # clientIds are per user: a new sender starts afresh
        self.senders_room = uroom("mine")
        join(self.sender, self.senders_room)

    def close(self):
        disconnect_all(self.clients)
        for c in self.clients:  # python-engineio leaves a websocket open when the server
            ws = getattr(c.sio.eio, "ws", None)  # closed the connection under it
            if ws is not None:
                ws.shutdown()

    def targets(self):
        """Strings worth aiming at: real names, sids, rooms and conversation keys."""
        s, b, t = self.sender, self.bystander, self.stranger
        return [
            b.name, b.name.upper(), b.sid, t.name, t.sid, s.name, s.name.swapcase(), s.sid,
            self.pinger.name, self.senders_room, self.senders_room.upper(),
            self.strangers_room, self.strangers_room.lower(), self.secret_room,
            self.sentinel_room, self.sentinel_room.swapcase(), "#" + uid(8),
            dm_key(s.name, b.name), dm_key(b.name, t.name), dm_key(s.name, s.name),
            f"dm:{b.name}:{t.name}", "lobby", "#", uname("nobody"), "guest-" + uid(10),
        ]


@pytest.fixture(scope="module", params=["websocket", "polling"])
def stage(request, hostile_server):
    """The cast of `Stage` on the hostile server, kept for the module, per transport."""
    s = Stage(hostile_server.url, request.param).open()
    s.server = hostile_server
    yield s
    s.close()


# -- payload strategies, per event ----------------------------------------------------

def weighted(*choices):
    """One of the strategies, picked with the given weights (st.one_of flattens nested
    one_ofs and picks among all their branches alike, which drowns the plausible ones)."""
    total = sum(weight for weight, _ in choices)

    def pick(n):
        for weight, strategy in choices:
            if n < weight:
                return strategy
            n -= weight
        raise AssertionError(n)

    return st.integers(0, total - 1).flatmap(pick)


def field_value(stage, good):
    """A value for a known field: usually plausible, often hostile."""
    return weighted((6, good), (2, st.sampled_from(stage.targets())), (2, any_value))


def with_extras(base):
    """A dict strategy, plus any extra fields (which the server must ignore or refuse)."""
    return st.builds(lambda d, extra: {**extra, **d}, base,
                     st.dictionaries(small_text, json_values, max_size=3))


def optional(strategy):
    return weighted((4, strategy), (1, st.just(NO_DATA)))


def fixed_dict(stage, fields):
    """A dict with each of `fields` present or absent, plus extras, in any key order."""
    parts = {k: optional(v) for k, v in fields.items()}
    return with_extras(st.fixed_dictionaries(parts).map(
        lambda d: {k: v for k, v in d.items() if v is not NO_DATA}))


def several_args():
    return st.lists(st.one_of(json_values, small_text), min_size=2, max_size=3).map(tuple)


def encoded_size(event, payload):
    """About the size of the Socket.IO packet python-socketio's client makes of it."""
    args = [] if payload is NO_DATA else list(payload) if isinstance(payload, tuple) \
        else [payload]

    def plain(v):
        if isinstance(v, bytes):
            return "b" * len(v)
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return len(json.dumps([event, *plain(args)], separators=(",", ":"))) + 8


def payloads(stage, event):
    texts = any_text
    cids = weighted((3, st.just(NO_DATA)),
                    (3, st.text(st.characters(codec="ascii"), min_size=1, max_size=8)),
                    (1, small_text), (1, any_value))
    room = weighted(
        (6, st.sampled_from([stage.senders_room, stage.senders_room.upper(), stage.strangers_room,
                             stage.secret_room, stage.sentinel_room, "#" + uid(6)])),
        (3, st.text(st.sampled_from("abcXYZ09_-é#"), max_size=34).map(lambda x: "#" + x)))
    person = st.sampled_from([stage.bystander.name, stage.bystander.sid, stage.stranger.name,
                              stage.sender.name, stage.sender.sid, uname("nobody")])
    bounds = weighted((2, st.none()), (3, st.integers(-5, 10 ** 6)),
                      (2, st.sampled_from([1, 100, 101, 0])), (1, any_value))
    flag = weighted((4, st.booleans()), (1, any_value))
    shapes = {
        "message": weighted((1, texts), (2, fixed_dict(stage, {"text": texts,
                                                              "clientId": cids}))),
        "sendMessage": fixed_dict(stage, {"content": texts,
                                          "destId": field_value(stage, weighted(
                                              (1, person), (1, room))),
                                          "clientId": cids}),
        "joinRoom": fixed_dict(stage, {"room": field_value(stage, room),
                                       "password": st.one_of(small_text, any_value)}),
        "leaveRoom": fixed_dict(stage, {"room": field_value(stage, room)}),
        "closeRoom": fixed_dict(stage, {"room": field_value(stage, room)}),
        "listRooms": any_value,
        "listUsers": any_value,
        "history": fixed_dict(stage, {"conversation": field_value(stage, weighted(
                                          (2, person), (2, room), (1, st.just("lobby")))),
                                      "before": bounds, "after": bounds, "limit": bounds}),
        "typing": fixed_dict(stage, {"to": field_value(stage, weighted((1, person), (1, room))),
                                     "typing": flag}),
    }
    return weighted((1, st.just(NO_DATA)), (1, several_args()), (2, any_value),
                    (8, shapes[event]))


# -- checks ----------------------------------------------------------------------------

def no_traceback(ack):
    text = json.dumps(ack)
    assert not TRACEBACK_MARKS.search(text), f"traceback-like text in the ack: {ack!r}"


def check_failure(ack):
    assert set(ack) == {"ok", "error"}, f"failure ack has extra fields: {ack!r}"
    assert set(ack["error"]) == {"code", "message"}, ack
    code = err(ack, *FAILURE_CODES)
    assert len(ack["error"]["message"]) < 300, ack
    return code


def room_info(info):
    assert set(info) == {"room", "owner", "private", "members", "moderators"}, info
    assert isinstance(info["room"], str) and info["room"].startswith("#"), info
    assert info["owner"] is None or isinstance(info["owner"], str), info
    assert isinstance(info["private"], bool), info
    assert type(info["members"]) is int and info["members"] >= 1, info
    assert isinstance(info["moderators"], list), info  # v2 (docs/protocol.md §10.1)


def check_success(stage, event, payload, ack):
    """The ack is a valid success for `event`; returns what it means for the bystander."""
    s = stage.sender
    if event in ("message", "sendMessage"):
        assert set(ack) == {"ok", "message"}, ack
        msg = check_message(ack["message"], **{"from": s.name})
        cid = payload.get("clientId") if isinstance(payload, dict) else None
        text = payload if isinstance(payload, str) else \
            payload.get("text" if event == "message" else "content")
        if cid in stage.client_ids:
            assert msg == stage.client_ids[cid], "a clientId retry must return the original"
        else:
            assert msg["text"] == text, "text must be stored and returned as given"
            assert msg["fromSid"] == s.sid
            assert msg["id"] not in stage.seen_ids
            if event == "message":
                assert (msg["kind"], msg["conversation"], msg["to"]) == \
                    ("broadcast", "lobby", None), msg
            if cid is not None:
                stage.client_ids[cid] = msg
        fresh = msg["id"] not in stage.seen_ids
        stage.seen_ids.add(msg["id"])
        reaches = fresh and (msg["conversation"] == "lobby" or
                             msg["conversation"] == dm_key(s.name, stage.bystander.name))
        return [("reply", msg)] if reaches else []
    if event == "joinRoom":
        assert set(ack) == {"ok", "room", "members", "history"}, ack
        room_info(ack["room"])
        assert ack["room"]["room"].lower() != stage.sentinel_room.lower(), "joined a private room"
        assert ack["room"]["room"].lower() != stage.secret_room.lower(), "joined a private room"
        assert s.name in ack["members"] and all(isinstance(n, str) for n in ack["members"])
        assert stage.bystander.name not in ack["members"]
        for m in ack["history"]:
            check_message(m)
        return []
    if event in ("leaveRoom", "closeRoom"):
        assert ack == {"ok": True}, ack
        return []
    if event == "listRooms":
        assert set(ack) == {"ok", "rooms"}, ack
        for info in ack["rooms"]:
            room_info(info)
            assert info["room"].lower() not in (stage.sentinel_room.lower(),
                                                stage.secret_room.lower()), \
                f"listRooms shows a private room the sender is not in: {info!r}"
        return []
    if event == "listUsers":
        assert set(ack) == {"ok", "users"}, ack
        for u in ack["users"]:
            assert set(u) == {"name", "sids"} and isinstance(u["sids"], list), u
        assert s.sid in [sid for u in ack["users"] for sid in u["sids"]]
        return []
    if event == "history":
        assert set(ack) == {"ok", "messages"}, ack
        ids = [check_message(m)["id"] for m in ack["messages"]]
        assert ids == sorted(set(ids)), f"history not in id order: {ids}"
        limit = payload.get("limit") if isinstance(payload, dict) else None
        assert len(ids) <= (limit if isinstance(limit, int) and limit else 50)
        for m in ack["messages"]:
            conv = m["conversation"]
            assert conv == "lobby" or conv.startswith("#") or \
                s.name.lower() in conv.split(":")[1:], \
                f"history returned someone else's conversation: {m!r}"
            assert conv.lower() not in (stage.sentinel_room.lower(), stage.secret_room.lower())
        return []
    if event == "typing":
        assert ack == {"ok": True}, ack
        to = payload["to"]
        if not to.startswith("#") and \
                unicodedata.normalize("NFC", to).casefold() == stage.bystander.name.casefold():
            return [("typing", {"from": s.name, "to": stage.bystander.name,
                                "typing": payload["typing"]})]
        return []
    raise AssertionError(f"unknown event {event!r} succeeded: {ack!r}")


def exercise(stage, event, payload):
    """Send one example and check everything the module docstring promises."""
    s, b, t, p = stage.sender, stage.bystander, stage.stranger, stage.pinger
    if not s.connected:  # an earlier failing example may have broken it: start afresh
        stage.connect_sender()
        s = stage.sender
    # Bigger packets close the connection by design (protocol/test_robustness.py).
    assume(encoded_size(event, payload) <= PACKET_BUDGET)
    marks = {c: c.mark() for c in (s, b, t)}
    try:
        ack = s.call(event, payload, timeout=ACK_TIMEOUT)
    except socketio.exceptions.TimeoutError:
        raise AssertionError(
            f"no ack for {event!r} within {ACK_TIMEOUT}s (hung handler?)") from None
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), \
        f"the ack is not one object with a boolean ok: {ack!r}"
    no_traceback(ack)
    if ack["ok"]:
        expected = check_success(stage, event, payload, ack)
    else:
        check_failure(ack)
        expected = []
    # The sentinel: after the ack, so all the example's effects were emitted before it.
    flag = stage.examples % 2 == 0
    stage.examples += 1
    ok(p.call("typing", {"to": stage.sentinel_room, "typing": flag}, timeout=ACK_TIMEOUT))

    def sentinel(payload_):
        return payload_ == {"from": p.name, "to": stage.sentinel_room, "typing": flag}

    for observer in (b, t):
        observer.wait_for("typing", sentinel, since=marks[observer], timeout=ACK_TIMEOUT)
    seen_by_b = [(n, x) for n, x in b.all_events(marks[b])
                 if not (n == "typing" and isinstance(x, dict) and x.get("from") == p.name)]
    assert seen_by_b == expected, \
        f"{event} {'ok' if ack['ok'] else 'failed'}: the bystander saw {seen_by_b!r}, " \
        f"expected {expected!r}"
    if not ack["ok"]:
        seen_by_t = [(n, x) for n, x in t.all_events(marks[t])
                     if not (n == "typing" and isinstance(x, dict) and x.get("from") == p.name)]
        assert not seen_by_t, f"a failed {event} reached the stranger: {seen_by_t!r}"
    assert not s.events("error", since=marks[s]), "an ack was asked for: no error event"
    assert s.connected and not s.disconnects, f"{event} closed the sender's connection"
    assert s.sid == s.socket_sid


def log_mark(stage):
    return len(stage.server.log_text())


def assert_log_clean(stage, mark):
    """No traceback was logged since `mark` (a handler that crashed, even if it answered)."""
    time.sleep(0.2)  # the log is read through a pipe
    log = stage.server.log_text()[mark:]
    assert "Traceback" not in log, "the server logged a traceback:\n" + log[-3000:]


# -- the properties ------------------------------------------------------------------

@pytest.mark.parametrize("event", EVENTS)
def test_any_payload_gets_a_valid_ack_and_harms_no_one(stage, event):
    """Any JSON value as the payload of a client event: a valid ack, nothing leaked."""

    mark = log_mark(stage)

    @fuzz_settings(stage.transport)
    @given(data=st.data())
    def run(data):
        exercise(stage, event, data.draw(payloads(stage, event), label="payload"))

    run()
    assert_log_clean(stage, mark)


unknown_events = st.one_of(
    small_text, huge_text().map(lambda t: t[:5000]),
    st.sampled_from(["fooBar", "sendmessage", "MESSAGE", "reply", "welcome", "addChat",
                     "userLeft", "error", "roomEvent", "connect", "disconnect",
                     "connect_error", "message ", " message", "__proto__", "**", "*x"]),
).filter(lambda name: name not in EVENTS and name != "*")  # "*": its own test below


def test_unknown_events_are_refused_and_harm_no_one(stage):
    """Any event name the server does not know, with any payload: `invalid_payload`."""

    mark = log_mark(stage)

    @fuzz_settings(stage.transport)
    @given(name=unknown_events, payload=st.one_of(st.just(NO_DATA), any_value, several_args()))
    def run(name, payload):
        exercise(stage, name, payload)

    run()
    assert_log_clean(stage, mark)


@pytest.mark.parametrize("payload", [NO_DATA, ["x"], {"a": 1}, "text", ("a", "b")],
                         ids=["no-arg", "list", "object", "string", "two-args"])
def test_event_named_star_is_an_unknown_event(stage, payload):
    """An event literally named `*` (python-socketio's catch-all name) is refused like any
    unknown event: an `invalid_payload` ack, in time, and nothing logged as a crash."""
    mark = log_mark(stage)
    try:
        ack = stage.sender.call("*", payload, timeout=3)
    except socketio.exceptions.TimeoutError:
        raise AssertionError("no ack for an event named '*'") from None
    err(ack, "invalid_payload")
    assert_log_clean(stage, mark)


def test_event_named_star_cannot_send_errors_to_another_client(stage):
    """Without an ack, the failure of an event named `*` goes to its sender as an `error`
    event; a payload naming another client's sid must not redirect it to that client."""
    s, b = stage.sender, stage.bystander
    marks = s.mark(), b.mark()
    s.emit("*", b.sid)
    s.emit("*", {"to": b.sid})
    ok(s.call("listUsers"))  # both handled by now
    ok(stage.pinger.call("typing", {"to": stage.sentinel_room, "typing": True}))
    b.wait_for("typing", lambda p: p.get("from") == stage.pinger.name, since=marks[1])
    assert not b.events("error", since=marks[1]), \
        f"another client's `*` event made the server send this client: {b.events('error')!r}"
    assert len(s.events("error", since=marks[0])) == 2, "the sender must get both errors"


@pytest.mark.parametrize("event", ["message", "sendMessage", "history", "typing", "joinRoom"])
def test_valid_looking_payloads_with_hostile_strings(stage, event):
    """Well-formed payloads whose strings are hostile: the text is stored exactly as given
    or refused; names and rooms built from those strings never match someone else's."""
    s = stage

    def shaped(text, extra):
        target = {"message": None, "sendMessage": s.bystander.name, "history": "lobby",
                  "typing": s.bystander.name, "joinRoom": None}[event]
        if event == "message":
            return {"text": text, **extra}
        if event == "sendMessage":
            return {"content": text, "destId": target, **extra}
        if event == "history":
            return {"conversation": text if extra else "lobby", "limit": 5}
        if event == "typing":
            return {"to": text, "typing": True}
        return {"room": "#" + text}

    @fuzz_settings(stage.transport, scale=0.5)
    @given(text=any_text, extra=st.one_of(st.just({}), st.dictionaries(
        st.sampled_from(["from", "fromSid", "ts", "id", "kind", "conversation", "to",
                         "owner", "private", "clientId"]), json_values, max_size=4)))
    def run(text, extra):
        exercise(stage, event, shaped(text, extra))

    mark = log_mark(stage)
    run()
    assert_log_clean(stage, mark)


# -- raw packets python-socketio's client cannot produce -----------------------------

def raw_connected(raw_factory, url, transport_name):
    raw = raw_factory(url, transport_name)
    raw.connect_socketio()
    return raw


@pytest.mark.parametrize("shape", ["array", "object"])
def test_too_deeply_nested_event_is_answered_or_closed(hostile_server, raw_factory, transport,
                                                       shape):
    """A packet nested 3000 deep (valid JSON the server's decoder cannot take): the sender
    gets an error ack or its connection is closed (PROTOCOL.md section 6); it must not be
    left waiting for an ack that never comes while the connection stays open."""
    raw = raw_connected(raw_factory, hostile_server.url, transport)
    deep = ("[" * 3000 + "]" * 3000) if shape == "array" else \
        ('{"a":' * 3000 + "1" + "}" * 3000)
    raw.send('421["message",' + deep + "]")
    raw.send('422["listUsers"]')
    acks = raw.acks({1, 2})
    if acks is not None and 1 not in acks:
        # Either the server closes the session a moment later, or it must have answered.
        assert raw.closed(timeout=2.0), \
            f"no ack for the deep packet and the connection stays open (acks: {acks!r})"
    elif acks is not None:
        err(acks[1][0], "invalid_payload", "too_large")
    bystander = ChatClient()
    try:
        bystander.connect(hostile_server.url, transport=transport)
        ok(bystander.call("listUsers"))
    finally:
        bystander.disconnect()


def test_too_deeply_nested_auth_is_refused_or_closed(hostile_server, raw_factory, transport):
    """A CONNECT whose auth is nested 3000 deep: a connect error or a closed session, not a
    client left waiting for an answer until the connect timeout (45 s)."""
    raw = raw_factory(hostile_server.url, transport)
    raw.send("40" + "[" * 3000 + "]" * 3000)
    deadline = time.monotonic() + 3
    answered = False
    while time.monotonic() < deadline and not answered:
        packets = raw.receive(timeout=1.0)
        if packets is None:
            answered = True  # closed
            break
        answered = any(pkt.startswith(("44", "40{")) for pkt in packets)
    assert answered, "a CONNECT too deep to decode got no answer and the session stays open"


RAW_PACKETS = [
    # (id, packets sent after CONNECT, the session must then be: "open" | "closed" | "any")
    ("event-name-number", ['42[1,"x"]'], "any"),
    ("event-name-null", ['42[null,"x"]'], "any"),
    ("event-name-object", ['42[{"a":1},"x"]'], "any"),
    ("event-empty-array", ["42[]"], "any"),
    ("event-object", ['42{"message":"x"}'], "any"),
    ("event-string", ['42"message"'], "any"),
    ("event-null", ["42null"], "any"),
    ("event-number", ["427"], "any"),
    ("huge-ack-id", ['4299999999999999999999999999["listUsers"]'], "any"),
    ("negative-ack-id", ['42-1["listUsers"]'], "any"),
    ("unknown-namespace-connect", ["40/nowhere,"], "open"),
    ("unknown-namespace-event", ['42/nowhere,["message","x"]'], "open"),
    ("admin-namespace-without-password", ['40/admin,{"username":"a","password":"b"}'], "open"),
    ("second-connect", ["40"], "any"),
    ("connect-error-from-client", ['44{"message":"x"}'], "any"),
    ("binary-event-missing-attachment", ['451-["message",{"_placeholder":true,"num":0}]',
                                         '42["message","after"]'], "any"),
    ("binary-placeholder-out-of-range", ['451-["message",{"_placeholder":true,"num":7}]',
                                         b"\x01"], "any"),
    ("binary-many-attachments-announced", ['4599999-["message","x"]'], "any"),
    ("binary-ack-for-nothing", ['461-5[{"_placeholder":true,"num":0}]', b"\x02"], "any"),
    ("engineio-noop", ["6"], "any"),
    ("engineio-upgrade-out-of-place", ["5"], "any"),
    ("engineio-probe", ["2probe"], "any"),
    ("engineio-empty-message", ["4"], "any"),
    ("engineio-message-garbage", ["4\x00\x01"], "any"),
    ("many-events-in-one-go", ['42["listUsers"]'] * 300, "open"),
    ("nul-everywhere", ['42["message\\u0000","\\u0000"]'], "open"),
    ("lone-surrogate-escape", ['42["message","\\ud800"]', '42["\\udfff",{}]'], "open"),
    ("invalid-utf8-escape", ['42["message","\\uZZZZ"]'], "any"),
]


@pytest.mark.parametrize("packets,expect", [r[1:] for r in RAW_PACKETS],
                         ids=[r[0] for r in RAW_PACKETS])
def test_raw_packet_oddities(hostile_server, raw_factory, transport, packets, expect):
    """Odd but small Socket.IO and Engine.IO packets on a connected session: the session
    is closed or keeps answering (as `expect` says), and another client keeps chatting."""
    watcher = ChatClient()
    try:
        watcher.connect(hostile_server.url, auth={"name": uname("watch")})
        raw = raw_connected(raw_factory, hostile_server.url, transport)
        for pkt in packets:
            if isinstance(pkt, bytes) and transport == "polling":
                import base64
                pkt = "b" + base64.b64encode(pkt).decode()
            if raw.send(pkt) == -1:
                break
        raw.send('4277["listUsers"]')
        acks = raw.acks({77}, timeout=4.0 if expect == "open" else 2.0)
        if expect == "open":
            assert acks is not None and 77 in acks, "the session stopped answering"
        if acks is not None and 77 in acks:
            ok(acks[77][0])
        text = "after raw " + uid()
        msg = ok(watcher.call("message", text))["message"]
        assert watcher.wait_for("reply", lambda m: m["id"] == msg["id"])["text"] == text
    finally:
        watcher.disconnect()
    assert hostile_server.proc.poll() is None, "the server died"


def test_binary_packet_cannot_grow_past_the_buffer_size(hostile_server, raw_factory, transport):
    """A BINARY_EVENT announcing a million attachments, then 2.25 MB of attachments in 45 KB
    frames (each under the 64 KiB limit, also base64-encoded for long-polling): the server
    must close the session rather than buffer them all; otherwise one client streams the
    server out of memory (measured: RSS grows by the bytes streamed, 180 MB for 180 MB)."""
    import base64

    raw = raw_connected(raw_factory, hostile_server.url, transport)
    raw.send('451000000-["message",{"_placeholder":true,"num":0}]')
    blob = bytes(range(256)) * 176  # 45,056 bytes
    closed = False
    for _ in range(50):
        packet = blob if transport == "websocket" else "b" + base64.b64encode(blob).decode()
        try:
            if raw.send(packet) in (-1, 400, 413):
                closed = True
                break
        except Exception:
            closed = True
            break
    assert closed or raw.closed(timeout=3.0), \
        "2.25 MB of attachments for one packet were accepted and the session stays open"


raw_garbage = st.one_of(
    st.text(_chars, max_size=60),
    st.builds(lambda t, body: t + body, st.sampled_from(["4", "42", "43", "44", "45", "46", "40",
                                                         "41", "2", "3", "5", "6", "1", "0"]),
              st.one_of(st.text(_chars, max_size=60), json_values.map(json.dumps))),
    json_values.map(lambda v: "42" + json.dumps(v)),
    st.binary(max_size=40),
)


def test_random_raw_packets_never_take_the_server_down(hostile_server, raw_factory):
    """200 random Engine.IO frames over a raw websocket: each is answered, ignored or
    closes that session; the server keeps serving a websocket and a polling client."""
    holder = {"raw": None}
    ws_watcher, poll_watcher = ChatClient(), ChatClient()
    ws_watcher.connect(hostile_server.url, transport="websocket")
    poll_watcher.connect(hostile_server.url, transport="polling")
    counter = {"n": 0}

    @settings(max_examples=200, **FUZZ)
    @given(packet=raw_garbage)
    def run(packet):
        raw = holder["raw"]
        if raw is None or raw.ws is None or not raw.ws.connected:
            raw = holder["raw"] = raw_connected(raw_factory, hostile_server.url, "websocket")
        try:
            raw.send(packet)
        except Exception:
            holder["raw"] = None
        counter["n"] += 1
        if counter["n"] % 25 == 0:  # a real round trip now and then, through both transports
            ok(ws_watcher.call("listUsers"))
            ok(poll_watcher.call("listRooms"))

    try:
        run()
        assert hostile_server.proc.poll() is None, "the server died"
        for w in (ws_watcher, poll_watcher):
            text = "still here " + uid()
            msg = ok(w.call("message", text))["message"]
            assert msg["text"] == text
    finally:
        disconnect_all([ws_watcher, poll_watcher])
