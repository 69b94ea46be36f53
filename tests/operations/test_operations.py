"""What operators see: metrics, the Admin UI's gate, logs, readiness and the config check."""

import json
import subprocess
import sys
import time

import pytest
import socketio
from support import ROOT
from support.actions import join, send, send_to
from support.checks import err
from support.client import ConnectRefused
from support.metrics import scrape_metrics
from support.names import uname, uroom

TOKEN = "metrics-secret-123"


def scrape(srv):
    return scrape_metrics(srv, TOKEN)


def value(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def ops_server(server_factory):
    """A private server with metrics, an admin account and a strict rate limit (2/60)."""
    return server_factory(env={"METRICS_TOKEN": TOKEN, "RATE_LIMIT": "2/60",
                               "ADMIN_USER": "admin", "ADMIN_PASSWORD": "admin-pass-123"})


def test_metrics_need_the_token(ops_server, server):
    assert ops_server.get("/metrics").status_code == 401
    wrong = ops_server.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert server.get("/metrics").status_code == 404  # off without METRICS_TOKEN


def test_metrics_follow_clients_and_messages(ops_server, client_factory):
    before = scrape(ops_server)
    assert value(before, "chat_connections", transport="websocket") == 0
    alice = client_factory()
    alice.connect(ops_server.url, auth={"name": uname("alice")})
    bob = client_factory()
    bob.connect(ops_server.url, auth={"name": uname("bob")}, transport="polling")
    room = uroom("m")
    join(alice, room)
    send(alice, "one")
    send_to(alice, room, "two")
    err(alice.call("message", "three"), "rate_limited")
    err(alice.call("history", {"conversation": 5}), "invalid_payload")
    after = scrape(ops_server)
    assert value(after, "chat_connections", transport="websocket") == 1
    assert value(after, "chat_connections", transport="polling") == 1
    assert value(after, "chat_users_online") == 2
    assert value(after, "chat_rooms") == 1
    assert value(after, "chat_messages_accepted_total", kind="broadcast") == 1
    assert value(after, "chat_messages_accepted_total", kind="room") == 1
    assert value(after, "chat_messages_delivered_total", kind="broadcast") == 2
    assert value(after, "chat_rate_limited_total") == 1
    assert value(after, "chat_acks_total", code="rate_limited") == 1
    assert value(after, "chat_acks_total", code="invalid_payload") == 1
    assert value(after, "chat_acks_total", code="ok") >= 3
    assert value(after, "chat_store_seconds_count", call="insert_messages") == 2
    assert ("chat_event_loop_lag_seconds", ()) in after
    bob.disconnect()
    alice.disconnect()
    # The client returns before the server has handled the close: give it a moment.
    deadline = time.monotonic() + 5
    gone = scrape(ops_server)
    while value(gone, "chat_connections", transport="websocket") and \
            time.monotonic() < deadline:
        time.sleep(0.05)
        gone = scrape(ops_server)
    assert value(gone, "chat_connections", transport="websocket") == 0
    assert value(gone, "chat_users_online") == 0


@pytest.mark.parametrize("auth", [None, {"username": "admin", "password": "wrong-password"},
                                  {"username": "someone", "password": "admin-pass-123"}])
def test_admin_namespace_refuses_wrong_credentials(ops_server, auth):
    client = socketio.Client(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(ops_server.url, namespaces=["/admin"], auth=auth, wait_timeout=3)
    finally:
        client.disconnect()


def test_admin_namespace_accepts_the_password(ops_server):
    client = socketio.Client(reconnection=False)
    try:
        client.connect(ops_server.url, namespaces=["/admin"],
                       auth={"username": "admin", "password": "admin-pass-123"}, wait_timeout=3)
        assert client.connected
    finally:
        client.disconnect()


def test_admin_is_off_without_credentials(server):
    client = socketio.Client(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(server.url, namespaces=["/admin"],
                           auth={"username": "admin", "password": "x"}, wait_timeout=3)
    finally:
        client.disconnect()


def test_logs_tell_the_story_without_secrets(server_factory, client_factory):
    """A scripted session logs connections, refusals and disconnections with their
    details, as JSON lines, and never a token, password or message text."""
    srv = server_factory(env={"LOG_FORMAT": "json", "RATE_LIMIT": "off"})
    password, text = "very-secret-pw-42", "the private message text 9f3c"
    alice = client_factory()
    alice.connect(srv.url, auth={"name": uname("alice"), "password": password})
    intruder = client_factory()
    with pytest.raises(ConnectRefused):
        intruder.connect(srv.url, auth={"name": alice.name, "password": "guess-guess"})
    send(alice, text)
    token = alice.token
    alice.disconnect()
    srv.stop()
    lines = [json.loads(line) for line in srv.log_text().splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "message"} <= set(e) for e in lines)
    messages = [e["message"] for e in lines]
    assert any("connect sid=" in m and alice.name in m and "transport=websocket" in m
               and "address=127.0.0.1" in m for m in messages)
    assert any("refused connection" in m and "bad_password" in m for m in messages)
    assert any("disconnect sid=" in m and "duration=" in m for m in messages)
    everything = srv.log_text()
    for secret in (password, "guess-guess", text, token):
        assert secret not in everything


def test_readyz_and_healthz(server):
    health = server.get("/healthz")
    assert health.status_code == 200 and health.json()["store"] == "ok"
    ready = server.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_check_config(server, tmp_path):
    good = subprocess.run([sys.executable, "-m", "chat_server", "--check-config",
                           "--database-url", f"sqlite:///{tmp_path}/ok.db"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert good.returncode == 0 and "config ok" in good.stdout
    bad = subprocess.run([sys.executable, "-m", "chat_server", "--check-config",
                          "--database-url", f"sqlite:///{tmp_path}/ok.db",
                          "--redis-url", "redis://127.0.0.1:1/0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1 and "redis" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "chat_server", "--check-config",
                              "--database-url", "sqlite:////no/such/dir/x.db"],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "store" in missing.stderr
