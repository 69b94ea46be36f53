#!/usr/bin/env python3
"""Where our server's memory per connection goes.

    .venv/bin/python bench/memory.py [--n 2000] [--traced] [--top 25]

Starts our server (pinned to core 0, limits lifted as in run.py), connects N websocket
clients with the bench's generator (core 1), holds them, and reports RSS per connection =
(RSS with all connected - RSS before the first) / connected. With `--traced` the server
runs under tracemalloc (bench/traced_server.py; tracing itself costs memory, so its RSS
is not the figure to quote) and the report adds what Python allocated per connection,
grouped by the line that allocated it (and by file), plus the live greenlets by what
they run. Everything is bounded: one generator run with a deadline, and both processes
are stopped at the end.
"""

import argparse
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
assert spec and spec.loader
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

log = logging.getLogger("memory")


def private_kb(pid):
    """RSS split by kind (/proc/PID/status): anonymous memory is what connections cost."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def snapshot(server, out, k, timeout=60):
    os.kill(server.proc.pid, signal.SIGUSR1)
    done = Path(f"{out}.{k}.done")
    until = time.monotonic() + timeout
    while not done.exists() and time.monotonic() < until:
        time.sleep(0.1)
    if not done.exists():
        raise RuntimeError("the traced server wrote no snapshot")
    return (tracemalloc.Snapshot.load(f"{out}.{k}.snap"),
            json.loads(Path(f"{out}.{k}.json").read_text()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--traced", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=8, help="traceback depth traced")
    parser.add_argument("--hold", type=float, default=5.0)
    parser.add_argument("--probe", action="store_true",
                        help="with run.py's stall probe (benchPing every 10 ms)")
    parser.add_argument("--scrape", action="store_true",
                        help="read /metrics (as run.py does at each window) before the RSS")
    parser.add_argument("--pair", action="store_true",
                        help="with the DM pair of run.py's storms (a DM every 20 ms)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    bench.raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="chat-memory-"))
    out = workdir / "trace"
    server = bench.Server("ours", workdir)
    if args.traced:
        server.argv = lambda: [bench.PYTHON, BENCH / "traced_server.py", "--host",
                               "127.0.0.1", "--port", "0", "--database-url",
                               f"sqlite:///{workdir}/chat.db"]
        os.environ["TRACE_OUT"] = str(out)
        os.environ["TRACE_FRAMES"] = str(args.frames)
    snaps = []
    result = {}
    try:
        server.start("memory")
        probe = bench.Probe(server.url, "benchPing") if args.probe else None
        time.sleep(1.5)
        before = private_kb(server.proc.pid)
        if args.traced:
            snaps.append(snapshot(server, out, 0))
            before = private_kb(server.proc.pid)
        argv = ["node", bench.LOADGEN / "loadgen.js", "--url", server.url, "--server", "ours",
                "--scenario", "connections", "--deadline", "200", "--params",
                json.dumps({"n": args.n, "concurrency": 200, "connectDeadline": 150,
                            # The generator holds well past our reading: its clients
                            # all leave at the end (a disconnect storm).
                            "holdSecs": args.hold + (30 if args.traced else 10),
                            "connectTimeoutMs": 20000, "stallSecs": 25,
                            "pairIntervalMs": 20 if args.pair else 0})]
        gen = bench.Proc("loadgen", argv, core=bench.GEN_CORE, stdout=subprocess.PIPE,
                         text=True)
        try:
            for raw in gen.popen.stdout:
                msg = json.loads(raw)
                if msg.get("type") == "phase" and msg["state"] == "end" \
                        and msg["name"] == "connect":
                    result["connect"] = msg["metrics"]
                if msg.get("type") == "phase" and msg["state"] == "start" \
                        and msg["name"] == "hold":
                    time.sleep(args.hold)
                    if args.scrape:
                        mid = private_kb(server.proc.pid)["VmRSS"]
                        bench.heartbeat(server)
                        print(f"/metrics scraped: VmRSS {mid} -> "
                              f"{private_kb(server.proc.pid)['VmRSS']} KB")
                    after = private_kb(server.proc.pid)
                    if args.traced:
                        snaps.append(snapshot(server, out, 1))
                    break
        finally:
            gen.stop(grace=1.0)
            if probe:
                probe.stop()
    finally:
        server.stop()
    n = result.get("connect", {}).get("connected") or 0
    print(f"connected {n} of {args.n} in {result.get('connect', {}).get('elapsed_s')} s")
    if not n:
        return 1
    for key in ("VmRSS", "RssAnon", "RssFile"):
        print(f"{key}: before {before[key]} KB, after {after[key]} KB, "
              f"per connection {(after[key] - before[key]) / n:.1f} KB")
    if args.traced:
        (a, ga), (b, gb) = snaps
        traced = (sum(s.size for s in b.statistics("filename"))
                  - sum(s.size for s in a.statistics("filename")))
        print(f"tracemalloc: {traced / n / 1024:.1f} KB per connection traced "
              f"(Python's allocators; greenlet stacks saved with PyMem included)")
        print(f"greenlets: before {ga['greenlets']}, after {gb['greenlets']} "
              f"({(gb['greenlets'] - ga['greenlets']) / n:.2f} per connection)")
        for run, count in gb["by_run"]:
            print(f"  {count:7d}  {run}")
        for group in ("filename", "lineno", "traceback"):
            print(f"\nlargest growth by {group} (bytes per connection, blocks per connection)")
            stats = b.compare_to(a, group)
            for stat in stats[:args.top if group != "traceback" else 8]:
                if stat.size_diff <= 0:
                    continue
                print(f"  {stat.size_diff / n:8.0f} B  {stat.count_diff / n:6.2f}  "
                      f"{stat.traceback.format()[-1].strip() if group != 'traceback' else ''}")
                if group == "traceback":
                    for line in stat.traceback.format(most_recent_first=True)[:2 * args.frames]:
                        print(f"             {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
