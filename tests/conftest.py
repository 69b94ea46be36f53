"""Shared fixtures: the real server as a child process on an ephemeral port.

Tests never import eventlet or monkey-patch themselves: the server runs exactly as users
run it (`python -m chat_server`), and tests talk to it over real sockets.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import engineio.payload
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

# The server answers a long-poll with every packet queued for the client; python-engineio's
# client refuses more than 16 per response unless told otherwise (its documented knob).
engineio.payload.Payload.max_decode_packets = 4096
SERVING = re.compile(r"Serving on http://([\d.]+):(\d+)")


class ServerProcess:
    """One `python -m chat_server` child; restartable on the same port and database."""

    def __init__(self, tmp_path, env=None, args=()):
        self.tmp_path = Path(tmp_path)
        self.db_path = self.tmp_path / "chat.db"
        self.database_url = f"sqlite:///{self.db_path}"
        self.extra_env = dict(env or {})
        self.args = list(args)
        self.port = 0
        self.proc = None
        self._pump = None
        self.log_lines = []
        self._log_lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=20):
        if self.proc is not None:  # restarting after a stop, kill or exit
            self.proc.poll() is None and self.proc.kill()
            self._reap()
        env = dict(os.environ)
        env.setdefault("LOG_LEVEL", "INFO")
        # Every test client comes from 127.0.0.1: the per-address limit has its own tests.
        env.setdefault("CONNECT_RATE", "off")
        env.update(self.extra_env)
        cmd = [
            sys.executable, "-m", "chat_server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--database-url", self.extra_env.get("DATABASE_URL", self.database_url),
            *self.args,
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )
        ready = threading.Event()

        def pump(proc=self.proc):
            for line in proc.stdout:
                with self._log_lock:
                    self.log_lines.append(line.rstrip("\n"))
                m = SERVING.search(line)
                if m and not ready.is_set():
                    self.port = int(m.group(2))
                    ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start:\n" + "\n".join(self.log_lines))
        return self

    def log_text(self):
        with self._log_lock:
            return "\n".join(self.log_lines)

    def kill(self):
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap()

    def _reap(self):
        if self.proc is None:
            return
        self.proc.wait(10)
        self._pump.join(5)
        self.proc.stdout.close()

    def restart(self):
        self.kill()
        return self.start()

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=10, **kw)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A server shared by the tests that only need one; use unique names in each test."""
    srv = ServerProcess(tmp_path_factory.mktemp("server"), env={"RATE_LIMIT": "off"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory):
    """A shared server with the default rate limit on (20 sends per 10 s)."""
    srv = ServerProcess(tmp_path_factory.mktemp("limited")).start()
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(tmp_path):
    """Start private servers (own database, own settings) that the test may kill."""
    started = []

    def make(env=None, args=()):
        srv = ServerProcess(tmp_path / f"s{len(started)}", env=env, args=args)
        srv.tmp_path.mkdir(parents=True, exist_ok=True)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


# -- real Redis, PostgreSQL and nginx for the scale-out tests ------------------------------

@pytest.fixture(scope="session")
def backing_services():
    """One Redis and one PostgreSQL cluster for the session, or a skip naming what is
    missing (scripts/setup.sh --test installs them; CI always has them)."""
    import services

    missing = services.available()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing on CI: {missing}")
        pytest.skip(f"not installed: {missing}")
    redis_server = services.RedisServer().start()
    postgres = services.PostgresServer().start()
    yield redis_server, postgres
    redis_server.cleanup()
    postgres.cleanup()


@pytest.fixture
def cluster(backing_services, server_factory):
    """`cluster(n)` starts n chat nodes sharing a fresh PostgreSQL database and Redis."""
    redis_server, postgres = backing_services
    redis_server.proc and redis_server.proc.poll() is not None and redis_server.start()
    flush = __import__("redis").Redis.from_url(redis_server.url)
    flush.flushall()
    flush.close()
    database_url = postgres.create_database()

    def start(n=2, env=None):
        nodes = []
        for i in range(n):
            node_env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server.url,
                        "RATE_LIMIT": "off", "PRESENCE_TTL": "3", "NODE_NAME": f"node{i + 1}"}
            node_env.update(env or {})
            nodes.append(server_factory(env=node_env))
        return nodes

    start.redis = redis_server
    start.database_url = database_url
    return start
