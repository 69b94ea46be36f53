"""HTTP promises: /healthz, the page's security headers, and the same-origin default."""

import base64
import os
import socket
from html.parser import HTMLParser

import pytest
import requests
from support.checks import ok
from support.client import ConnectRefused
from support.server import private_server

EVIL = "http://evil.example"
GOOD = "http://good.example"
cors_server = private_server({"CORS_ORIGINS": GOOD, "RATE_LIMIT": "off"})


def test_healthz_answers_json(server):
    """GET /healthz answers 200 with a JSON object."""
    r = server.get("/healthz")
    assert r.status_code == 200
    assert "json" in r.headers.get("Content-Type", "")
    body = r.json()
    assert isinstance(body, dict) and body, body


def csp_directives(header):
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = [w.lower() for w in words[1:]]
    return out


def test_page_has_csp_without_inline_scripts_and_nosniff(server):
    """GET / serves HTML with a CSP forbidding inline scripts and X-Content-Type-Options nosniff."""
    r = server.get("/")
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith("text/html")
    assert r.headers.get("X-Content-Type-Options", "").lower() == "nosniff"
    csp = r.headers.get("Content-Security-Policy")
    assert csp, "no Content-Security-Policy header"
    directives = csp_directives(csp)
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"CSP does not restrict scripts: {csp}"
    assert "'unsafe-inline'" not in scripts, f"CSP allows inline scripts: {csp}"
    assert "*" not in scripts, f"CSP allows scripts from anywhere: {csp}"
    elem = directives.get("script-src-elem")
    assert elem is None or "'unsafe-inline'" not in elem, csp
    attr = directives.get("script-src-attr")
    assert attr is None or "'unsafe-inline'" not in attr, csp


class InlineScriptFinder(HTMLParser):
    """Collects inline script bodies and inline event-handler attributes."""

    def __init__(self):
        super().__init__()
        self.problems = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
        if tag == "script":
            kind = (attrs.get("type") or "text/javascript").lower()
            self._in_script = "src" not in attrs and (
                "javascript" in kind or kind == "module")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.problems.append("inline <script>: " + data.strip()[:60])


def test_page_works_under_its_own_csp(server):
    """The page has no inline scripts or inline event handlers (its CSP would block them)."""
    finder = InlineScriptFinder()
    finder.feed(server.get("/").text)
    assert not finder.problems, finder.problems


def test_foreign_origin_handshake_is_refused(server):
    """An Engine.IO handshake with a foreign Origin header is refused by default."""
    url = server.url + "/socket.io/?EIO=4&transport=polling"
    assert requests.get(url, timeout=5).status_code == 200
    assert requests.get(url, headers={"Origin": server.url}, timeout=5).status_code == 200
    assert requests.get(url, headers={"Origin": EVIL}, timeout=5).status_code >= 400


def origin_client(client_factory, transport):
    if transport == "websocket":
        return client_factory(websocket_extra_options={"suppress_origin": True})
    return client_factory()


def test_foreign_origin_cannot_connect(server, client_factory, transport):
    """A Socket.IO client sending a foreign Origin is refused over either transport."""
    c = origin_client(client_factory, transport)
    with pytest.raises(ConnectRefused):
        c.connect(server.url, transport=transport, headers={"Origin": EVIL})
    assert c.welcome is None


def test_same_origin_can_connect(server, client_factory, transport):
    """A client sending the page's own origin connects."""
    c = origin_client(client_factory, transport)
    c.connect(server.url, transport=transport, headers={"Origin": server.url})
    ok(c.call("listUsers"))


def test_cors_origins_widens_the_allowed_origins(cors_server, client_factory, transport):
    """CORS_ORIGINS admits the listed origin, and still refuses others."""
    srv = cors_server
    c = origin_client(client_factory, transport)
    c.connect(srv.url, transport=transport, headers={"Origin": GOOD})
    ok(c.call("listRooms"))
    other = origin_client(client_factory, transport)
    with pytest.raises(ConnectRefused):
        other.connect(srv.url, transport=transport, headers={"Origin": EVIL})


def test_cors_origins_keeps_the_page_origin(cors_server, client_factory, transport):
    """CORS_ORIGINS widens the default: the page's own origin still connects."""
    srv = cors_server
    c = origin_client(client_factory, transport)
    c.connect(srv.url, transport=transport, headers={"Origin": srv.url})
    ok(c.call("listUsers"))


def _frame_text(sock):
    """Read one unmasked server frame; returns (first byte, payload text)."""
    head = sock.recv(2, socket.MSG_WAITALL)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(sock.recv(2, socket.MSG_WAITALL), "big")
    elif size == 127:
        size = int.from_bytes(sock.recv(8, socket.MSG_WAITALL), "big")
    return head[0], sock.recv(size, socket.MSG_WAITALL).decode()


def test_websocket_compression_offered_by_browsers_is_declined(server):
    """Browsers offer permessage-deflate; the server answers without it and sends plain
    text frames (compressed frames would have to be built per socket)."""
    host, port = server.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            f"Origin: {server.url}\r\n\r\n".encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(1)
        assert response.startswith(b"HTTP/1.1 101"), response
        assert b"sec-websocket-extensions" not in response.lower(), response
        first, text = _frame_text(sock)
        assert first == 0x81 and text.startswith("0{"), (first, text)  # OPEN, no RSV1
        mask = os.urandom(4)
        payload = b"40"
        sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask
                     + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        first, text = _frame_text(sock)
        assert first == 0x81 and text.startswith("40{"), (first, text)  # CONNECT
        first, text = _frame_text(sock)
        assert first == 0x81 and text.startswith('42["welcome"'), (first, text)
