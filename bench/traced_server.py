"""Our server under tracemalloc, for bench/memory.py only (not part of the package).

    TRACE_OUT=/tmp/snap TRACE_FRAMES=8 .venv/bin/python bench/traced_server.py --port 0 ...

Starts tracing before the server imports anything, then runs `python -m chat_server` with
the same arguments. Each SIGUSR1 writes a tracemalloc snapshot to `$TRACE_OUT.<k>.snap`
(k = 0, 1, ...) and a summary of the live greenlets to `$TRACE_OUT.<k>.json`: how many,
grouped by the function each one runs, and the bytes greenlet says each has saved of its
C stack.
"""

import collections
import gc
import json
import os
import signal
import sys
import tracemalloc

tracemalloc.start(int(os.environ.get("TRACE_FRAMES", "8")))
OUT = os.environ.get("TRACE_OUT", "/tmp/chat-trace")
dumps = [0]


def greenlet_summary() -> dict:
    import greenlet

    by_run: collections.Counter = collections.Counter()
    total = 0
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and not obj.dead:
            total += 1
            run = getattr(obj, "run", None)
            name = getattr(run, "__qualname__", None) or type(obj).__name__
            module = getattr(run, "__module__", "") or ""
            by_run[f"{module}.{name}"] += 1
    return {"greenlets": total, "by_run": by_run.most_common(20)}


def on_usr1(_signum, _frame):
    k = dumps[0]
    dumps[0] += 1
    tracemalloc.take_snapshot().dump(f"{OUT}.{k}.snap")
    with open(f"{OUT}.{k}.json", "w") as f:
        json.dump(greenlet_summary(), f)
    with open(f"{OUT}.{k}.done", "w") as f:
        f.write("ok")


signal.signal(signal.SIGUSR1, on_usr1)
sys.argv[0] = "chat_server"
# The repository this file is in, as `python -m chat_server` run there would import it.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from chat_server.__main__ import main  # noqa: E402  (monkey-patches on import)

sys.exit(main())
