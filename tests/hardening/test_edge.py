"""The HTTP edge (issue 12): what one client address can do to everyone else at the HTTP
layer, and what every response looks like.

Every test runs a real server on 127.0.0.1. Attackers connect to it from other loopback
source addresses (127.0.0.2, .3, ...: the whole 127/8 is this machine), so that the
server sees them as other client addresses than the bystander, who connects from
127.0.0.1 and times a `listUsers` round trip and a `/healthz` on a new connection every
0.2 s while each flood runs (both must stay under one second). Floods are bounded in count
and time: each test takes a few seconds.
"""

import http.client
import logging
import socket
import threading
import time

import pytest
import requests
from support.checks import eventually, ok
from support.names import uname

ATTACKER = "127.0.0.2"
OTHER = "127.0.0.3"
THIRD = "127.0.0.4"
FOURTH = "127.0.0.5"
ROUND_TRIP = 1.0  # seconds a bystander's round trip may take during a flood
# What the floods and the office ask for: a static file. (/healthz pings the store, one
# call at a time, so hundreds of them would measure the store's queue, not the edge.)
PAGE = "/static/app.js"


# -- helpers ---------------------------------------------------------------------------------

class Bystander:
    """A connected client that, in a thread, times a `listUsers` round trip and a `/healthz`
    on a new connection every 0.2 s until the block ends."""

    def __init__(self, srv, client_factory):
        self.srv = srv
        self.client = client_factory()
        self.client.connect(srv.url, auth={"name": uname("bystander")})
        self.round_trips = []
        self.health = []
        self.failures = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                ok(self.client.call("listUsers", timeout=3))
                self.round_trips.append(time.monotonic() - started)
            except Exception as error:  # recorded, asserted by check()
                self.failures.append(f"listUsers: {error!r}")
            started = time.monotonic()
            try:
                r = requests.get(self.srv.url + "/healthz", timeout=3,
                                 headers={"Connection": "close"})
                assert r.status_code == 200, r.status_code
                self.health.append(time.monotonic() - started)
            except Exception as error:
                self.failures.append(f"/healthz: {error!r}")
            self._stop.wait(0.2)

    def check(self):
        assert not self.failures, self.failures[:5]
        assert self.round_trips and self.health
        assert max(self.round_trips) < ROUND_TRIP, sorted(self.round_trips)[-5:]
        assert max(self.health) < ROUND_TRIP, sorted(self.health)[-5:]


@pytest.fixture
def open_from():
    """open_from(srv, source): a TCP connection to the server (always 127.0.0.1) from
    loopback address `source`; every one is closed at teardown."""
    made = []

    def connect(srv, source, timeout=3.0):
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout,
                                        source_address=(source, 0))
        made.append(sock)
        return sock

    yield connect
    for sock in made:
        sock.close()


def http_from(srv, source, timeout=3.0):
    return http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout,
                                      source_address=(source, 0))


def send_quietly(sock, data):
    """Send; False if the server has closed the connection already."""
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def closed_by_server(sock):
    """Whether the server has closed this connection (FIN or RST), without waiting."""
    if sock.fileno() == -1:
        return True
    sock.settimeout(0)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def read_response(sock, deadline):
    """(status, head, body) of one HTTP response, or None if the connection was closed
    or nothing came before `deadline` (a monotonic time)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock, deadline)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    length = int(headers.get("content-length", ["0"])[0])
    while len(body) < length:
        chunk = _recv(sock, deadline)
        if not chunk:
            return None
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _recv(sock, deadline):
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except OSError:  # a timeout, or a reset
        return b""


def get(path, host="127.0.0.1", extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def handshake(conn, headers=None):
    """An Engine.IO polling handshake on `conn`: (status, Retry-After, body)."""
    conn.request("GET", "/socket.io/?EIO=4&transport=polling", headers=headers or {})
    r = conn.getresponse()
    return r.status, r.getheader("Retry-After"), r.read().decode("utf-8", "replace")


def handshakes(srv, source, count, seconds=3.0):
    """Up to `count` handshakes on one keep-alive connection from `source`, for at most
    `seconds`: (sids of the sessions made, refusals as (status, Retry-After))."""
    conn = http_from(srv, source)
    made, refused = [], []
    deadline = time.monotonic() + seconds
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            status, retry, body = handshake(conn)
            if status == 200:
                made.append(body.split('"sid":"')[1].split('"')[0])
            else:
                refused.append((status, retry))
    finally:
        conn.close()
    return made, refused


def post_connect(srv, source, sid):
    """Send the Socket.IO CONNECT on session `sid` (long-polling) from `source`."""
    conn = http_from(srv, source)
    try:
        conn.request("POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}", body="40",
                     headers={"Content-Type": "text/plain;charset=UTF-8"})
        r = conn.getresponse()
        assert r.status == 200 and r.read().lower() == b"ok"
    finally:
        conn.close()


# -- 1. slowloris: connections and unfinished heads per address, and a head deadline -------

@pytest.mark.alone  # a bystander's round trips are timed
def test_slowloris_holds_few_slots_and_none_for_long(server_factory, client_factory, open_from):
    """One address opens 300 connections (the server's pool has 200 slots) and trickles a
    byte of request head on each every 0.5 s. At most MAX_UNFINISHED_REQUESTS (20) of them
    are held at a time, each for at most HEADER_TIMEOUT (2 s) whatever it trickles, and
    meanwhile /healthz and new clients from another address get in at once."""
    srv = server_factory(env={"MAX_CONNECTIONS": "100", "MAX_UNFINISHED_REQUESTS": "20",
                              "HEADER_TIMEOUT": "2"})
    conns = []  # [socket, opened at, closed at]
    held_at_once = 0
    with Bystander(srv, client_factory) as bystander:
        started = time.monotonic()
        for _ in range(300):
            sock = open_from(srv, ATTACKER)
            sent = send_quietly(sock, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            conns.append([sock, time.monotonic(), None if sent else time.monotonic()])
        newcomer = None
        while time.monotonic() - started < 5.0:
            time.sleep(0.5)
            now = time.monotonic()
            held = 0
            for conn in conns:
                sock, opened, closed = conn
                if closed is not None:
                    continue
                if closed_by_server(sock):
                    conn[2] = now
                    continue
                try:
                    sock.send(b"a")  # one more byte of a header that never ends
                except OSError:
                    conn[2] = now
                    continue
                if now - opened > 1.0:
                    held += 1
            held_at_once = max(held_at_once, held)
            if newcomer is None and now - started > 1.0:
                newcomer = client_factory()
                newcomer.connect(srv.url, auth={"name": uname("newcomer")}, timeout=3)
        for sock, _, _ in conns:
            sock.close()
    bystander.check()
    assert newcomer is not None and newcomer.connected
    assert held_at_once <= 30, f"{held_at_once} trickling connections held at once"
    lifetimes = [closed - opened for _, opened, closed in conns if closed is not None]
    still_open = [c for c in conns if c[2] is None]
    assert not still_open, f"{len(still_open)} connections trickled past the deadline"
    assert max(lifetimes) < 2 + 2.0, f"held for {max(lifetimes):.1f}s despite a 2 s deadline"
    assert "request head not complete in 2s" in srv.log_text()


@pytest.mark.alone  # a bystander's round trips are timed
def test_connections_per_address_are_capped_and_trusted_proxies_are_exempt(
        server_factory, client_factory, open_from):
    """One address opens 200 keep-alive connections, each with a complete request (the
    pool has 160 slots): MAX_CONNECTIONS_PER_ADDRESS (30) are served and kept, the others
    are closed at once. A trusted proxy, which all its users share, is not capped: its 60
    connections are all served, twice each, while the attacker holds its 30."""
    srv = server_factory(env={"MAX_CONNECTIONS": "60", "MAX_CONNECTIONS_PER_ADDRESS": "30",
                              "TRUSTED_PROXIES": OTHER})
    with Bystander(srv, client_factory) as bystander:
        attack = [open_from(srv, ATTACKER) for _ in range(200)]
        for sock in attack:
            send_quietly(sock, get(PAGE))
        deadline = time.monotonic() + 3
        served = [s for s in attack if (read_response(s, deadline) or (0,))[0] == 200]
        proxied = [open_from(srv, OTHER) for _ in range(60)]
        for _round in range(2):
            for i, sock in enumerate(proxied):
                sock.sendall(get(PAGE, extra=f"X-Forwarded-For: 203.0.113.{i}\r\n"))
            deadline = time.monotonic() + 3
            statuses = [(read_response(s, deadline) or (None,))[0] for s in proxied]
            assert statuses == [200] * 60, statuses
        newcomer = client_factory()
        newcomer.connect(srv.url, auth={"name": uname("newcomer")}, timeout=3)
        held = [s for s in served if not closed_by_server(s)]
        for sock in attack + proxied:
            sock.close()
    bystander.check()
    assert 20 <= len(served) <= 30, f"{len(served)} connections from one address served"
    assert len(held) == len(served)  # the ones let in keep their keep-alive connection

    def served_again():  # the budget frees up as connections close
        sock = open_from(srv, ATTACKER)
        try:
            send_quietly(sock, get(PAGE))
            return (read_response(sock, time.monotonic() + 1) or (0,))[0] == 200
        finally:
            sock.close()

    eventually(served_again, timeout=5)


# -- 2. Engine.IO sessions that never CONNECT ------------------------------------------------

@pytest.mark.alone  # a bystander's round trips are timed
def test_sessions_without_connect_are_budgeted_per_address_and_in_total(server_factory,
                                                                        client_factory):
    """Polling handshakes in a loop that never CONNECT: 20 sessions per address
    (MAX_PENDING_SESSIONS_PER_ADDRESS), then 429 with Retry-After; 50 in all
    (MAX_PENDING_SESSIONS), then 503 for every address. A session that CONNECTs frees its
    place at once, and 25 real clients from one address all connect."""
    srv = server_factory(env={"MAX_PENDING_SESSIONS_PER_ADDRESS": "20",
                              "MAX_PENDING_SESSIONS": "50"})
    with Bystander(srv, client_factory) as bystander:
        made, refused = handshakes(srv, ATTACKER, 1000)
        assert len(made) == 20, f"{len(made)} sessions without CONNECT from one address"
        assert len(refused) >= 100, len(refused)  # the flood went on, refused
        assert {status for status, _ in refused} == {429}
        assert all(retry and int(retry) >= 1 for _, retry in refused)

        clients = [client_factory() for _ in range(25)]  # connected sessions do not count
        for c in clients:
            c.connect(srv.url, auth={"name": uname("office")}, timeout=5)

        post_connect(srv, ATTACKER, made[0])  # one of them connects: its place is free
        again = []
        eventually(lambda: again.extend(handshakes(srv, ATTACKER, 1)[0]) or again, timeout=3)
        assert handshakes(srv, ATTACKER, 5)[0] == []

        other, _ = handshakes(srv, OTHER, 100)
        third, refused_total = handshakes(srv, THIRD, 100)
        assert (len(other), len(third)) == (20, 10), (len(other), len(third))
        assert refused_total and {status for status, _ in refused_total} == {503}
        assert handshakes(srv, FOURTH, 3)[0] == []  # the total holds for everyone
        for c in clients:
            ok(c.call("listUsers"))
    bystander.check()


@pytest.mark.alone  # a bystander's round trips are timed
def test_sessions_that_never_connect_give_their_place_back_when_closed(server_factory,
                                                                      client_factory):
    """Sessions closed by CONNECT_TIMEOUT leave the budget: the address may open new ones."""
    srv = server_factory(env={"MAX_PENDING_SESSIONS_PER_ADDRESS": "20",
                              "CONNECT_TIMEOUT": "2"})
    with Bystander(srv, client_factory) as bystander:
        made, refused = handshakes(srv, ATTACKER, 200)
        assert len(made) == 20 and refused
        assert handshakes(srv, ATTACKER, 1)[0] == []
        found = []
        eventually(lambda: found.extend(handshakes(srv, ATTACKER, 1)[0]) or found, timeout=8)
    bystander.check()


# -- 3. errors: no traceback, security headers everywhere ------------------------------------

def test_static_nul_is_not_found_and_leaks_nothing(server):
    """GET /static/%00 was a 500 with the traceback and machine paths in the body."""
    for path in ("/static/%00", "/static/a%00b.js", "/static/" + "x" * 300, "/%00"):
        r = requests.get(server.url + path, timeout=5)
        assert r.status_code == 404, (path, r.status_code)
        assert "Traceback" not in r.text and "/chat_server/" not in r.text, r.text[:200]
        assert r.headers.get("X-Content-Type-Options") == "nosniff", r.headers
        assert "Content-Security-Policy" in r.headers
    assert "Traceback" not in server.log_text().split("Serving on")[-1]


def test_every_response_carries_the_security_headers(server, open_from, raw_session):
    """Page, files, errors, health, Engine.IO's answers (handshake, POST, bad session) and
    the answers to malformed requests all say nosniff."""
    url = server.url
    raw = raw_session(url)
    answers = {
        "page": requests.get(url + "/", timeout=5),
        "missing": requests.get(url + "/nope", timeout=5),
        "method": requests.post(url + "/", timeout=5),
        "healthz": requests.get(url + "/healthz", timeout=5),
        "readyz": requests.get(url + "/readyz", timeout=5),
        "metrics off": requests.get(url + "/metrics", timeout=5),
        "handshake": raw.handshake_response,
        "post": raw.post("40"),
        "bad session": requests.get(url + "/socket.io/?EIO=4&transport=polling&sid=nope",
                                    timeout=5),
        "bad transport": requests.get(url + "/socket.io/?EIO=4&transport=carrier", timeout=5),
        "bad host": requests.get(url + "/", headers={"Host": "evil.example"}, timeout=5),
    }
    for name, r in answers.items():
        assert r.headers.get("X-Content-Type-Options") == "nosniff", (name, r.status_code)
        assert r.headers.get("X-Frame-Options") == "DENY", name
    for request in (b"GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",  # the standard library's
                    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n"  # ours
                    b"Content-Length: 1\r\n\r\nx"):
        sock = open_from(server, "127.0.0.1")
        sock.sendall(request)
        status, headers, body = read_response(sock, time.monotonic() + 5)
        sock.close()
        assert 400 <= status < 600 and headers.get("x-content-type-options") == ["nosniff"]
        assert b"Traceback" not in body and b"<" not in body, body


class RawSession:
    """A long-polling Engine.IO session from 127.0.0.1, answers kept whole."""

    def __init__(self, url):
        self.url = url
        self.http = requests.Session()
        self.handshake_response = self.http.get(url + "/socket.io/?EIO=4&transport=polling",
                                                timeout=5)
        self.sid = self.handshake_response.text.split('"sid":"')[1].split('"')[0]

    def close(self):
        self.http.close()

    def post(self, body):
        return self.http.post(f"{self.url}/socket.io/?EIO=4&transport=polling&sid={self.sid}",
                              data=body, headers={"Content-Type": "text/plain;charset=UTF-8"},
                              timeout=5)


@pytest.fixture
def raw_session():
    """raw_session(url): a `RawSession`, closed at teardown."""
    made = []

    def make(url):
        made.append(RawSession(url))
        return made[-1]

    yield make
    for raw in made:
        raw.close()


def test_an_exception_becomes_a_plain_500_and_its_traceback_is_logged(caplog):
    """No route of ours raises today (that is the point): the wrapper every request passes
    is driven directly with an application that does."""
    from chat_server import edge, web

    def broken(environ, start_response):
        raise RuntimeError("secret detail at /srv/chat_server/app.py")

    calls = []

    def start_response(status, headers, exc_info=None):
        calls.append((status, dict(headers), exc_info))

    app = edge.harden(broken, web.SECURITY_HEADERS)
    with caplog.at_level(logging.ERROR, logger="chat_server.edge"):
        body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, start_response))
    (status, headers, _), = calls
    assert status.startswith("500 ") and b"secret" not in body and b"Traceback" not in body
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Type"].startswith("text/plain")
    assert "secret detail" in caplog.text and "Traceback" in caplog.text


# -- 4. /metrics tokens ---------------------------------------------------------------------

@pytest.mark.alone  # a bystander's round trips are timed
def test_wrong_metrics_tokens_are_throttled_per_address(server_factory, client_factory):
    """5 wrong tokens per address (METRICS_AUTH_FAILURES=5/60), then 429 with Retry-After,
    even for the right token; other addresses keep their own budget."""
    token = "metrics-secret-123"
    srv = server_factory(env={"METRICS_TOKEN": token, "METRICS_AUTH_FAILURES": "5/60"})
    statuses = []
    with Bystander(srv, client_factory) as bystander:
        conn = http_from(srv, ATTACKER)
        deadline = time.monotonic() + 3
        for i in range(300):
            if time.monotonic() > deadline:
                break
            conn.request("GET", "/metrics", headers={"Authorization": f"Bearer guess-{i:08d}"})
            r = conn.getresponse()
            r.read()
            statuses.append((r.status, r.getheader("Retry-After")))
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        right = conn.getresponse()
        right.read()
        conn.close()
        elsewhere = requests.get(srv.url + "/metrics", timeout=5,
                                 headers={"Authorization": f"Bearer {token}"})
    bystander.check()
    assert [s for s, _ in statuses[:5]] == [401] * 5
    assert len(statuses) > 50 and {s for s, _ in statuses[5:]} == {429}, statuses[:10]
    assert all(int(retry) >= 1 for _, retry in statuses[5:])
    assert right.status == 429  # past the budget, even the right token is no use
    assert elsewhere.status_code == 200


def test_failure_budget_refills_over_time():
    from chat_server.config import RateLimit
    from chat_server.edge import FailureBudget

    now = [0.0]
    budget = FailureBudget(RateLimit(5, 60.0), clock=lambda: now[0])
    for _ in range(5):
        assert budget.wait("a") == 0
        budget.failed("a", "test")
    assert budget.wait("a") == pytest.approx(12.0)  # one more failure every 12 s
    assert budget.wait("b") == 0
    now[0] = 12.0
    assert budget.wait("a") == 0
    budget.failed("a", "test")
    assert budget.wait("a") == pytest.approx(12.0)
    now[0] = 1000.0
    assert budget.wait("a") == 0


# -- 5. DNS rebinding ------------------------------------------------------------------------

def test_foreign_host_is_refused_by_a_loopback_server(server, open_from, raw_session):
    """DNS rebinding: a page at evil.example:8000 whose name now resolves to this server
    sends `Host: evil.example:8000` and a matching Origin. The server (bound to 127.0.0.1)
    serves only loopback names."""
    evil = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    url = server.url
    assert requests.get(url + "/", headers=evil, timeout=5).status_code == 400
    assert requests.get(url + "/healthz", headers=evil, timeout=5).status_code == 400
    r = requests.get(url + "/socket.io/?EIO=4&transport=polling", headers=evil, timeout=5)
    assert r.status_code == 400 and '"sid"' not in r.text
    sock = open_from(server, "127.0.0.1")
    sock.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                 b"Host: evil.example:8000\r\nOrigin: http://evil.example:8000\r\n"
                 b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    answer = read_response(sock, time.monotonic() + 5)
    sock.close()
    assert answer is not None and answer[0] == 400
    # a session made under a good name cannot be used under a bad one either
    raw = raw_session(url)
    r = raw.http.post(f"{url}/socket.io/?EIO=4&transport=polling&sid={raw.sid}", data="40",
                      headers={**evil, "Content-Type": "text/plain;charset=UTF-8"}, timeout=5)
    assert r.status_code == 400
    port = server.port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "127.8.9.10", f"[::1]:{port}",
                 "LOCALHOST.", "localhost"):
        origin = {"Origin": f"http://{host}"}
        assert requests.get(url + "/", headers={"Host": host}, timeout=5).status_code == 200
        r = requests.get(url + "/socket.io/?EIO=4&transport=polling",
                         headers={"Host": host, **origin}, timeout=5)
        assert r.status_code == 200, (host, r.status_code)
    assert "serving Host localhost" in server.log_text()


def test_allowed_hosts_names_the_hosts_served(server_factory, client_factory):
    srv = server_factory(env={"ALLOWED_HOSTS": "chat.example.com, Other.Example"})
    for host, status in (("chat.example.com:8443", 200), ("other.example", 200),
                         ("evil.example", 400), ("chat.example.com.evil.example", 400),
                         (f"localhost:{srv.port}", 200)):
        r = requests.get(srv.url + "/socket.io/?EIO=4&transport=polling",
                         headers={"Host": host}, timeout=5)
        assert r.status_code == status, (host, r.status_code)
    anything = server_factory(env={"ALLOWED_HOSTS": "*"})
    r = requests.get(anything.url + "/", headers={"Host": "whatever.example"}, timeout=5)
    assert r.status_code == 200
    client_factory().connect(srv.url, auth={"name": uname("hosted")})  # Host 127.0.0.1:port


def test_any_host_is_served_with_a_warning_while_allowed_hosts_is_unset(caplog):
    """A server on a public address without ALLOWED_HOSTS serves any Host (as before) and
    says so at start; binding to a public address is not done in tests."""
    from chat_server.config import load
    from chat_server.hosts import HostPolicy

    public = HostPolicy.from_config(load(["--host", "0.0.0.0"], environ={}))
    with caplog.at_level(logging.WARNING, logger="chat_server.edge"):
        public.announce()
    assert public.allows("evil.example:8000")
    assert "ALLOWED_HOSTS is not set" in caplog.text and "DNS rebinding" in caplog.text
    named = HostPolicy.from_config(load(["--host", "0.0.0.0", "--allowed-hosts", "a.example"],
                                        environ={}))
    assert named.allows("A.example:443") and not named.allows("localhost")
    assert not named.allows("a.example,evil.example")  # two Host headers, joined
    loopback = HostPolicy.from_config(load(["--host", "::1"], environ={}))
    assert loopback.allows("[::1]:8000") and not loopback.allows("evil.example")


# -- 6. duplicate Content-Length --------------------------------------------------------------

@pytest.mark.parametrize("lengths", [(2, 2), (2, 40), (40, 2)])
def test_duplicate_or_conflicting_content_length_is_a_400(server, lengths, open_from,
                                                           raw_session):
    """A polling POST with two Content-Length headers: which one frames the body is
    exactly what a proxy and this server could disagree on (request smuggling)."""
    raw = raw_session(server.url)
    sock = open_from(server, "127.0.0.1")
    first, second = lengths
    sock.sendall((f"POST /socket.io/?EIO=4&transport=polling&sid={raw.sid} HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{server.port}\r\nContent-Type: text/plain;charset=UTF-8\r\n"
                  f"Content-Length: {first}\r\nContent-Length: {second}\r\n\r\n40"
                  + "x" * 38).encode())
    answer = read_response(sock, time.monotonic() + 5)
    assert answer is not None and answer[0] == 400, answer
    assert answer[1].get("connection") == ["close"]
    sock.settimeout(3)
    try:
        rest = sock.recv(100)
    except OSError:
        rest = b""
    sock.close()
    assert rest == b""  # closed: nothing after the 400 is read as another request


# -- real deployments: defaults that do not refuse an office behind one address -----------

@pytest.mark.alone  # a bystander's round trips are timed
def test_defaults_let_an_office_behind_one_address_in(server_factory, client_factory, open_from):
    """With default limits, one NAT address with many users: 600 open keep-alive
    connections, 100 request heads arriving slowly at once (0.5 s each), and 150
    Engine.IO handshakes at once before their CONNECTs are all served."""
    srv = server_factory()
    office = THIRD
    with Bystander(srv, client_factory) as bystander:
        idle = []
        for _ in range(600):  # each browser sends its request as soon as it is connected
            idle.append(open_from(srv, office))
            idle[-1].sendall(get(PAGE))
        deadline = time.monotonic() + 10
        statuses = [(read_response(s, deadline) or (None,))[0] for s in idle]
        assert statuses == [200] * 600
        slow = []
        for _ in range(100):
            slow.append(open_from(srv, office))
            slow[-1].sendall(b"GET /static/app.js HTTP/1.1\r\n")
        time.sleep(0.5)
        for sock in slow:
            sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 10
        assert [(read_response(s, deadline) or (None,))[0] for s in slow] == [200] * 100
        made, refused = handshakes(srv, office, 150, seconds=20)
        assert (len(made), refused) == (150, [])
        for sid in made[:20]:
            post_connect(srv, office, sid)
        assert all(not closed_by_server(s) for s in idle)
        for sock in idle + slow:
            sock.close()
    bystander.check()

