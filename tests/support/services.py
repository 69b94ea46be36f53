"""Real Redis, PostgreSQL and nginx servers for the scale-out tests, started on loopback.

Each runs from a temporary directory on a free port and is stopped by the fixture that
started it. The binaries come from Debian's packages (`scripts/setup.sh --test`).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from support import ROOT


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=20, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port}")


def postgres_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available():
    """None when every binary is installed, else what is missing."""
    missing = [n for n, path in (("redis-server", shutil.which("redis-server")),
                                 ("postgres", postgres_bin("postgres")),
                                 ("nginx", shutil.which("nginx") or
                                  (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")))
               if not path]
    return ", ".join(missing) or None


class LocalServer:
    """A child process (`self.proc`) serving from its own temporary directory (`self.dir`)."""

    stop_timeout = 10

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(self.stop_timeout)

    def cleanup(self):
        self.stop()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer(LocalServer):
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="chat-redis-")
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, what="redis-server")
        return self


class PostgresServer(LocalServer):
    """A throw-away cluster; `create_database()` gives each test its own database."""

    stop_timeout = 20

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chat-pg-")
        self.data = os.path.join(self.dir, "data")
        self.proc = None
        self.count = 0
        # initdb refuses to run as root: run the cluster as the `postgres` user then.
        self.user = "postgres" if os.geteuid() == 0 else None

    def _as_owner(self, cmd):
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def start(self):
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._as_owner([postgres_bin("initdb"), "-D", self.data, "-A", "trust",
                                       "-U", "chat", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self.restart()

    def restart(self):
        """Run the cluster on its existing data (after `start()` or `kill()`) and wait until
        it accepts logins: the port opens a little before it does."""
        self.proc = subprocess.Popen(
            self._as_owner([postgres_bin("postgres"), "-D", self.data, "-p", str(self.port),
                            "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
                            "-c", "fsync=off", "-c", "max_connections=200"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, what="postgres")
        deadline = time.monotonic() + 30
        while self._psql("SELECT 1", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not accept logins")
            time.sleep(0.1)
        return self

    def kill(self):
        """Stop the cluster at once (`pg_ctl stop -m immediate`, which waits for it): when
        this returns, no process of the cluster is left to answer an open connection."""
        subprocess.run(self._as_owner([postgres_bin("pg_ctl"), "stop", "-D", self.data,
                                       "-m", "immediate", "-w"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.wait(self.stop_timeout)

    def _psql(self, sql, check=True):
        return subprocess.run([postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", "chat", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                               "-c", sql], check=check, capture_output=True, text=True)

    def create_database(self):
        self.count += 1
        name = f"chat_test_{self.count}"
        self._psql(f"CREATE DATABASE {name}")
        return f"postgresql://chat@127.0.0.1:{self.port}/{name}"


NGINX_CONF = ROOT / "deploy" / "nginx.conf"


class NginxServer(LocalServer):
    """nginx with the project's deploy/nginx.conf, its upstream pointed at test nodes."""

    def __init__(self, node_ports):
        self.dir = tempfile.mkdtemp(prefix="chat-nginx-")
        self.port = free_port()
        self.node_ports = node_ports
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        conf = NGINX_CONF.read_text()
        for needle in ("127.0.0.1:8001", "127.0.0.1:8002", "listen 8000;", "/tmp/chat-nginx"):
            assert needle in conf, f"deploy/nginx.conf no longer has {needle!r}"
        first, second = self.node_ports
        conf = (conf.replace("127.0.0.1:8001", f"127.0.0.1:{first}")
                .replace("127.0.0.1:8002", f"127.0.0.1:{second}")
                .replace("listen 8000;", f"listen 127.0.0.1:{self.port};")
                .replace("/tmp/chat-nginx", self.dir))
        path = os.path.join(self.dir, "nginx.conf")
        Path(path).write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", path, "-p", self.dir, "-e", "stderr"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, self.proc, what="nginx")
        return self
