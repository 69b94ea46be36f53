"""compat/frames.py: the buffered frame reader gives, for the same bytes, what eventlet's
`RFC6455WebSocket` gives: the same messages, the same replies (pongs, close frames) and
the same end (the stream's end, an error, a refusal), however the bytes are split.

Both readers serve one end of a real socket pair; a green thread writes the client's
bytes in chunks, each only once the previous one was taken from the socket, so every
chunk boundary is a boundary between two reads of the reader under test.
"""

import fcntl
import json
import random
import socket
import struct
import termios
import time

import eventlet
import eventlet.greenio
import eventlet.hubs
import eventlet.websocket
import pytest

from chat_server.compat.frames import RECV_SIZE, FrameReader

LIMIT = 64 * 1024  # the default MAX_HTTP_BUFFER_SIZE, and so eventlet's max_frame_length
CHARS = "aZ0 ~\"é߿ࠀ€中\uffff😀\U0010ffff"  # 1-, 2-, 3- and 4-byte UTF-8


# -- the client's frames ---------------------------------------------------------------------

def frame(payload, opcode=1, fin=True, masked=True, rsv=0, form=None, key=b"\x9a\x01\xfe\x42"):
    """One client frame; `form` forces the length's encoding (7, 16 or 64 bits)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    size = len(payload)
    form = form or (7 if size < 126 else 16 if size < 65536 else 64)
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    bit = 0x80 if masked else 0
    if form == 7:
        head = bytes([first, bit | size])
    elif form == 16:
        head = bytes([first, bit | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    body = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return head + key + body


def text(rng, size):
    return "".join(rng.choice(CHARS) for _ in range(size))


def close_status(payload):
    """The status and reason of a close frame the server sent (unmasked, short)."""
    assert payload[0] == 0x88 and payload[1] < 126, payload
    body = payload[2:2 + payload[1]]
    return struct.unpack("!H", body[:2])[0] if body else None


# -- one reader on one socket pair -----------------------------------------------------------

class Run:
    """What one reader made of one stream: messages (and the end), the bytes it sent back,
    whether eventlet closed the websocket, and how often eventlet's reader was asked."""

    def __init__(self, events, replies, closed, handed_over):
        self.events = events
        self.replies = replies
        self.closed = closed
        self.handed_over = handed_over

    def key(self):
        return self.events, self.replies, self.closed


def unread(sock):
    if sock.fileno() == -1:
        return 0
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def feed(client, server_end, chunks, finished):
    """Write each chunk once the reader has taken everything before it; then end the
    client's side of the stream."""
    try:
        for chunk in chunks:
            if finished:
                return
            client.sendall(chunk)
            while not finished and unread(server_end):
                eventlet.sleep(0)
        if not finished:
            client.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server closed its end (a close frame, an error): the rest is unread


def read_one_for(ws, events, message_limit, counter):
    """What `_Connection._receive_one` does with eventlet's reader, and `_read`'s size
    check: one message, or the end."""

    def read_one():
        counter.append(1)
        try:
            data = ws.wait()
            if data and len(data) > message_limit:
                raise ValueError("packet is too large")
        except Exception as error:
            events.append(("error", type(error).__name__, str(error)))
            return False
        if data is None:
            events.append(("end",))
            return False
        events.append(data)
        return True

    return read_one


def run(chunks, ours, message_limit=LIMIT, frame_limit=LIMIT):
    """Serve the chunks to one reader: ours (FrameReader, woken as the hub listener wakes
    it) or eventlet's own (`wait()` until the end)."""
    client_end, server_end = socket.socketpair()
    client = eventlet.greenio.GreenSocket(client_end)
    server = eventlet.greenio.GreenSocket(server_end)
    client.settimeout(10)
    server.settimeout(10)
    ws = eventlet.websocket.RFC6455WebSocket(server, {}, max_frame_length=frame_limit)
    events, counter, finished = [], [], []
    read_one = read_one_for(ws, events, message_limit, counter)
    feeder = eventlet.spawn(feed, client, server_end, chunks, finished)
    try:
        if ours:
            reader = FrameReader(ws, message_limit)

            def deliver(message):
                events.append(message)
                return True

            while True:
                eventlet.hubs.trampoline(server_end.fileno(), read=True, timeout=10)
                if not reader.read(deliver, read_one):
                    break
            assert ws.socket is server  # the stand-in is gone
        else:
            while read_one():
                pass
    finally:
        finished.append(True)
        feeder.wait()
    closed = ws.websocket_closed
    server_end.close()
    replies = b""
    while True:
        got = client.recv(65536)
        if not got:
            break
        replies += got
    client.close()
    return Run(events, replies, closed, len(counter))


def same(data, chunks=None, **limits):
    """Both readers on the same bytes (ours split into `chunks`); ours' run."""
    theirs = run([data], ours=False, **limits)
    mine = run(chunks if chunks is not None else [data], ours=True, **limits)
    assert mine.key() == theirs.key()
    return mine


def split(rng, data):
    """`data` cut at random places: sometimes at every byte, often at a few."""
    if len(data) < 400 and rng.random() < 0.1:
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# -- what a client sends, and what it must not ---------------------------------------------

def test_a_stream_of_text_frames_takes_eventlet_only_at_its_end():
    """Whole, partial and several frames per read: all through the buffer; eventlet's reader
    is asked once, to find the end of the stream."""
    rng = random.Random(1)
    messages = [text(rng, n) for n in (0, 1, 5, 124, 125, 126, 127, 300, 2000)]
    data = b"".join(frame(m) for m in messages)
    result = same(data, split(rng, data))
    assert result.events == [*messages, ("end",)]
    assert result.handed_over == 1
    assert result.replies == b"" and not result.closed


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_each_length_form(size):
    payload = "x" * size
    result = same(frame(payload) + frame("after"), [frame(payload)[:3], frame(payload)[3:],
                                                    frame("after")])
    assert result.events == [payload, "after", ("end",)]
    assert result.handed_over == 1


@pytest.mark.parametrize("size", [0, 5, 125, 126, 1000])
@pytest.mark.parametrize("form", [16, 64])
def test_lengths_in_a_longer_form_than_needed(size, form):
    """eventlet takes a short payload announced in a long form; so does the buffer."""
    data = frame("y" * size, form=form) + frame("z")
    assert same(data, split(random.Random(size), data)).events == ["y" * size, "z", ("end",)]


def test_multibyte_characters_split_across_reads_at_every_byte():
    message = "é€😀中\U0010ffff"
    data = frame(message)
    for cut in range(1, len(data)):
        result = same(data, [data[:cut], data[cut:]])
        assert result.events == [message, ("end",)]


def test_a_partial_frame_waits_in_the_buffer_and_nobody_waits_for_it():
    """`read` returns at once with half a frame; the rest, when it comes, completes it."""
    client_end, server_end = socket.socketpair()
    ws = eventlet.websocket.RFC6455WebSocket(eventlet.greenio.GreenSocket(server_end), {},
                                             max_frame_length=LIMIT)
    reader = FrameReader(ws, LIMIT)
    got = []

    def read_one():
        raise AssertionError("eventlet's reader was asked")

    data = frame("héllo") + frame("world")
    client_end.sendall(data[:9])
    assert reader.read(lambda m: got.append(m) or True, read_one) is True
    assert got == [] and reader.pending == data[:9]
    client_end.sendall(data[9:])
    assert reader.read(lambda m: got.append(m) or True, read_one) is True
    assert got == ["héllo", "world"] and reader.pending == b""
    client_end.close()
    server_end.close()


def test_more_than_one_read_at_once():
    """Bytes beyond one `recv` (RECV_SIZE) in one readable event: read again at once."""
    messages = ["m" * 40000, "é" * 20000, "x"]
    data = b"".join(frame(m) for m in messages)
    assert len(data) > RECV_SIZE
    assert same(data).events == [*messages, ("end",)]


def test_invalid_utf8_is_what_eventlet_makes_of_it():
    """eventlet fails the connection (status 1011) and raises; the reader lets it."""
    data = frame("fine") + frame(b"bad \xff\xfe") + frame("never")
    result = same(data, [data[:5], data[5:]])
    assert result.events[0] == "fine"
    assert result.events[1][0] == "error" and len(result.events) == 2
    assert result.closed and close_status(result.replies) == 1011


def test_a_truncated_character_at_the_end_of_a_frame_is_invalid():
    data = frame("ok") + frame("€".encode()[:2]) + frame("never")
    result = same(data)
    assert result.events[0] == "ok" and result.events[1][0] == "error"


def test_a_ping_between_text_frames_is_answered_and_reading_goes_on():
    data = frame("one") + frame(b"are you there", opcode=9) + frame("two") + frame("three")
    result = same(data, split(random.Random(3), data))
    assert result.events == ["one", "two", "three", ("end",)]
    assert result.replies == bytes([0x8A, 13]) + b"are you there"
    assert result.handed_over == 2  # the ping, the end


def test_a_pong_is_ignored():
    data = frame("one") + frame(b"", opcode=0xA) + frame("two")
    assert same(data).events == ["one", "two", ("end",)]


@pytest.mark.parametrize("body", [b"", struct.pack("!H", 1000) + b"bye", struct.pack("!H", 4000)])
def test_a_close_frame_closes(body):
    data = frame("one") + frame(body, opcode=8) + frame("never")
    result = same(data, split(random.Random(4), data))
    assert result.events == ["one", ("end",)]
    assert result.closed and close_status(result.replies) in (1000, 4000)


@pytest.mark.parametrize("body", [b"\x00", struct.pack("!H", 999),
                                  struct.pack("!H", 1000) + b"\xff"])
def test_a_bad_close_frame_is_refused_as_eventlet_refuses_it(body):
    data = frame("one") + frame(body, opcode=8)
    result = same(data)
    assert result.events == ["one", ("end",)] and result.closed


def test_a_fragmented_message_with_a_ping_inside():
    whole = "frag€mented 😀 message"
    raw = whole.encode()
    data = (frame("before") + frame(raw[:7], fin=False) + frame(b"p", opcode=9)
            + frame(raw[7:12], opcode=0, fin=False) + frame(raw[12:], opcode=0) + frame("after"))
    result = same(data, split(random.Random(5), data))
    assert result.events == ["before", whole, "after", ("end",)]
    assert result.replies == bytes([0x8A, 1]) + b"p"


def test_a_fragmented_message_over_the_size_limit():
    """Each fragment fits; the message does not: `_read`'s check, as before."""
    data = frame("a" * 600, fin=False) + frame("b" * 600, opcode=0) + frame("never")
    result = same(data, message_limit=1000)
    assert result.events == [("error", "ValueError", "packet is too large")]


def test_a_binary_frame():
    data = frame("one") + frame(b"\x00\x01\xff", opcode=2) + frame("two")
    assert same(data).events == ["one", b"\x00\x01\xff", "two", ("end",)]


@pytest.mark.parametrize("bad", [
    frame("unmasked", masked=False),
    frame("reserved bit", rsv=4),
    frame("opcode 3", opcode=3),
    frame("continuation alone", opcode=0),
    frame(b"fragmented ping", opcode=9, fin=False),
    frame(b"p" * 126, opcode=9),
    frame("x" * (LIMIT + 1)),
    frame("x" * 10, form=64)[:2] + struct.pack("!Q", 1 << 63) + b"\x00" * 4,
], ids=["unmasked", "rsv1", "opcode-3", "continuation", "fragmented-ping",
        "long-ping", "oversize", "huge-length"])
def test_frames_eventlet_refuses_are_refused_the_same_way(bad):
    data = frame("one") + bad + frame("never")
    result = same(data, split(random.Random(6), data))
    assert result.events == ["one", ("end",)]
    assert result.closed and close_status(result.replies) in (1002, 1009)


def test_reserved_bits_2_and_3_pass_as_eventlet_lets_them():
    """eventlet refuses RSV1 without an extension but lets RSV2 and RSV3 through; such a
    frame goes to eventlet, which reads it as before."""
    data = frame("one") + frame("reserved", rsv=3) + frame("two")
    result = same(data)
    assert result.events == ["one", "reserved", "two", ("end",)]
    assert result.handed_over == 2


def test_a_text_frame_inside_a_fragmented_message_is_refused():
    data = frame("half", fin=False) + frame("other") + frame("never")
    result = same(data)
    assert result.events == [("end",)] and close_status(result.replies) == 1002


def test_frames_over_the_message_limit_but_under_eventlets_go_to_the_size_check():
    """The reader's limit is the smaller of the two: a frame between them is eventlet's
    to read, and `_read`'s to refuse (by characters, not bytes)."""
    fits = "é" * 600  # 1200 bytes, 600 characters
    data = frame("a") + frame(fits) + frame("b" * 1001) + frame("never")
    result = same(data, split(random.Random(7), data), message_limit=1000)
    assert result.events == ["a", fits, ("error", "ValueError", "packet is too large")]


def test_the_end_of_the_stream_inside_a_frame():
    data = frame("whole") + frame("cut short")[:7]
    result = same(data, [data[:3], data[3:]])
    assert result.events == ["whole", ("end",)] and not result.closed


# -- many random streams -----------------------------------------------------------------------

def random_stream(rng):
    """A batch of frames: mostly text of every size and length form, with pings, pongs,
    fragmented and binary messages between them, and now and then one that ends it."""
    parts = []
    for _ in range(rng.randint(1, 25)):
        kind = rng.random()
        if kind < 0.05:  # around the message limits the test uses
            size = rng.choice([99, 100, 101, 999, 1000, 1001, 2999, 3000, 3001])
            parts.append(frame("a" * size, key=rng.randbytes(4)))
        elif kind < 0.75:
            size = rng.choice([0, 1, 3, 20, 60, 124, 125, 126, 127, 200, 1000, 3000])
            form = rng.choice([None] * 8 + [16, 64])
            parts.append(frame(text(rng, size // 3 or size), form=form,
                               key=rng.randbytes(4)))
        elif kind < 0.82:
            parts.append(frame(rng.randbytes(rng.randint(0, 125)), opcode=rng.choice([9, 0xA]),
                               key=rng.randbytes(4)))
        elif kind < 0.89:
            raw = text(rng, rng.randint(1, 80)).encode()
            cuts = sorted(rng.sample(range(len(raw) + 1), 2))
            pieces = [raw[:cuts[0]], raw[cuts[0]:cuts[1]], raw[cuts[1]:]]
            parts.append(frame(pieces[0], fin=False, key=rng.randbytes(4)))
            if rng.random() < 0.3:
                parts.append(frame(b"in between", opcode=9))
            parts.append(frame(pieces[1], opcode=0, fin=False, key=rng.randbytes(4)))
            parts.append(frame(pieces[2], opcode=0, key=rng.randbytes(4)))
        elif kind < 0.93:
            parts.append(frame(rng.randbytes(rng.randint(0, 300)), opcode=2,
                               key=rng.randbytes(4)))
        else:
            parts.append(rng.choice([
                frame(b"", opcode=8),
                frame(struct.pack("!H", 1001), opcode=8),
                frame("no mask", masked=False),
                frame("reserved", rsv=rng.randint(1, 7)),
                frame(b"ok \xc3", key=rng.randbytes(4)),
                frame(b"\xed\xa0\x80 surrogate"),
                frame(b"\xf4\x90\x80\x80 above U+10FFFF"),
                frame(b"\xc0\xaf overlong"),
                frame("x" * 5, form=16)[:2] + struct.pack("!H", LIMIT - 1) + b"\x00" * 4,
                frame("x" * 5, form=64)[:2] + struct.pack("!Q", LIMIT + 1),
                frame("lonely continuation", opcode=0),
            ]))
    return b"".join(parts)


def test_random_streams_split_at_random_places():
    rng = random.Random(20261201)
    cases = 6000
    started = time.monotonic()
    for case in range(cases):
        data = random_stream(rng)
        limit = LIMIT if case % 5 else rng.choice([100, 1000, 3000])
        chunks = split(rng, data)
        theirs = run([data], ours=False, message_limit=limit)
        mine = run(chunks, ours=True, message_limit=limit)
        assert mine.key() == theirs.key(), f"case {case}: {data!r} in {len(chunks)} chunks"
    assert time.monotonic() - started < 300


# -- through the server ------------------------------------------------------------------------

def test_frames_cut_anywhere_reach_the_server_in_order(server, raw_factory):
    """Event packets as masked text frames, with a ping and a fragmented event among them,
    written in pieces that end inside frames and inside characters: every one answered, in
    order, and the pong comes."""
    raw = raw_factory(server.url, "websocket")
    raw.connect_socketio()
    rng = random.Random(11)
    frames, expected = [], []
    for n in range(1, 41):
        packet = f'42{n}["noSuchEvent€",{json.dumps(text(rng, rng.choice([3, 100, 400])))}]'
        expected.append(n)
        if n == 10:
            frames.append(frame(b"still there?", opcode=9))
        if n == 20:
            raw_packet = packet.encode()
            frames.append(frame(raw_packet[:9], fin=False) + frame(raw_packet[9:], opcode=0))
            continue
        frames.append(frame(packet, key=rng.randbytes(4)))
    data = b"".join(frames)
    sock = raw.ws.sock
    for chunk in split(random.Random(12), data):
        sock.sendall(chunk)
        time.sleep(0.002)
    acks, pongs = [], 0
    raw.ws.settimeout(5)
    while len(acks) < len(expected):
        opcode, payload = raw.ws.recv_data(control_frame=True)
        if opcode == 0xA:
            pongs += 1
            assert payload == b"still there?"
            continue
        message = payload.decode()
        if message == "2":
            raw.send("3")
        elif message.startswith("43"):
            acks.append(int(message[2:message.index("[")]))
    assert acks == expected
    assert pongs == 1
