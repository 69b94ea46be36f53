"""The real chat server as a child process on an ephemeral port.

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

import pytest
import requests

from support import ROOT

SERVING = re.compile(r"Serving on http://([\d.]+):(\d+)")
RUNNING = []  # servers of this process that are running, for failure reports (conftest)


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
        # Many tests try wrong passwords on purpose, all from 127.0.0.1: the password
        # budgets (per address and per name or room) have their own tests.
        env.setdefault("PASSWORD_RATE", "off")
        env.setdefault("PASSWORD_TARGET_RATE", "off")
        # Guests end with their last connection, as in v1; the grace has its own tests.
        env.setdefault("GUEST_GRACE", "0")
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
        RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start:\n" + "\n".join(self.log_lines))
        return self

    def log_tail(self, lines=40):
        """The last lines of the log: attached to the report of a test that fails."""
        with self._log_lock:
            return "\n".join(self.log_lines[-lines:])

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
        if self in RUNNING:
            RUNNING.remove(self)
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


def private_server(env, scope="module"):
    """Build a fixture: one server with its own settings and database, shared by a module's
    tests. A test module assigns it to the fixture's name: `cors_server = private_server(...)`.

    For settings that tests only read (limits, origins, timeouts); tests that kill the
    server or need an empty database use the `server_factory` fixture instead."""

    @pytest.fixture(scope=scope)
    def fixture(tmp_path_factory):
        srv = ServerProcess(tmp_path_factory.mktemp("private"), env=env).start()
        yield srv
        srv.stop()

    return fixture
