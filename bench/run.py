#!/usr/bin/env python3
"""The chat benchmark: our server against two reference chats, in one run.

    .venv/bin/python bench/run.py [--quick] [--only SCENARIO[,..]] [--servers ours,minimal,node]

For each server and scenario: start the server fresh (pinned to core 0), start the load
generator (pinned to core 1; for our server also the event-loop stall probe), and read
/proc at the start and end of every measured window for CPU time and RSS. Prints one
table per scenario and a table of ratios. Every run is bounded in time and count and
kills what it started, also on errors and Ctrl-C. See bench/README.md.
"""

import argparse
import json
import logging
import math
import os
import queue
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from flame import read_stacks, render_svg, top_frames

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = REPO / ".venv" / "bin" / "python"
LOADGEN = BENCH / "loadgen"
REF_NODE = BENCH / "ref_node"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Open files for the bench and every process it starts: 20,000 clients are 20,000 sockets
# in the generator and as many in the server.
NOFILE = 65536
SERVER_CORE, GEN_CORE = "0", "1"
GEN_BOUND_PCT = 90.0
SERVING = re.compile(r"Serving on http://127\.0\.0\.1:(\d+)")

# Our server's limits, lifted for the bench. Environment rather than flags: a version of
# the server that lacks one of these settings ignores the variable instead of refusing a flag.
OURS_ENV = {
    "RATE_LIMIT": "off",         # sends per connection and per user
    # Connection cap (the eventlet pool is sized from it): 20,000 clients, the stall probe
    # and the DM pair of the storm, with room to spare.
    "MAX_CONNECTIONS": "25000",
    "CONNECT_RATE": "off",       # connections per client address: every bench client is 127.0.0.1
    # The HTTP edge's budgets per client address, for the same reason.
    "MAX_CONNECTIONS_PER_ADDRESS": "25000",
    "MAX_UNFINISHED_REQUESTS": "25000",
    "MAX_PENDING_SESSIONS_PER_ADDRESS": "25000",
    "MAX_PENDING_SESSIONS": "25000",
    # Presence as shipped (docs/protocol.md §7): above this many users online, connects
    # no longer announce themselves to everyone. Named so a run's settings are explicit.
    "PRESENCE_LIMIT": "200",
    # Budgets of Socket.IO events (docs/protocol.md §1.10): a bench client pipelines freely.
    "EVENT_RATE": "off",
    "EVENT_WINDOW": "100000",
    "ROOM_RATE": "off",
    "METRICS_TOKEN": "bench-heartbeat",  # /metrics: the heartbeat greenlet's delays, per window
}

ALL_SERVERS = ["ours", "minimal", "node"]
# Not in the default set: eventlet's pool and backlog raised; our server on PostgreSQL.
EXTRA_SERVERS = ["minimal-lifted", "ours-pg"]
SCENARIOS = ["connections", "broadcast", "dm", "rooms", "durable", "changes"]
OURS_ONLY = {"changes"}  # editMessage, react, deleteMessage: docs/protocol.md §8

log = logging.getLogger("bench")


def is_ours(kind):
    """Our server, whichever store it runs on: the same protocol, probe and heartbeat."""
    return kind in ("ours", "ours-pg")

# Sizes: (full, quick). Every scenario is bounded by these counts and durations.
SIZES = {
    "connections": ({"steps": [1000, 5000, 10000, 20000], "deadlines": [60, 90, 120, 180]},
                    {"steps": [200, 1000], "deadlines": [30, 40]}),
    "broadcast": ({"n": 1000, "fixedRate": 20, "fixedSecs": 8, "stepSecs": 4,
                   "rates": [40, 50, 60, 70, 80, 100, 130, 160, 200, 250, 320, 400, 500]},
                  {"n": 200, "fixedRate": 20, "fixedSecs": 3, "stepSecs": 2,
                   "rates": [50, 100, 200, 400]}),
    "dm": ({"pairs": 200, "secs": 10}, {"pairs": 20, "secs": 3}),
    "rooms": ({"n": 1000, "rooms": 10, "rate": 200, "secs": 10},
              {"n": 200, "rooms": 10, "rate": 50, "secs": 3}),
    "durable": ({"senders": 50, "secs": 10}, {"senders": 10, "secs": 3}),
    "changes": ({"senders": 50, "secs": 10, "deleteSecs": 5},
                {"senders": 10, "secs": 3, "deleteSecs": 2}),
}


# ---- processes ------------------------------------------------------------------------

def cpu_seconds(pid, system_only=False, main_thread=False):
    """utime + stime of a process (all its threads), from /proc/PID/stat; None if gone.
    `system_only`: stime alone, the kernel's share (on loopback a send() also pays for
    much of the receiver's TCP processing). `main_thread`: the main thread's alone (every
    server's event loop; ours' store and hashing threads are the others)."""
    path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if system_only:
        return int(fields[12]) / CLK_TCK
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def machine_busy_seconds():
    """CPU time all cores spent on anything but idle and I/O wait, from /proc/stat: with
    the bench's own processes taken out, the other work on the machine in a window."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def runqueue_wait_seconds(pid):
    """Time the process's main thread (the event loop, for every server here) spent ready
    to run but waiting for a CPU, from /proc/PID/schedstat: other load on its core."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Proc:
    """A child in its own process group, so stopping it stops everything it started."""

    live: ClassVar[list["Proc"]] = []

    def __init__(self, name, argv, core=None, cwd=None, stdout=None, stdin=None, env=None,
                 text=False):
        self.name = name
        if core is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", core, *argv]  # taskset execs: the pid is the program's
        self.popen = subprocess.Popen(
            [str(a) for a in argv], cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT
            if stdout not in (None, subprocess.PIPE) else None, stdin=stdin, env=env,
            start_new_session=True, text=text, bufsize=1 if text else -1,
            preexec_fn=child_fd_limit)
        self.pid = self.popen.pid
        Proc.live.append(self)

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace=3.0):
        if self in Proc.live:
            Proc.live.remove(self)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader (children that ignored SIGTERM).
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @classmethod
    def stop_all(cls):
        for proc in list(cls.live):
            proc.stop(grace=1.0)


def child_fd_limit():
    """In each child before it runs (Popen's preexec_fn): as many open files as the bench
    has (raise_fd_limit), whatever the child's parent shell said."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(NOFILE, hard)), hard))
    except (ValueError, OSError):
        pass


def lines_of(stream, into):
    """Forwards JSON lines of a child's stdout to a queue, from a daemon thread."""

    def pump():
        for raw in stream:
            try:
                into.put(json.loads(raw))
            except ValueError:
                into.put({"type": "text", "text": raw.rstrip()})
        into.put({"type": "eof"})

    threading.Thread(target=pump, daemon=True).start()


class Server:
    """One of the servers under test. `ours_repo`: the checkout whose chat_server ours runs
    (by default this one); `postgres`: the cluster `ours-pg` stores in, a fresh database
    per start as `ours` gets a fresh SQLite file."""

    def __init__(self, kind, workdir, dbdir=None, ours_repo=None, postgres=None):
        self.kind = kind
        self.workdir = workdir
        self.dbdir = dbdir or workdir
        self.ours_repo = Path(ours_repo or REPO)
        self.postgres = postgres
        self.database_url = None
        self.proc = None
        self.url = None
        self.logpath = None

    def argv(self):
        if is_ours(self.kind):
            return [PYTHON, "-m", "chat_server", "--host", "127.0.0.1", "--port", "0",
                    "--database-url", self.database_url]
        if self.kind == "minimal":
            return [PYTHON, BENCH / "ref_minimal.py", "--host", "127.0.0.1", "--port", "0"]
        if self.kind == "minimal-lifted":
            return [PYTHON, BENCH / "ref_minimal.py", "--host", "127.0.0.1", "--port", "0",
                    "--max-size", "20100", "--backlog", "1024"]
        if self.kind == "node":
            return ["node", REF_NODE / "server.js", "--host", "127.0.0.1", "--port", "0"]
        raise ValueError(self.kind)

    def start(self, tag):
        for leftover in self.dbdir.glob("chat.db*"):
            leftover.unlink()
        if self.kind == "ours-pg":
            self.database_url = self.postgres.create_database()
        else:
            self.database_url = f"sqlite:///{self.dbdir}/chat.db"
        self.logpath = self.workdir / f"{self.kind}-{tag}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        cwd = REPO
        if is_ours(self.kind):
            env.update(OURS_ENV)
            env.update(ours_imports(self.ours_repo))
            cwd = self.ours_repo
        with open(self.logpath, "wb") as logfile:
            self.proc = Proc(f"server {self.kind}", self.argv(), core=SERVER_CORE, cwd=cwd,
                             stdout=logfile, env=env)
        until = time.monotonic() + 30
        while time.monotonic() < until:
            match = SERVING.search(self.logpath.read_text(errors="replace"))
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return
            if not self.proc.alive():
                break
            time.sleep(0.05)
        tail = self.logpath.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.kind} did not start:\n{tail}")

    def stop(self):
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


def ours_imports(repo):
    """The environment that makes `python -m chat_server` import `repo`'s package: `-m`
    puts the working directory first on sys.path, PYTHONPATH says it again, ahead of the
    venv's editable install (which points at the main checkout)."""
    return {"PYTHONPATH": os.pathsep.join([str(repo), *filter(None, [
        os.environ.get("PYTHONPATH")])])}


def ours_code(repo):
    """Which chat_server our server imports (asked of the same interpreter, working
    directory and environment) and the commit of that checkout, for the report."""
    env = dict(os.environ, **ours_imports(repo))
    found = subprocess.run([PYTHON, "-c", "import chat_server; print(chat_server.__file__)"],
                           cwd=repo, env=env, capture_output=True, text=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--",
                            "chat_server"], capture_output=True, text=True)
    return {"chat_server": found.stdout.strip() or found.stderr.strip()[-300:],
            "commit": head.stdout.strip() or None,
            "chat_server_modified": bool(dirty.stdout.strip())}


def postgres_bin(name):
    """Debian installs PostgreSQL's programs under /usr/lib/postgresql/VERSION/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else shutil.which(name)


class Postgres:
    """A throw-away PostgreSQL cluster on loopback for `ours-pg`, with the durability of
    its defaults (fsync and synchronous_commit on): an ack then means the commit reached
    the disk, as SQLite's synchronous=FULL does for `ours`. Pinned with the server (its
    work is the store's, which SQLite does inside our process), so its CPU time is read
    over every window too: `cpu_seconds` sums every process of the cluster."""

    def __init__(self, core):
        missing = [n for n in ("initdb", "postgres", "pg_ctl", "psql") if not postgres_bin(n)]
        if missing:
            raise RuntimeError(f"ours-pg needs PostgreSQL's {', '.join(missing)}")
        self.dir = Path(tempfile.mkdtemp(prefix="chat-bench-pg-"))
        self.data = self.dir / "data"
        self.core = core
        self.port = None
        self.proc = None
        self.count = 0
        # initdb refuses to run as root: the cluster then runs as the `postgres` user.
        self.user = "postgres" if os.geteuid() == 0 else None

    def _as_owner(self, argv):
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def start(self):
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        subprocess.run(self._as_owner([postgres_bin("initdb"), "-D", self.data, "-A", "trust",
                                       "-U", "chat", "-E", "UTF8"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = Proc("postgres", self._as_owner([
            postgres_bin("postgres"), "-D", self.data, "-p", self.port, "-k", self.dir,
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100"]),
            core=self.core, stdout=subprocess.DEVNULL)
        until = time.monotonic() + 30
        while self.psql("SELECT 1").returncode != 0:
            if time.monotonic() > until or not self.proc.alive():
                self.stop()
                raise RuntimeError("postgres did not accept logins")
            time.sleep(0.2)
        settings = self.psql("SELECT name || '=' || setting FROM pg_settings WHERE name IN "
                             "('fsync', 'synchronous_commit', 'wal_sync_method', "
                             "'full_page_writes', 'shared_buffers', 'server_version')")
        self.settings = " ".join(settings.stdout.split())
        log.info("postgres on 127.0.0.1:%s (%s)", self.port, self.settings)
        return self

    def psql(self, sql):
        return subprocess.run([postgres_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port),
                               "-U", "chat", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1",
                               "-c", sql], capture_output=True, text=True)

    def create_database(self):
        self.count += 1
        name = f"chat_bench_{self.count}"
        done = self.psql(f"CREATE DATABASE {name}")
        if done.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE failed: {done.stderr.strip()}")
        return f"postgresql://chat@127.0.0.1:{self.port}/{name}"

    def cpu_seconds(self):
        """utime + stime of every process of the cluster (the postmaster, its background
        workers, one backend per pooled connection), and cutime + cstime: the time of
        the backends that ended (a pool's overflow connections come and go), which the
        postmaster collects when it reaps them. Found by parentage: each child of the
        postmaster makes itself a process group leader (setsid), so the group of the
        process we started does not hold them."""
        parent, ticks = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                pid = int(stat.parent.name)
            except (OSError, IndexError, ValueError):
                continue
            parent[pid] = int(fields[1])  # field 4 of stat(5), the parent's pid
            ticks[pid] = sum(int(x) for x in fields[11:15])  # fields 14-17 of stat(5)
        total = 0
        for pid, spent in ticks.items():
            up = pid
            while up > 1 and up != self.proc.pid:
                up = parent.get(up, 0)
            if up == self.proc.pid:
                total += spent
        return total / CLK_TCK

    def stop(self):
        if self.proc is None:
            return
        subprocess.run(self._as_owner([postgres_bin("pg_ctl"), "stop", "-D", self.data,
                                       "-m", "fast", "-w", "-t", "20"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.stop()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class Probe:
    """The event-loop stall probe (our server only): a client whose ack round trips, one
    every 10 ms, show how long the server's event loop goes without answering."""

    def __init__(self, url, event):
        self.q = queue.Queue()
        self.proc = Proc("probe", ["node", LOADGEN / "probe.js", "--url", url,
                                   "--event", event, "--interval", "10"],
                         core=GEN_CORE, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                         text=True)
        lines_of(self.proc.popen.stdout, self.q)
        msg = self._wait(lambda m: m.get("type") in ("probe-ready", "probe-error", "eof"), 40)
        if not msg or msg.get("type") != "probe-ready":
            self.stop()
            raise RuntimeError(f"stall probe did not connect: {msg}")

    def _wait(self, pred, timeout):
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            try:
                msg = self.q.get(timeout=max(0.01, until - time.monotonic()))
            except queue.Empty:
                return None
            if pred(msg):
                return msg
        return None

    def send(self, line):
        try:
            self.proc.popen.stdin.write(line + "\n")
            self.proc.popen.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass

    def result(self, phase):
        self.send(f"end {phase}")
        return self._wait(lambda m: (m.get("type") == "probe" and m.get("phase") == phase)
                          or m.get("type") == "eof", 5)

    def stop(self):
        self.send("quit")
        self.proc.stop(grace=1.0)


class Receivers(Probe):
    """A second generator process (loadgen/receivers.js, on the generator's core) with M
    more clients that only count the broadcast frames they get, per measured window."""

    def __init__(self, url, kind, n):
        self.q = queue.Queue()
        self.proc = Proc("receivers", ["node", LOADGEN / "receivers.js", "--url", url,
                                       "--server", kind, "--n", str(n)],
                         core=GEN_CORE, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                         text=True)
        lines_of(self.proc.popen.stdout, self.q)
        msg = self._wait(lambda m: m.get("type") in ("receivers-ready", "receivers-error",
                                                     "eof"), 120)
        if not msg or msg.get("type") != "receivers-ready":
            self.stop()
            raise RuntimeError(f"extra receivers did not connect: {msg}")
        self.clients = msg.get("clients")

    def result(self, phase):
        self.send(f"end {phase}")
        return self._wait(lambda m: (m.get("type") == "receivers" and m.get("phase") == phase)
                          or m.get("type") == "eof", 5)


# ---- one scenario run against one server ----------------------------------------------

def snapshot(server, gen, probe, receivers=None):
    # RSS first: the heartbeat's /metrics request below is served by the server too.
    return {"rss_kb": rss_kb(server.proc.pid),
            "t": time.monotonic(), "srv": cpu_seconds(server.proc.pid),
            "srv_sys": cpu_seconds(server.proc.pid, system_only=True),
            "srv_main": cpu_seconds(server.proc.pid, main_thread=True),
            "srv_wait": runqueue_wait_seconds(server.proc.pid),
            "gen": cpu_seconds(gen.pid),
            "probe": cpu_seconds(probe.proc.pid) if probe else 0.0,
            "receivers": cpu_seconds(receivers.proc.pid) if receivers else 0.0,
            "store": server.postgres.cpu_seconds() if server.kind == "ours-pg" else None,
            "machine": machine_busy_seconds(),
            "heartbeat": heartbeat(server)}


def heartbeat(server):
    """Our server's heartbeat greenlet (it wakes every 50 ms): from /metrics, how many of
    its wake-ups so far were at most `le` seconds late, per bucket bound."""
    if not is_ours(server.kind):
        return None
    request = urllib.request.Request(server.url + "/metrics", headers={
        "Authorization": "Bearer " + OURS_ENV["METRICS_TOKEN"]})
    try:
        text = urllib.request.urlopen(request, timeout=5).read().decode()
    except OSError:
        return None
    from prometheus_client.parser import text_string_to_metric_families  # the project's venv

    counts = {float(sample.labels["le"]): sample.value
              for family in text_string_to_metric_families(text)
              if family.name == "chat_event_loop_delay_seconds"
              for sample in family.samples if sample.name.endswith("_bucket")}
    return counts or None


def heartbeat_max_ms(before, after):
    """The bucket bound (ms) that the latest wake-up of the window stayed within."""
    if not before or not after:
        return None
    total = after[math.inf] - before[math.inf]
    if total <= 0:
        return None
    for bound in sorted(after):
        if after[bound] - before.get(bound, 0) >= total:
            return math.inf if bound == math.inf else round(bound * 1000)
    return None


def pct(after, before, key, dt):
    if after.get(key) is None or before.get(key) is None or dt <= 0:
        return None
    return round(100.0 * (after[key] - before[key]) / dt, 1)


def other_pct(after, before, dt):
    """CPU% (100 = one core) of everything on the machine but the server, its database,
    the generator, the probe and the extra receivers, over the window: other work that
    competed for the two cores (a profiler, when --profile, counts here)."""
    keys = ("machine", "srv", "gen", "probe", "receivers", "store")
    if dt <= 0 or any(after.get(k) is None or before.get(k) is None
                      for k in keys if k != "store"):
        return None
    ours = sum((after[k] or 0) - (before[k] or 0) for k in keys[1:])
    return round(max(0.0, 100.0 * ((after["machine"] - before["machine"]) - ours) / dt), 1)


def spent(after, before, key):
    """CPU seconds between two snapshots (None if either is missing)."""
    if after.get(key) is None or before.get(key) is None:
        return None
    return round(after[key] - before[key], 3)


def cpu_us_per(phase, count, key="srv_cpu_s"):
    """CPU microseconds per unit of work in one measured window: the process's utime +
    stime (all threads, /proc/PID/stat) over the window, divided by the work done in it.
    Other load on the core changes this less than it changes the throughput."""
    cpu = phase.get(key)
    if cpu is None and key == "srv_cpu_s" and phase.get("srv_cpu") is not None:
        cpu = phase["srv_cpu"] * (phase.get("wall_s") or 0) / 100  # runs before srv_cpu_s
    if not cpu or not count:
        return None
    return round(cpu * 1e6 / count)


def run_generator(server, scenario, params, probe, deadline, workdir, on_phase=None,
                  receivers=None):
    """Runs loadgen.js once; returns {phases: {name: {...}}, summaries: [...], traffic}.

    `on_phase(state, name)` is called when a measured window opens ("start") and closes
    ("end"): to profile only what runs after the clients are connected, or one window.
    `receivers` (broadcast only): a second generator process whose clients' deliveries
    are added to each window's."""
    argv = ["node", LOADGEN / "loadgen.js", "--url", server.url, "--server",
            "ours" if is_ours(server.kind) else server.kind, "--scenario", scenario,
            "--params", json.dumps(params), "--deadline", str(deadline)]
    gen = Proc("loadgen", argv, core=GEN_CORE, stdout=subprocess.PIPE, text=True)
    q = queue.Queue()
    lines_of(gen.popen.stdout, q)
    out = {"phases": {}, "order": [], "summaries": [], "traffic": None, "errors": []}
    opened = {}
    hard_stop = time.monotonic() + deadline + 45
    try:
        while True:
            left = hard_stop - time.monotonic()
            if left <= 0:
                out["errors"].append("generator overran its deadline; killed")
                break
            try:
                msg = q.get(timeout=min(left, 5))
            except queue.Empty:
                if not gen.alive() and q.empty():
                    break
                continue
            kind = msg.get("type")
            if kind == "phase" and msg["state"] == "start":
                if on_phase is not None:
                    on_phase("start", msg["name"])
                opened[msg["name"]] = snapshot(server, gen, probe, receivers)
                if probe:
                    probe.send(f"start {msg['name']}")
                if receivers:
                    receivers.send(f"start {msg['name']}")
            elif kind == "phase" and msg["state"] == "end":
                name = msg["name"]
                after = snapshot(server, gen, probe, receivers)
                if on_phase is not None:  # after the snapshot: py-spy takes a while to stop
                    on_phase("end", name)
                before = opened.pop(name, after)
                dt = after["t"] - before["t"]
                gen_pct = pct(after, before, "gen", dt)
                probe_pct = pct(after, before, "probe", dt) or 0.0
                receivers_pct = pct(after, before, "receivers", dt) or 0.0
                phase = dict(msg.get("metrics") or {})
                phase.update({
                    "wall_s": round(dt, 3),
                    "srv_cpu": pct(after, before, "srv", dt),
                    "srv_cpu_s": spent(after, before, "srv"),
                    "srv_sys_s": spent(after, before, "srv_sys"),
                    "srv_main_s": spent(after, before, "srv_main"),
                    "store_cpu": pct(after, before, "store", dt),
                    "store_cpu_s": spent(after, before, "store"),
                    "other_cpu": other_pct(after, before, dt),
                    "srv_wait": pct(after, before, "srv_wait", dt),
                    "gen_cpu": None if gen_pct is None
                    else round(gen_pct + probe_pct + receivers_pct, 1),
                    "loadgen_cpu": gen_pct,
                    "probe_cpu": probe_pct if probe else None,
                    "receivers_cpu": receivers_pct if receivers else None,
                    "rss_kb": after["rss_kb"],
                    "server_alive": server.proc.alive(),
                })
                phase["heartbeat_max_ms"] = heartbeat_max_ms(before.get("heartbeat"),
                                                              after.get("heartbeat"))
                if receivers:
                    extra = receivers.result(name) or {}
                    span = max(phase.get("secs") or 0, phase.get("span_s") or 0)
                    phase["extra_clients"] = extra.get("clients")
                    phase["extra_replies"] = extra.get("replies")
                    if span and extra.get("replies") is not None \
                            and phase.get("deliveries_per_s") is not None:
                        phase["extra_deliveries_per_s"] = round(extra["replies"] / span)
                        phase["total_deliveries_per_s"] = (phase["deliveries_per_s"]
                                                           + phase["extra_deliveries_per_s"])
                if probe:
                    stall = probe.result(name) or {}
                    phase["stall_p99_ms"] = stall.get("p99_ms")
                    phase["stall_max_ms"] = stall.get("max_ms")
                    phase["stall_count"] = stall.get("count")
                out["phases"][name] = phase
                out["order"].append(name)
            elif kind == "summary":
                out["summaries"].append(msg)
            elif kind == "log":
                log.info("    %s %s: %s", server.kind, scenario, msg["msg"])
            elif kind == "error":
                out["errors"].append(msg.get("msg"))
                log.error("    generator error: %s", msg.get("msg"))
            elif kind == "done":
                out["traffic"] = msg.get("traffic")
                if msg.get("aborted"):
                    out["errors"].append("generator hit its deadline")
            elif kind == "eof":
                break
            elif kind == "text":
                log.info("    loadgen: %s", msg["text"])
    finally:
        gen.stop(grace=2.0)
    return out


class Profiler:
    """py-spy on our server for one generator run: only the thread holding the GIL is
    sampled, so the stacks show where the event loop's CPU goes. `threads`: every thread
    that is running instead (the store's thread too, and time in system calls and in
    SQLite, which run without the GIL)."""

    def __init__(self, pid, outfile, threads=False):
        self.outfile = outfile
        spy = Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            spy = shutil.which("py-spy")
        if not spy:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install -r "
                               "bench/requirements.txt")
        which = ["--threads"] if threads else ["--gil"]
        self.proc = Proc("py-spy", [spy, "record", "--pid", pid, *which, "--nonblocking",
                                    "--rate", "100", "--format", "raw", "--output", outfile],
                         core=GEN_CORE, stdout=subprocess.DEVNULL)
        self.started = time.monotonic()
        self.seconds = None

    def stop(self):
        if self.seconds is not None:
            return
        self.seconds = time.monotonic() - self.started
        try:
            os.killpg(self.proc.pid, signal.SIGINT)  # py-spy writes its file on Ctrl-C
            self.proc.popen.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.proc.stop(grace=1.0)


def write_profile(raw, seconds, threads, title):
    """Beside py-spy's raw stacks RAW.txt: the flame graph RAW.svg and the top-frames
    summary RAW-top.txt (bench/flame.py). Returns the summary."""
    raw = Path(raw)
    summary = top_frames(read_stacks(raw), seconds, threads)
    raw.with_name(raw.stem + "-top.txt").write_text(summary + "\n")
    stacks = read_stacks(raw, lines=False)
    if stacks:
        raw.with_suffix(".svg").write_text(render_svg(stacks, title))
    return summary


def run_scenario(kind, scenario, sizes, opts):
    """All the generator runs of one scenario on one server, each on a fresh server."""
    if scenario in OURS_ONLY and not is_ours(kind):
        log.info("  %s: %s is ours only, skipped", kind, scenario)
        return []
    server = Server(kind, opts.workdir, opts.dbdir, opts.ours_repo, opts.postgres)
    results = []

    def one(tag, params, deadline, gen_scenario):
        server.start(tag)
        probe = None
        spies = {}  # measured window -> its own py-spy, started and stopped with it

        def on_phase(state, name):
            if not opts.profile or not is_ours(kind):
                return
            if opts.profile_phase not in (None, name):
                return
            if state == "start":
                stem = f"{kind}-{name}" if name.startswith(tag) else f"{kind}-{tag}-{name}"
                spies[name] = Profiler(server.proc.pid, Path(opts.profile) / f"{stem}.txt",
                                       opts.profile_threads)
            elif name in spies:
                spies[name].stop()

        receivers = None
        try:
            if is_ours(kind):
                probe = Probe(server.url, opts.probe_event)
            if gen_scenario == "broadcast" and opts.extra_receivers:
                receivers = Receivers(server.url, "ours" if is_ours(kind) else kind,
                                      opts.extra_receivers)
            time.sleep(1.0)
            base_rss = rss_kb(server.proc.pid)
            out = run_generator(server, gen_scenario, params, probe, deadline, opts.workdir,
                                on_phase=on_phase, receivers=receivers)
            out["base_rss_kb"] = base_rss
            out["server_log"] = str(server.logpath)
            out["profiles"] = {}
            for name, profiler in spies.items():
                profiler.stop()
                title = (f"{kind}, {gen_scenario} window '{name}': py-spy "
                         f"{'every running thread' if opts.profile_threads else 'GIL holder'}"
                         f", {profiler.seconds:.0f} s, {datetime.now():%Y-%m-%d %H:%M}")
                summary = write_profile(profiler.outfile, profiler.seconds,
                                        opts.profile_threads, title)
                out["profiles"][name] = str(profiler.outfile)
                log.info("  profile of %s during %s (%s, .svg, -top.txt):\n%s", kind, name,
                         profiler.outfile, summary)
            return out
        finally:
            for profiler in spies.values():
                profiler.stop()
            if probe:
                probe.stop()
            if receivers:
                receivers.stop()
            server.stop()

    if scenario == "connections":
        skip_reason = None
        for n, dl in zip(sizes["steps"], sizes["deadlines"], strict=False):
            if skip_reason:
                results.append({"n": n, "skipped": skip_reason})
                continue
            log.info("  %s: connections %d", kind, n)
            params = {"n": n, "concurrency": 200, "connectDeadline": dl, "holdSecs": 3,
                      "connectTimeoutMs": 20000, "stallSecs": 25, "pairIntervalMs": 20}
            out = one(f"conn{n}", params, dl + 30, "connections")
            out["n"] = n
            results.append(out)
            conn = out["phases"].get("connect", {})
            if conn.get("connected", 0) < n:
                skip_reason = f"{conn.get('connected', 0)}/{n} connected at the previous step"
    else:
        params = dict(sizes)
        deadline = {"broadcast": 240, "dm": 150, "rooms": 200, "durable": 180,
                    "changes": 240}[scenario]
        log.info("  %s: %s %s", kind, scenario, json.dumps(params))
        results.append(one(scenario, params, deadline, scenario))
    return results


# ---- reporting --------------------------------------------------------------------------

def fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(title, headers, rows):
    lines = [f"\n### {title}\n"]
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))
                 + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))
                     + " |")
    return "\n".join(lines)


def flags(phase):
    out = []
    if phase.get("gen_cpu") is not None and phase["gen_cpu"] > GEN_BOUND_PCT:
        out.append("GENERATOR-BOUND")
    if phase.get("server_alive") is False:
        out.append("server died")
    return " ".join(out)


def stall(phase):
    if phase.get("stall_max_ms") is None:
        return "-"
    text = f"{fmt(phase.get('stall_p99_ms'))}/{fmt(phase.get('stall_max_ms'))}"
    beat = phase.get("heartbeat_max_ms")
    if beat is not None:
        text += " hb>2500" if beat == math.inf else f" hb<={beat}"
    return text


def with_extra(phase):
    """Deliveries/s to the second generator process's clients, and the total."""
    if phase.get("total_deliveries_per_s") is None:
        return "-"
    return (f"{fmt(phase['extra_deliveries_per_s'])} to {fmt(phase.get('extra_clients'))} "
            f"= {fmt(phase['total_deliveries_per_s'])}")


def pair(phase):
    """The DM pair's round trips during a connection storm: p50/p99/max (+ lost)."""
    if phase.get("pair_rtt_p50_ms") is None and not phase.get("pair_lost"):
        return "-"
    text = (f"{fmt(phase.get('pair_rtt_p50_ms'))}/{fmt(phase.get('pair_rtt_p99_ms'))}/"
            f"{fmt(phase.get('pair_rtt_max_ms'))}")
    if phase.get("pair_lost"):
        text += f" lost {phase['pair_lost']}"
    return text


def mb(kb):
    return None if kb is None else round(kb / 1024, 1)


def report(results, servers):
    """Builds the tables (markdown) and the numbers the ratio table compares."""
    out = []
    key = {s: {} for s in servers}  # key[server][metric] = value, for the ratio table
    common = ["RSS MB", "srv CPU%", "srv wait%", "gen CPU%", "other CPU%",
              "stall p99/max ms, hb max", "flags"]

    def tail(p):
        return [mb(p.get("rss_kb")), p.get("srv_cpu"), p.get("srv_wait"), p.get("gen_cpu"),
                p.get("other_cpu"), stall(p), flags(p)]

    def fan_out_cpu(p):
        """Server CPU us per delivery (the second generator's included) and per sent message."""
        delivered = (p.get("received") or 0) + (p.get("extra_replies") or 0)
        return [cpu_us_per(p, delivered), cpu_us_per(p, p.get("sent"))]

    rows = []
    for s in servers:
        for step in results.get(s, {}).get("connections", []):
            if step.get("skipped"):
                rows.append([s, step["n"], "skipped", "", "", "", "", "", "", "", "", "", "",
                             "", "", "", "", step["skipped"]])
                continue
            c = step["phases"].get("connect", {})
            h = step["phases"].get("hold", {})
            per = None
            if h.get("rss_kb") and step.get("base_rss_kb") and h.get("connected"):
                per = round((h["rss_kb"] - step["base_rss_kb"]) / h["connected"], 1)
            note = ""
            if c.get("stalled"):
                note = "stopped: none connected in 25 s"
            elif c.get("deadline_hit"):
                note = "deadline hit"
            emfile = sum(v for k, v in (c.get("errors") or {}).items() if "EMFILE" in k)
            if emfile:
                note = (note + "; " if note else "") + \
                    f"{emfile} not opened: the generator's file limit (RLIMIT_NOFILE)"
            rows.append([s, step["n"], c.get("connected"), c.get("failed"), c.get("elapsed_s"),
                         c.get("connect_p50_ms"), c.get("connect_p99_ms"), mb(h.get("rss_kb")),
                         per, c.get("srv_cpu"), cpu_us_per(c, c.get("connected")),
                         c.get("srv_wait"), c.get("gen_cpu"), c.get("other_cpu"), pair(c),
                         stall(c), flags(c), note])
            if c.get("connected") == step["n"]:
                key[s]["max_clients"] = step["n"]
                key[s][f"connect_s_{step['n']}"] = c.get("elapsed_s")
                key[s][f"kb_per_conn_{step['n']}"] = per
                key[s][f"pair_p99_{step['n']}"] = c.get("pair_rtt_p99_ms")
                beat = c.get("heartbeat_max_ms")
                key[s][f"hb_max_{step['n']}"] = None if beat == math.inf else beat
    if rows:
        out.append(table("Connections (time to connect N clients; RSS after all connected; "
                         "srv CPU us/conn: the server's CPU time, all threads, over the "
                         "connect window per client connected)",
                         ["server", "N", "connected", "failed", "time s", "conn p50 ms",
                          "conn p99 ms", "RSS MB", "KB/conn", "srv CPU%", "srv CPU us/conn",
                          "srv wait%", "gen CPU%", "other CPU%", "DM pair RTT p50/p99/max ms",
                          "stall p99/max ms, hb max", "flags", "note"], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("broadcast", []):
            ph = run["phases"]
            summary = next((x for x in run["summaries"] if x.get("name") == "saturation"), {})
            best = summary.get("best")
            if "fixed" in ph:
                p = ph["fixed"]
                rows.append([s, f"fixed {p.get('rate')} msg/s to {p.get('clients')}",
                             p.get("deliveries_per_s"), with_extra(p),
                             p.get("p50_ms"), p.get("p99_ms"), p.get("lost"), *fan_out_cpu(p),
                             *tail(p)])
                key[s]["bcast_p50_20"] = p.get("p50_ms")
                key[s]["bcast_p99_20"] = p.get("p99_ms")
            steps = [n for n in run["order"] if n.startswith("rate-")]
            best_name = best.get("phase") if best else None
            if best_name in ph:
                p = ph[best_name]
                if best_name != "fixed":
                    rows.append([s, f"best: {p.get('rate')} msg/s to {p.get('clients')}",
                                 p.get("deliveries_per_s"), with_extra(p), p.get("p50_ms"),
                                 p.get("p99_ms"), p.get("lost"), *fan_out_cpu(p), *tail(p)])
                key[s]["bcast_deliveries"] = p.get("deliveries_per_s")
            else:
                key[s]["bcast_deliveries"] = None
            if summary.get("below_fixed"):  # stepped down from the fixed rate
                failing = [n for n in steps if n != best_name]
                over = failing[-1] if failing else None  # the lowest rate that still failed
            else:
                over = steps[-1] if steps and steps[-1] != best_name else None
            p = ph.get(over) if over else None
            if p is not None:
                rows.append([s, f"over: {p.get('rate')} msg/s to {p.get('clients')}",
                             p.get("deliveries_per_s"), with_extra(p),
                             p.get("p50_ms"), p.get("p99_ms"), p.get("lost"), *fan_out_cpu(p),
                             *tail(p)])
    if rows:
        out.append(table("Broadcast fan-out (deliveries/s; latency send -> each receiver; "
                         "srv CPU: the server's CPU time, all threads, over the window per "
                         "delivery and per message sent)",
                         ["server", "step", "deliveries/s", "+ extra receivers = total/s",
                          "p50 ms", "p99 ms", "lost", "srv CPU us/delivery", "srv CPU us/msg",
                          *common], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("dm", []):
            p = run["phases"].get("dm")
            if not p:
                continue
            # Each round trip is two sendMessage legs; legs delivered after the stop (the
            # drain) are the window's work too, so count the legs rather than round_trips.
            cpu = cpu_us_per(p, (p.get("received") or 0) / 2)
            rows.append([s, p.get("pairs"), p.get("round_trips_per_s"), p.get("rtt_p50_ms"),
                         p.get("rtt_p99_ms"), p.get("p50_ms"), p.get("lost"), cpu, *tail(p)])
            key[s]["dm_rts"] = p.get("round_trips_per_s")
            key[s]["dm_cpu"] = cpu
            key[s]["dm_rtt_p50"] = p.get("rtt_p50_ms")
            key[s]["dm_rtt_p99"] = p.get("rtt_p99_ms")
    if rows:
        out.append(table("Direct messages (pairs ping-ponging; srv CPU us/round trip: the "
                         "server's CPU time, all threads, over the window per round trip, "
                         "two sendMessage legs, counted as legs delivered / 2)",
                         ["server", "pairs", "round trips/s", "RTT p50 ms", "RTT p99 ms",
                          "one-way p50 ms", "lost", "srv CPU us/round trip", *common], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("rooms", []):
            p = run["phases"].get("rooms")
            if not p:
                continue
            rows.append([s, f"{p.get('clients')} in {p.get('rooms')}", p.get("rate"),
                         p.get("deliveries_per_s"), p.get("p50_ms"), p.get("p99_ms"),
                         p.get("lost"), *fan_out_cpu(p), *tail(p)])
            key[s]["rooms_p50"] = p.get("p50_ms")
            key[s]["rooms_p99"] = p.get("p99_ms")
            key[s]["rooms_lost"] = p.get("lost")
    if rows:
        out.append(table("Rooms (fixed total send rate; srv CPU: the server's CPU time, all "
                         "threads, over the window per delivery and per message sent)",
                         ["server", "clients", "msg/s", "deliveries/s", "p50 ms", "p99 ms",
                          "lost", "srv CPU us/delivery", "srv CPU us/msg", *common], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("durable", []):
            for name, what, k in (("durable", "message (broadcast)", "durable_acked"),
                                  ("durable-self", "sendMessage to self", "durable_self")):
                p = run["phases"].get(name)
                if not p:
                    continue
                cpu = cpu_us_per(p, p.get("acked"))
                store = cpu_us_per(p, p.get("acked"), "store_cpu_s")
                rows.append([s, what, p.get("senders"), p.get("acked_per_s"),
                             p.get("ack_p50_ms"), p.get("ack_p99_ms"),
                             (p.get("refused") or 0) + (p.get("ack_timeouts") or 0),
                             p.get("deliveries_per_s"), cpu,
                             "-" if store is None else f"{store:,} ({fmt(p.get('store_cpu'))}%)",
                             *tail(p)])
                key[s][k] = p.get("acked_per_s")
                key[s][k + "_cpu"] = cpu
    if rows:
        out.append(table("Acked sends (each sender waits for its ack; ours commits every "
                         "message to SQLite first, ours-pg to PostgreSQL, the references store "
                         "nothing; srv CPU us/ack: the server's CPU time, all threads, over "
                         "the window per acked send; PG CPU: PostgreSQL's processes' CPU time "
                         "per acked send, and as a share of a core)",
                         ["server", "event", "senders", "acked/s", "ack p50 ms", "ack p99 ms",
                          "failed", "deliveries/s", "srv CPU us/ack", "PG CPU us/ack (%)",
                          *common], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("changes", []):
            for where, prefix in (("lobby (each to all)", "changes"),
                                  ("DM to oneself", "changes-self")):
                ph = run["phases"]
                sends = [ph[f"{prefix}-{w}"]["acked_per_s"] for w in ("send", "send2")
                         if f"{prefix}-{w}" in ph]
                base = sum(sends) / len(sends) if sends else None
                for w in ("send", "edit", "react", "edit-old", "send2", "delete"):
                    p = ph.get(f"{prefix}-{w}")
                    if not p:
                        continue
                    ratio = None if not base or w.startswith("send") \
                        else f"{p['acked_per_s'] / base:.2f}"
                    event = p.get("event") + (" (oldest first)" if w == "edit-old" else "")
                    cpu = cpu_us_per(p, p.get("acked"))
                    rows.append([s, where, event, p.get("acked_per_s"), ratio, cpu,
                                 p.get("ack_p50_ms"), p.get("ack_p99_ms"),
                                 (p.get("refused") or 0) + (p.get("ack_timeouts") or 0),
                                 f"{fmt(p.get('delivered'))}/{fmt(p.get('expected'))}",
                                 p.get("deliveries_per_s"), *tail(p)])
                    if not w.startswith("send") and ratio is not None:
                        key[s][f"{prefix}_{w}_ratio"] = float(ratio)
                key[s][f"{prefix}_sends"] = base
    if rows:
        out.append(table("Changes against sends (the same clients on the same server, one "
                         "request in flight each; ratio: acked/s over the mean of the two "
                         "send windows; srv CPU us/ack: the server's CPU time, all threads, "
                         "over the window per acked request, which other load on core 0 "
                         "changes less)",
                         ["server", "where", "event", "acked/s", "ratio", "srv CPU us/ack",
                          "ack p50 ms",
                          "ack p99 ms", "failed", "delivered/expected", "deliveries/s",
                          *common], rows))

    metrics = [
        ("largest N all connected", "max_clients", True),
        ("time to connect 1,000 (s)", "connect_s_1000", False),
        ("RSS per connection at 1,000 (KB)", "kb_per_conn_1000", False),
        ("RSS per connection at 10,000 (KB)", "kb_per_conn_10000", False),
        ("time to connect 10,000 (s)", "connect_s_10000", False),
        ("DM pair RTT p99 during the 10,000 storm (ms)", "pair_p99_10000", False),
        ("heartbeat: latest wake-up in the 10,000 storm (ms, bucket)", "hb_max_10000", False),
        ("time to connect 20,000 (s)", "connect_s_20000", False),
        ("RSS per connection at 20,000 (KB)", "kb_per_conn_20000", False),
        ("broadcast: best deliveries/s", "bcast_deliveries", True),
        ("broadcast p99 at 20 msg/s (ms)", "bcast_p99_20", False),
        ("DM round trips/s", "dm_rts", True),
        ("DM RTT p50 (ms)", "dm_rtt_p50", False),
        ("DM: server CPU us per round trip", "dm_cpu", False),
        ("rooms p99 (ms)", "rooms_p99", False),
        ("rooms lost", "rooms_lost", False),
        ("acked sends/s, message (broadcast)", "durable_acked", True),
        ("acked sends/s, sendMessage to self", "durable_self", True),
        ("acked sends: server CPU us per send, message", "durable_acked_cpu", False),
        ("acked sends: server CPU us per send, to self", "durable_self_cpu", False),
    ]
    refs = [s for s in servers if s != "ours"]
    if "ours" in servers and refs:
        rows = []
        for label, k, higher_better in metrics:
            vals = [key[s].get(k) for s in servers]
            if all(v is None for v in vals):
                continue
            row = [label + (" (higher is better)" if higher_better else ""), *vals]
            for r in refs:
                a, b = key["ours"].get(k), key[r].get(k)
                row.append(None if a is None or not b else f"{a / b:.2f}x")
            rows.append(row)
        out.append(table("Ratios", ["metric", *servers, *[f"ours/{r}" for r in refs]], rows))
    return "\n".join(out), key


# ---- main -------------------------------------------------------------------------------

def raise_fd_limit():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (NOFILE, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ensure_node_deps():
    for folder in (LOADGEN, REF_NODE):
        if not (folder / "node_modules").is_dir():
            log.info("installing %s's npm packages (npm ci)", folder.name)
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, check=True,
                           stdout=subprocess.DEVNULL)


def machine():
    info = {"nproc": os.cpu_count(), "uptime": subprocess.run(
        ["uptime"], capture_output=True, text=True).stdout.strip()}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"scenarios, comma separated ({','.join(SCENARIOS)})")
    parser.add_argument("--servers", default=",".join(ALL_SERVERS),
                        help=f"servers, comma separated ({','.join(ALL_SERVERS + EXTRA_SERVERS)})")
    parser.add_argument("--probe-event", default="benchPing",
                        help="event the stall probe sends to our server: the default, an "
                             "event the server does not know, is answered at once with an "
                             "error ack; listUsers costs O(users) per call (see README)")
    parser.add_argument("--json", help="also write every number to this JSON file")
    parser.add_argument("--db-dir", help="directory for our server's SQLite file (default: a "
                                         "temporary directory under $TMPDIR)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record our server with py-spy during each measured window; "
                             "raw stacks (.txt), a flame graph (.svg) and a top-frames "
                             "summary (-top.txt) per window go to DIR (numbers taken while "
                             "profiling are perturbed: do not report them)")
    parser.add_argument("--profile-phase", metavar="NAME",
                        help="with --profile: record only the measured window NAME (for "
                             "example changes-edit) instead of every window")
    parser.add_argument("--profile-threads", action="store_true",
                        help="with --profile: sample every running thread (store, system "
                             "calls, SQLite) instead of only the one holding the GIL")
    parser.add_argument("--ours-repo", metavar="DIR", type=Path, default=REPO,
                        help="run the chat_server of this checkout (a git worktree of another "
                             "commit, say) instead of this one's; the bench itself and the "
                             "venv stay this checkout's")
    parser.add_argument("--pg-cores", metavar="LIST",
                        help="taskset cores for PostgreSQL (ours-pg; default: the servers' "
                             "cores, as SQLite works inside our server's process)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--server-cores", default="0", metavar="LIST",
                        help="taskset cores for the servers (default 0; e.g. 0,1 lets a "
                             "server's helper threads, such as V8's garbage collector, run "
                             "beside the generator's core)")
    parser.add_argument("--extra-receivers", type=int, default=0, metavar="M",
                        help="broadcast: M more clients in a second generator process "
                             "(receivers.js); each window then reports the total deliveries/s "
                             "of both processes, to show whether one generator limits it")
    parser.add_argument("--set", action="append", default=[], metavar="SCENARIO.KEY=JSON",
                        help="override one size of a scenario, e.g. broadcast.n=10000 "
                             "broadcast.fixedRate=5 'broadcast.rates=[]' (a broadcast to "
                             "10,000 at 5 msg/s, issue 13); repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")

    scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s}")
    for s in servers:
        if s not in ALL_SERVERS + EXTRA_SERVERS:
            parser.error(f"unknown server {s}")
    if any(is_ours(s) for s in servers) and not PYTHON.exists():
        parser.error(f"{PYTHON} is missing: run `make run` or create the venv first")
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        log.warning("fewer than 2 cores or no taskset: server and generator are not pinned "
                    "apart, numbers mean less")

    overrides: dict[str, dict] = {}
    for item in args.set:
        path, sep, value = item.partition("=")
        scenario, dot, key = path.partition(".")
        if not sep or not dot or scenario not in SCENARIOS:
            parser.error(f"--set {item}: want SCENARIO.KEY=JSON")
        try:
            overrides.setdefault(scenario, {})[key] = json.loads(value)
        except ValueError:
            parser.error(f"--set {item}: {value!r} is not JSON")

    global SERVER_CORE
    SERVER_CORE = args.server_cores
    nofile = raise_fd_limit()
    ensure_node_deps()
    info = machine()
    info["nofile"] = nofile
    info["started"] = datetime.now().isoformat(timespec="seconds")
    if overrides:
        info["sizes_set"] = overrides
    log.info("machine: %s", info)
    if any(is_ours(s) for s in servers):
        info["ours_code"] = ours_code(args.ours_repo.resolve())
        log.info("our server runs %s", info["ours_code"])
        if not info["ours_code"]["chat_server"].startswith(str(args.ours_repo.resolve())):
            parser.error(f"chat_server would not come from {args.ours_repo}: {info['ours_code']}")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    args.workdir = workdir
    args.dbdir = Path(tempfile.mkdtemp(prefix="chat-bench-db-", dir=args.db_dir)) \
        if args.db_dir else workdir
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    results = {s: {} for s in servers}
    started = time.monotonic()
    args.postgres = None
    try:
        if "ours-pg" in servers:
            args.postgres = Postgres(args.pg_cores or SERVER_CORE).start()
            info["postgres"] = args.postgres.settings
        for scenario in scenarios:
            log.info("scenario %s", scenario)
            sizes = {**SIZES[scenario][1 if args.quick else 0], **overrides.get(scenario, {})}
            for kind in servers:
                try:
                    results[kind][scenario] = run_scenario(kind, scenario, sizes, args)
                except RuntimeError as error:
                    log.error("  %s %s failed: %s", kind, scenario, error)
                    results[kind][scenario] = []
    except KeyboardInterrupt:
        log.warning("interrupted: stopping everything")
    finally:
        if args.postgres:
            args.postgres.stop()
        Proc.stop_all()
        info["finished"] = datetime.now().isoformat(timespec="seconds")
        info["uptime_after"] = subprocess.run(["uptime"], capture_output=True,
                                              text=True).stdout.strip()
        info["duration_s"] = round(time.monotonic() - started)
        if args.dbdir != workdir:
            shutil.rmtree(args.dbdir, ignore_errors=True)
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log.info("server logs kept in %s", workdir)

    text, key = report(results, servers)
    print(f"\nMachine: {info.get('cpu')}, {info['nproc']} cores; load before: "
          f"{info['uptime']}; after: {info['uptime_after']}; took {info['duration_s']} s")
    print("Server pinned to core 0, load generator (and stall probe) to core 1. "
          f"GENERATOR-BOUND: generator core above {GEN_BOUND_PCT:.0f}%. srv wait%: time the "
          "server's main thread was ready but waited for core 0 (other load on the machine).")
    if info.get("ours_code"):
        code = info["ours_code"]
        print(f"Our server: {code['chat_server']} (commit {code['commit']}"
              f"{', chat_server/ modified' if code['chat_server_modified'] else ''})"
              + (f"; PostgreSQL: {info['postgres']}" if info.get("postgres") else ""))
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "quick": args.quick,
                                               "results": results, "key": key}, indent=1))
        log.info("numbers written to %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
