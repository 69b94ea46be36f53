"""compat/server.py's fast path for plain events ("42[...]", "42<id>[...]"): it must decode
what python-socketio decodes, and a server using it must call, answer and close exactly as
one that leaves every packet to the library (`fast_events = False`).

The texts are generated from a seed: event names and arguments in many shapes (unicode,
nested JSON, numbers, ack ids up to 2**31 and beyond), whitespace, malformed variants,
other namespaces, binary packets and their attachments, acks, disconnects and Engine.IO's
own packet types."""

import io
import json
import math
import random
import re

import pytest
from engineio import packet as eio_packet
from socketio import packet as sio_packet
from support.checks import err, ok
from support.names import uid

from chat_server import compat, runtime
from chat_server.compat.server import plain_event

SEED = 18

# -- generated texts ----------------------------------------------------------------------


def random_string(rng):
    pools = ["abcxyz", "ÄéßøÅ", "日本語中文", "😀🎉👍", " \t\n", '"\\/', "\x00\x01\x1f",
             "0123456789", "-[],{}:", "\u2028\u2029\ufeff", "\u0661\u00b2"]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randrange(0, 12)))


def random_value(rng, depth=0):
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return random_string(rng)
    if kind == 1:
        return rng.choice([0, 1, -1, 2**31, 2**53 + 1, -(2**63), 10**30, 7])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e308, 2.5e-308, 3.141592653589793, 1.0])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice(["", "x", "message", "sendMessage"])
    if kind == 5:
        return {"content": random_string(rng), "destId": uid(6)}
    if kind == 6:
        return []
    if kind in (7, 8):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {random_string(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def random_name(rng):
    return rng.choice([random_string(rng), "sendMessage", "message", "*", "", "connect",
                       "disconnect", "named", "boom", 5, None, ["list"], {"o": 1}, True])


def dumps(rng, value):
    """JSON as a client might write it: compact or spaced, escaped or raw unicode."""
    ensure_ascii = rng.random() < 0.5
    text = json.dumps(value, ensure_ascii=ensure_ascii,
                      separators=rng.choice([(",", ":"), (", ", ": "), (" , ", " : ")]))
    return text


def random_ack_id(rng):
    return rng.choice([None, None, 0, 1, 17, rng.randrange(2**31 + 1), 2**31, 2**31 - 1,
                       10**10 - 1, 10**10, 10**11, 10**40])


def plain_text(rng):
    """A well-formed plain event, as the fast path takes it (ids of at most 10 digits)."""
    data = [random_name(rng)] + [random_value(rng) for _ in range(rng.randrange(0, 3))]
    ack = rng.choice([None, None, 0, 1, 17, rng.randrange(2**31 + 1), 2**31, 9_999_999_999])
    return "42" + ("" if ack is None else str(ack)) + dumps(rng, data)


MALFORMED = [
    "42", "42[", "42]", "42[1", '42["a",]', '42["a"]x', '42["a"]]', "42[1,2", '42["\\x"]',
    '42["a\\ud800"]', "42[01]", "42[1.]", "42[.5]", "42[NaN]", "42[-Infinity]", "42[true,nul]",
    "42{}", '42{"a":1}', '42"str"', "421", "4217", "42-1[1]", "4212-[\"a\"]", "421-[\"a\"]",
    "42 [\"a\"]", "42\t[\"a\"]", "421 [\"a\"]", "42[\"a\"] ", "42[\"a\"]\n", "42[ \"a\" ]",
    "42٢[\"a\"]", "42²[\"a\"]", "42١[\"a\"]", "4٢[\"a\"]", "42" + "9" * 11 + "[\"a\"]",
    "42" + "1" * 100 + "[\"a\"]", "42" + "1" * 101 + "[\"a\"]", "42007[\"a\"]",
    "42[" + "1" * 101 + "]", "42[" + "1" * 100 + "]", "42[1e999]", "42[\"a\",{\"b\":[{}]}]",
    "42" + "[" * 5000 + "]" * 5000, "42" + "[" * 100_000, "42[]", "42[[]]", "42[null]",
    "42[\"*\"]", '42["a","b"', "42/[\"a\"]", "42/,[\"a\"]", "42?[\"a\"]",
]

OTHER = [
    "40", "40{}", '40{"token":1}', "40/other,", "40/other?x=1,", "40/nope", "41", "41/other,",
    '42/other,["a",1]', '42/other,5["a"]', '42/nope,["a"]', '42/other,["*",{}]',
    "43[]", "435[1]", '43/other,1["x"]', '44{"message":"x"}', '49["a"]', "4", "4[1,2]",
    "4{}", '4"x"', "4 ", "2", "2probe", "3", "3probe", "5", "6", "1", "7", "9garbage",
    '451-["a",{"_placeholder":true,"num":0}]', '452-["a",{"_placeholder":true,"num":1}]',
    '450-["a"]', '459-["a"]', '4512-["a"]', '45-["a"]', '461-1[{"_placeholder":true,"num":0}]',
    "bAQID", "b", "b!!!",
]


def random_text(rng):
    roll = rng.random()
    if roll < 0.45:
        return plain_text(rng)
    if roll < 0.6:
        base = plain_text(rng)
        cut = rng.randrange(2, len(base) + 1)
        return rng.choice([base[:cut], base + rng.choice(["x", "]", " ", ",1]", "\n"]),
                           base[:2] + " " + base[2:], base.replace("[", "{", 1)])
    if roll < 0.75:
        ack = random_ack_id(rng)
        data = [random_name(rng)] + [random_value(rng) for _ in range(rng.randrange(3))]
        return "42" + ("" if ack is None else str(ack)) + dumps(rng, data)
    if roll < 0.87:
        return rng.choice(MALFORMED)
    return rng.choice(OTHER)


def texts(count, seed=SEED):
    rng = random.Random(seed)
    return [random_text(rng) for _ in range(count)]


# -- the decoder against python-socketio's ------------------------------------------------

def shape(value):
    """`value` with its JSON types spelled out: 1, 1.0 and True differ, NaN equals NaN."""
    if isinstance(value, list):
        return ["list", [shape(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", [[k, shape(v)] for k, v in value.items()]]
    if isinstance(value, float):
        return ["float", "nan" if math.isnan(value) else repr(value)]
    return [type(value).__name__, value]


def library_decode(data):
    """socketio.packet.Packet(encoded_packet=data): its fields, or the exception it raises."""
    try:
        pkt = sio_packet.Packet(encoded_packet=data)
    except Exception as error:
        return ("raised", type(error), str(error))
    return ("packet", pkt.packet_type, pkt.namespace, pkt.id, pkt.attachment_count,
            shape(pkt.data))


def our_decode(data):
    try:
        event = plain_event(data, sio_packet.Packet.json.loads)
    except Exception as error:
        return ("raised", type(error), str(error))
    if event is None:
        return None
    ack_id, args = event
    return ("packet", sio_packet.EVENT, None, ack_id, 0, shape(args))


def test_the_fast_decoder_gives_what_python_socketio_decodes():
    """Every text the fast path takes decodes (or fails) exactly as the library's Packet;
    what it leaves is left whole to the library. Well-formed plain events are all taken."""
    taken = left = 0
    for text in texts(20_000) + MALFORMED + OTHER:
        if not text or text[0] == "b":
            continue
        eio = eio_packet.Packet(encoded_packet=text)  # as both readers build it
        if eio.packet_type != eio_packet.MESSAGE or not isinstance(eio.data, str):
            continue
        ours = our_decode(eio.data)
        if ours is None:
            left += 1
            assert not re.match(r"2[0-9]{0,10}\[", eio.data), text[:80]
            continue
        taken += 1
        assert ours == library_decode(eio.data), text[:200]
    rng = random.Random(SEED + 1)
    for _ in range(5_000):
        text = plain_text(rng)
        ours = our_decode(eio_packet.Packet(encoded_packet=text).data)
        assert ours is not None and ours[0] == "packet", text[:200]
    assert taken > 9_000 and left > 2_000, (taken, left)


# -- two servers, one with the fast path and one without ----------------------------------

class WindowGate:
    """An EventGate of two unanswered events per connection (what handlers.py does)."""

    def __init__(self, calls, label):
        self.calls = calls
        self.label = label
        self.unanswered = {}

    def admit(self, sid):
        count = self.unanswered.get(sid, 0)
        if count >= 2:
            return False
        self.unanswered[sid] = count + 1
        return True

    def refused(self, sid, event):
        self.calls.append(("refused", self.label(sid), event, compat.wants_ack()))
        if event == "boom":  # raised in the reader: logged, the connection stays
            raise RuntimeError("the gate failed")
        return {"refused": event}

    def finished(self, sid):
        self.unanswered[sid] -= 1


class Recorded:
    """A SocketServer run in this process over long-polling requests (WSGI calls), whose
    handlers record what they are called with."""

    def __init__(self, fast):
        self.calls = []
        self.sio = compat.SocketServer(send_ack=self.send_ack, async_mode="eventlet",
                                       namespaces="*", logger=False, engineio_logger=False)
        self.sio.fast_events = fast
        self.sio.admit_events_through(WindowGate(self.calls, self.label))
        self.sio.on("*", self.any_event, namespace="*")
        self.sio.on("named", self.named)
        self.sio.on("connect", self.connected, namespace="*")
        self.sids = {}  # eio sid or sid -> the case's label, the same on both servers

    def connected(self, namespace, sid, environ, auth=None):
        self.sids[sid] = self.sids[self.sio.manager.eio_sid_from_sid(sid, namespace)]

    def label(self, sid, namespace="/"):
        return self.sids.get(sid, sid)

    def any_event(self, event, namespace, sid, *args):
        self.calls.append(("event", event, namespace, self.label(sid),
                           shape(list(args)), compat.wants_ack()))
        return {"got": event} if isinstance(event, str) else None

    def named(self, sid, *args):
        self.calls.append(("named", self.label(sid), shape(list(args)), compat.wants_ack()))
        return "named", len(args)

    def send_ack(self, server, eio_sid, namespace, ack_id, result):
        self.calls.append(("ack", self.sids.get(eio_sid), namespace, ack_id, shape(result)))
        compat.send_packet(server, eio_sid, namespace, ack_id, [] if result is None else [result])

    def request(self, method, query, body=b""):
        environ = {"REQUEST_METHOD": method, "QUERY_STRING": "EIO=4&transport=polling" + query,
                   "PATH_INFO": "/socket.io/", "SERVER_NAME": "test", "SERVER_PORT": "80",
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                   "CONTENT_LENGTH": str(len(body))}
        status = []
        try:
            out = b"".join(self.sio.handle_request(environ, lambda s, h: status.append(s)))
        except KeyError as error:  # a session closed meanwhile (compat: a 400 in the app)
            return f"KeyError {error}"
        return f"{status[0]} {out.decode()}"

    def session(self, label):
        reply = self.request("GET", "")
        eio_sid = json.loads(reply.split(" ", 2)[2][1:])["sid"]
        self.sids[eio_sid] = label
        return eio_sid

    def run(self, label, posts):
        """Open a session, CONNECT, post each list of texts; what happened, in order."""
        start = len(self.calls)
        eio_sid = self.session(label)
        seen = [self.request("POST", f"&sid={eio_sid}", b"40")]
        for post in posts:
            seen.append(self.request("POST", f"&sid={eio_sid}", "\x1e".join(post).encode()))
            for _ in range(3):
                runtime.sleep(0)  # the handlers' greenlets run
        session = compat.sessions(self.sio).get(eio_sid)
        closed = session is None or session.closed or session.closing
        if not closed and compat.queued_packets(session):
            seen.append(self.request("GET", f"&sid={eio_sid}"))
        seen = [re.sub(r'"sid":"[^"]+"', '"sid":"*"', s).replace(eio_sid, label)
                for s in seen]
        return {"calls": self.calls[start:], "seen": seen, "closed": closed}


def random_posts(rng, texts_):
    """One to four POSTs of one to three texts each: pipelined events meet the window, a
    binary packet meets the texts after it."""
    posts = []
    for _ in range(rng.randrange(1, 5)):
        post = [rng.choice(texts_) for _ in range(rng.randrange(1, 4))]
        posts.append([t for t in post if t and "\x1e" not in t] or ['42["named"]'])
    return posts


def test_the_fast_path_calls_answers_and_closes_as_the_library_does():
    """The same posts to a server with the fast path and one without: the same handler
    calls (event, namespace, connection, arguments, wants_ack), refusals, acks, replies
    and closes."""
    fast, library = Recorded(fast=True), Recorded(fast=False)
    rng = random.Random(SEED + 2)
    pool = [t for t in texts(3_000, SEED + 3) if len(t) < 20_000] + MALFORMED[:-2] + OTHER
    closed = called = 0
    for case in range(1_500):
        posts = random_posts(rng, pool)
        label = f"c{case}"
        got, want = fast.run(label, posts), library.run(label, posts)
        assert got == want, posts
        closed += got["closed"]
        called += sum(1 for call in got["calls"] if call[0] != "ack")
    assert closed > 200 and called > 1_000, (closed, called)


# -- a real server and the python-socketio client -----------------------------------------

def test_events_acks_and_errors_over_the_fast_path(server, connect):
    """Events with and without ack ids, unicode and nested payloads, reach the handlers
    and come back as they went (the server runs with the fast path, on both transports)."""
    a, b = connect(server.url), connect(server.url)
    text = "fast path ✓ 日本 😀 " + uid()
    a.emit("message", text)  # no ack id: "42[...]"
    b.wait_for("reply", lambda m: m["text"] == text)
    for _ in range(3):  # ack ids the client counts up
        ok(a.call("listUsers"))
    err(a.call("history", {"conversation": "lobby", "limit": 0, "x": [{"y": [None]}]}),
        "invalid_payload")
    a.emit("noSuchEvent", {"nested": [1, 2.5, True, None, {"é": "ü"}]})
    error = a.wait_for("error", lambda e: e.get("event") == "noSuchEvent")
    assert error["code"] == "invalid_payload"
    assert ok(a.call("message", text + " again"))["message"]["text"] == text + " again"


@pytest.mark.parametrize("bad", ['4217["listRooms"', "42[" + "1" * 101 + "]", '42["a"]x'])
def test_raw_plain_events_and_a_malformed_one(server, raw_factory, transport, bad):
    """Ack ids up to 2**31 and beyond the fast path's 10 digits are answered with their
    id; a malformed plain event closes that connection, as before."""
    raw = raw_factory(server.url, transport)
    raw.connect_socketio()
    for ack_id in (0, 2**31, 10**12):
        raw.send(f'42{ack_id}["listRooms"]')
        (ack,) = raw.ack(ack_id)
        ok(ack)
    raw.send(bad)
    assert raw.closed(timeout=3.0), "the server kept the session open"

