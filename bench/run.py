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
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import ClassVar

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
EXTRA_SERVERS = ["minimal-lifted"]  # eventlet's pool and backlog raised; not in the default set
SCENARIOS = ["connections", "broadcast", "dm", "rooms", "durable", "changes"]
OURS_ONLY = {"changes"}  # editMessage, react, deleteMessage: docs/protocol.md §8

log = logging.getLogger("bench")

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

def cpu_seconds(pid):
    """utime + stime of a process (all its threads), from /proc/PID/stat; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


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
    def __init__(self, kind, workdir, dbdir=None):
        self.kind = kind
        self.workdir = workdir
        self.dbdir = dbdir or workdir
        self.proc = None
        self.url = None
        self.logpath = None

    def argv(self):
        if self.kind == "ours":
            return [PYTHON, "-m", "chat_server", "--host", "127.0.0.1", "--port", "0",
                    "--database-url", f"sqlite:///{self.dbdir}/chat.db"]
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
        self.logpath = self.workdir / f"{self.kind}-{tag}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.kind == "ours":
            env.update(OURS_ENV)
        with open(self.logpath, "wb") as logfile:
            self.proc = Proc(f"server {self.kind}", self.argv(), core=SERVER_CORE, cwd=REPO,
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
            "srv_wait": runqueue_wait_seconds(server.proc.pid),
            "gen": cpu_seconds(gen.pid),
            "probe": cpu_seconds(probe.proc.pid) if probe else 0.0,
            "receivers": cpu_seconds(receivers.proc.pid) if receivers else 0.0,
            "heartbeat": heartbeat(server)}


def heartbeat(server):
    """Our server's heartbeat greenlet (it wakes every 50 ms): from /metrics, how many of
    its wake-ups so far were at most `le` seconds late, per bucket bound."""
    if server.kind != "ours":
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


def run_generator(server, scenario, params, probe, deadline, workdir, on_phase=None,
                  receivers=None):
    """Runs loadgen.js once; returns {phases: {name: {...}}, summaries: [...], traffic}.

    `on_phase(state, name)` is called when a measured window opens ("start") and closes
    ("end"): to profile only what runs after the clients are connected, or one window.
    `receivers` (broadcast only): a second generator process whose clients' deliveries
    are added to each window's."""
    argv = ["node", LOADGEN / "loadgen.js", "--url", server.url, "--server",
            "ours" if server.kind == "ours" else server.kind, "--scenario", scenario,
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
            if kind == "phase" and on_phase is not None:
                on_phase(msg["state"], msg["name"])
            if kind == "phase" and msg["state"] == "start":
                opened[msg["name"]] = snapshot(server, gen, probe, receivers)
                if probe:
                    probe.send(f"start {msg['name']}")
                if receivers:
                    receivers.send(f"start {msg['name']}")
            elif kind == "phase" and msg["state"] == "end":
                name = msg["name"]
                after = snapshot(server, gen, probe, receivers)
                before = opened.pop(name, after)
                dt = after["t"] - before["t"]
                gen_pct = pct(after, before, "gen", dt)
                probe_pct = pct(after, before, "probe", dt) or 0.0
                receivers_pct = pct(after, before, "receivers", dt) or 0.0
                phase = dict(msg.get("metrics") or {})
                phase.update({
                    "wall_s": round(dt, 3),
                    "srv_cpu": pct(after, before, "srv", dt),
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
        if self.seconds is None:
            self.seconds = time.monotonic() - self.started
        try:
            os.killpg(self.proc.pid, signal.SIGINT)  # py-spy writes its file on Ctrl-C
            self.proc.popen.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.proc.stop(grace=1.0)


def summarize_profile(path, seconds=None, top=25):
    """Self and inclusive shares of the functions in py-spy's raw (collapsed) output."""
    own, incl, total = {}, {}, 0
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return "no profile written"
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.strip() for f in stack.split(";")]
        frames = [re.sub(r" \(.*?/(site-packages|lib/python3\.\d+)/", " (", f) for f in frames]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    if not total:
        return "no samples"
    span = f" over {seconds:.0f} s" if seconds else ""
    out = [f"{total} samples of the GIL-holding thread (100 Hz){span}; shares of samples",
           "self time:"]
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in
            sorted(own.items(), key=lambda kv: -kv[1])[:top]]
    out.append("inclusive time:")
    out += [f"  {100 * v / total:5.1f}%  {k}" for k, v in
            sorted(incl.items(), key=lambda kv: -kv[1])[:top + 15]]
    return "\n".join(out)


def run_scenario(kind, scenario, sizes, opts):
    """All the generator runs of one scenario on one server, each on a fresh server."""
    if scenario in OURS_ONLY and kind != "ours":
        log.info("  %s: %s is ours only, skipped", kind, scenario)
        return []
    server = Server(kind, opts.workdir, opts.dbdir)
    results = []

    def one(tag, params, deadline, gen_scenario):
        server.start(tag)
        probe = None
        spy = []  # the profiler, once the first (or the chosen) measured window opens
        raw = Path(opts.profile or ".") / f"ours-{tag}.txt"

        def on_phase(state, name):
            if not opts.profile or kind != "ours":
                return
            chosen = opts.profile_phase is None or name == opts.profile_phase
            if state == "start" and chosen and not spy:
                spy.append(Profiler(server.proc.pid, raw, opts.profile_threads))
            elif state == "end" and opts.profile_phase == name and spy:
                spy[0].stop()

        receivers = None
        try:
            if kind == "ours":
                probe = Probe(server.url, opts.probe_event)
            if gen_scenario == "broadcast" and opts.extra_receivers:
                receivers = Receivers(server.url, kind, opts.extra_receivers)
            time.sleep(1.0)
            base_rss = rss_kb(server.proc.pid)
            out = run_generator(server, gen_scenario, params, probe, deadline, opts.workdir,
                                on_phase=on_phase, receivers=receivers)
            out["base_rss_kb"] = base_rss
            out["server_log"] = str(server.logpath)
            if spy:
                profiler = spy.pop()
                profiler.stop()
                summary = summarize_profile(raw, profiler.seconds)
                (Path(opts.profile) / f"ours-{tag}-top.txt").write_text(summary + "\n")
                out["profile"] = str(raw)
                log.info("  profile of ours during %s (%s):\n%s", tag, raw, summary)
            return out
        finally:
            for profiler in spy:
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
    common = ["RSS MB", "srv CPU%", "srv wait%", "gen CPU%", "stall p99/max ms, hb max", "flags"]

    def tail(p):
        return [mb(p.get("rss_kb")), p.get("srv_cpu"), p.get("srv_wait"), p.get("gen_cpu"),
                stall(p), flags(p)]

    rows = []
    for s in servers:
        for step in results.get(s, {}).get("connections", []):
            if step.get("skipped"):
                rows.append([s, step["n"], "skipped", "", "", "", "", "", "", "", "", "", "",
                             "", "", step["skipped"]])
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
                         per, c.get("srv_cpu"), c.get("srv_wait"), c.get("gen_cpu"), pair(c),
                         stall(c), flags(c), note])
            if c.get("connected") == step["n"]:
                key[s]["max_clients"] = step["n"]
                key[s][f"connect_s_{step['n']}"] = c.get("elapsed_s")
                key[s][f"kb_per_conn_{step['n']}"] = per
                key[s][f"pair_p99_{step['n']}"] = c.get("pair_rtt_p99_ms")
                beat = c.get("heartbeat_max_ms")
                key[s][f"hb_max_{step['n']}"] = None if beat == math.inf else beat
    if rows:
        out.append(table("Connections (time to connect N clients; RSS after all connected)",
                         ["server", "N", "connected", "failed", "time s", "conn p50 ms",
                          "conn p99 ms", "RSS MB", "KB/conn", "srv CPU%", "srv wait%",
                          "gen CPU%", "DM pair RTT p50/p99/max ms", "stall p99/max ms, hb max",
                          "flags", "note"], rows))

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
                             p.get("p50_ms"), p.get("p99_ms"), p.get("lost"), *tail(p)])
                key[s]["bcast_p50_20"] = p.get("p50_ms")
                key[s]["bcast_p99_20"] = p.get("p99_ms")
            steps = [n for n in run["order"] if n.startswith("rate-")]
            best_name = best.get("phase") if best else None
            if best_name in ph:
                p = ph[best_name]
                if best_name != "fixed":
                    rows.append([s, f"best: {p.get('rate')} msg/s to {p.get('clients')}",
                                 p.get("deliveries_per_s"), with_extra(p), p.get("p50_ms"),
                                 p.get("p99_ms"),
                                 p.get("lost"), *tail(p)])
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
                             p.get("p50_ms"), p.get("p99_ms"), p.get("lost"), *tail(p)])
    if rows:
        out.append(table("Broadcast fan-out (deliveries/s; latency send -> each receiver)",
                         ["server", "step", "deliveries/s", "+ extra receivers = total/s",
                          "p50 ms", "p99 ms", "lost", *common], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("dm", []):
            p = run["phases"].get("dm")
            if not p:
                continue
            rows.append([s, p.get("pairs"), p.get("round_trips_per_s"), p.get("rtt_p50_ms"),
                         p.get("rtt_p99_ms"), p.get("p50_ms"), p.get("lost"), *tail(p)])
            key[s]["dm_rts"] = p.get("round_trips_per_s")
            key[s]["dm_rtt_p50"] = p.get("rtt_p50_ms")
            key[s]["dm_rtt_p99"] = p.get("rtt_p99_ms")
    if rows:
        out.append(table("Direct messages (pairs ping-ponging)",
                         ["server", "pairs", "round trips/s", "RTT p50 ms", "RTT p99 ms",
                          "one-way p50 ms", "lost", *common], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("rooms", []):
            p = run["phases"].get("rooms")
            if not p:
                continue
            rows.append([s, f"{p.get('clients')} in {p.get('rooms')}", p.get("rate"),
                         p.get("deliveries_per_s"), p.get("p50_ms"), p.get("p99_ms"),
                         p.get("lost"), *tail(p)])
            key[s]["rooms_p50"] = p.get("p50_ms")
            key[s]["rooms_p99"] = p.get("p99_ms")
            key[s]["rooms_lost"] = p.get("lost")
    if rows:
        out.append(table("Rooms (fixed total send rate)",
                         ["server", "clients", "msg/s", "deliveries/s", "p50 ms", "p99 ms",
                          "lost", *common], rows))

    rows = []
    for s in servers:
        for run in results.get(s, {}).get("durable", []):
            for name, what, k in (("durable", "message (broadcast)", "durable_acked"),
                                  ("durable-self", "sendMessage to self", "durable_self")):
                p = run["phases"].get(name)
                if not p:
                    continue
                rows.append([s, what, p.get("senders"), p.get("acked_per_s"),
                             p.get("ack_p50_ms"), p.get("ack_p99_ms"),
                             (p.get("refused") or 0) + (p.get("ack_timeouts") or 0),
                             p.get("deliveries_per_s"), *tail(p)])
                key[s][k] = p.get("acked_per_s")
    if rows:
        out.append(table("Acked sends (each sender waits for its ack; ours commits every "
                         "message to SQLite first, the references store nothing)",
                         ["server", "event", "senders", "acked/s", "ack p50 ms", "ack p99 ms",
                          "failed", "deliveries/s", *common], rows))

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
                    cpu = None  # the server's CPU time per acked request, all threads
                    if p.get("srv_cpu") and p.get("acked_per_s"):
                        cpu = round(p["srv_cpu"] * 1e4 / p["acked_per_s"])
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
                         "per acked request, which other load on core 0 changes less)",
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
        ("rooms p99 (ms)", "rooms_p99", False),
        ("rooms lost", "rooms_lost", False),
        ("acked sends/s, message (broadcast)", "durable_acked", True),
        ("acked sends/s, sendMessage to self", "durable_self", True),
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
                        help="record our server with py-spy during each scenario; raw stacks "
                             "and a top-frames summary go to DIR (numbers taken while "
                             "profiling are perturbed: do not report them)")
    parser.add_argument("--profile-phase", metavar="NAME",
                        help="with --profile: record only the measured window NAME (for "
                             "example changes-edit) instead of every window from the first")
    parser.add_argument("--profile-threads", action="store_true",
                        help="with --profile: sample every running thread (store, system "
                             "calls, SQLite) instead of only the one holding the GIL")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs")
    parser.add_argument("--server-cores", default="0", metavar="LIST",
                        help="taskset cores for the servers (default 0; e.g. 0,1 lets a "
                             "server's helper threads, such as V8's garbage collector, run "
                             "beside the generator's core)")
    parser.add_argument("--extra-receivers", type=int, default=0, metavar="M",
                        help="broadcast: M more clients in a second generator process "
                             "(receivers.js); each window then reports the total deliveries/s "
                             "of both processes, to show whether one generator limits it")
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
    if "ours" in servers and not PYTHON.exists():
        parser.error(f"{PYTHON} is missing: run `make run` or create the venv first")
    if (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
        log.warning("fewer than 2 cores or no taskset: server and generator are not pinned "
                    "apart, numbers mean less")

    global SERVER_CORE
    SERVER_CORE = args.server_cores
    nofile = raise_fd_limit()
    ensure_node_deps()
    info = machine()
    info["nofile"] = nofile
    info["started"] = datetime.now().isoformat(timespec="seconds")
    log.info("machine: %s", info)

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
    try:
        for scenario in scenarios:
            log.info("scenario %s", scenario)
            sizes = SIZES[scenario][1 if args.quick else 0]
            for kind in servers:
                try:
                    results[kind][scenario] = run_scenario(kind, scenario, sizes, args)
                except RuntimeError as error:
                    log.error("  %s %s failed: %s", kind, scenario, error)
                    results[kind][scenario] = []
    except KeyboardInterrupt:
        log.warning("interrupted: stopping everything")
    finally:
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
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "quick": args.quick,
                                               "results": results, "key": key}, indent=1))
        log.info("numbers written to %s", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
