"""The async layer. Everything that knows about eventlet is here, so it can be swapped.

eventlet is in bug-fix-only maintenance upstream; the rest of the package only sees
`Lane`, `Batcher`, `Workers`, `spawn`, `sleep` and `Event` (and `compat`, which leans on
eventlet's internals, reaches it through here).
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

# eventlet warns on import that it is deprecated; we know, and say so in the README.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402
import eventlet.corolocal  # noqa: E402
import eventlet.event  # noqa: E402
import eventlet.greenio  # noqa: E402
import eventlet.hubs  # noqa: E402
import eventlet.patcher  # noqa: E402
import eventlet.queue  # noqa: E402
import eventlet.semaphore  # noqa: E402
import eventlet.websocket  # noqa: E402
import eventlet.wsgi  # noqa: E402

logger = logging.getLogger(__name__)

spawn = eventlet.spawn
# A greenlet nobody waits for or kills: the same start (a zero-delay hub timer) without a
# GreenThread around it, about 10 us less per call (compat/server.py measured it); for
# the per-message paths, where nothing uses the handle.
spawn_n = eventlet.spawn_n
spawn_after = eventlet.spawn_after
sleep = eventlet.sleep
local = eventlet.corolocal.local  # per-greenlet attributes


def hub() -> Any:
    """The event loop itself (for compat/: listeners on file descriptors)."""
    return eventlet.hubs.get_hub()


def call_later(seconds: float, fn: Callable[..., Any], *args: Any) -> None:
    """Start `fn(*args)` in a new greenlet after `seconds`. Until then only a hub timer
    exists (`spawn_after` makes the greenlet at once): for per-connection timers."""
    eventlet.hubs.get_hub().schedule_call_global(seconds, spawn_n, fn, *args)

T = TypeVar("T")
Item = TypeVar("Item")
Result = TypeVar("Result")
# A blocking call waiting for the store's lane: function, arguments, and where its result goes.
Job = tuple[Callable[..., Any], tuple[Any, ...], "eventlet.event.Event"]


# The real modules, not the green ones monkey-patching made: `Workers` runs OS threads.
_os_threading = eventlet.patcher.original("threading")
_os_queue = eventlet.patcher.original("queue")
_os_socket = eventlet.patcher.original("socket")


class Busy(Exception):
    """A `Workers` pool already has as many calls waiting as it may: this one was not made."""


def _outcome(done: Any) -> Any:
    """Wait for the `(ok, value)` a worker sends: the value, or its exception raised in
    this greenlet."""
    ok, value = done.wait()
    if ok:
        return value
    raise value


class Workers:
    """OS threads of their own for blocking calls (sqlite3, argon2): the hub keeps serving.

    Not eventlet's `tpool`: that is one queue of 20 threads for the whole process, so
    password hashes (argon2: tens of ms and 64 MiB each) and the store's calls waited in
    the same line, a flood of guesses stalled every send and `/readyz`, and 20 hashes ran
    at once. Here each kind of work has its own threads and its own queue. With
    `queue_limit`, at most that many calls wait for a thread besides those running; the
    next one is refused at once with `Busy` rather than queued.
    """

    def __init__(self, name: str, threads: int, queue_limit: int | None = None) -> None:
        self.name = name
        self.threads = threads
        self.capacity = None if queue_limit is None else threads + queue_limit
        self.outstanding = 0  # calls handed over and not yet answered (counted on the hub)
        self._jobs: Any = _os_queue.SimpleQueue()  # (done, fn, args), read by the threads
        self._results: Any = _os_queue.SimpleQueue()  # (done, (ok, value)), read on the hub
        self._wake: Any = None  # the threads' end of a socket pair: one byte per result

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on one of the threads; this greenlet waits, the others go on."""
        if self.capacity is not None and self.outstanding >= self.capacity:
            raise Busy(self.name)
        if self._wake is None:
            self._start()
        done = eventlet.event.Event()
        self.outstanding += 1
        self._jobs.put((done, fn, args))
        return _outcome(done)

    def _start(self) -> None:
        hub_end, self._wake = _os_socket.socketpair()
        eventlet.spawn(self._deliver, eventlet.greenio.GreenSocket(hub_end))
        for number in range(self.threads):
            _os_threading.Thread(target=self._work, name=f"{self.name}-{number}",
                                 daemon=True).start()

    def _work(self) -> None:
        """An OS thread: run calls, hand each result to the hub and wake it up."""
        while True:
            done, fn, args = self._jobs.get()
            try:
                result = (True, fn(*args))
            except Exception as error:  # raised again in the caller's greenlet
                result = (False, error)
            self._results.put((done, result))
            self._wake.sendall(b"x")

    def _deliver(self, wake: Any) -> None:
        """A greenlet on the hub: pass finished results to the greenlets waiting for them."""
        while True:
            wake.recv(4096)
            while True:
                try:
                    done, result = self._results.get_nowait()
                except _os_queue.Empty:
                    break
                self.outstanding -= 1
                done.send(result)


class Batcher(Generic[Item, Result]):
    """Group commit: items submitted while a batch is being processed form the next batch.

    `process(items)` returns one result per item, in order; each submitter gets its own
    result (or the batch's exception). One batch at a time, so results come in order.
    """

    def __init__(self, process: Callable[[list[Item]], list[Result]],
                 max_batch: int = 500) -> None:
        self.process = process
        self.max_batch = max_batch
        self._queue = eventlet.queue.LightQueue()
        self._worker = eventlet.spawn(self._run)

    def submit(self, item: Item, queued: Callable[[], None] | None = None) -> Result:
        """Queue `item` (then call `queued`: the order of the queue is the order of the
        results) and wait for its result."""
        done = eventlet.event.Event()
        self._queue.put((item, done))
        if queued is not None:
            queued()
        return _outcome(done)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except eventlet.queue.Empty:
                    break
            try:
                results = self.process([item for item, _ in batch])
            except Exception as error:  # every submitter learns of the failure
                for _, done in batch:
                    done.send((False, error))
                continue
            for (_, done), result in zip(batch, results, strict=True):
                done.send((True, result))


class Lane:
    """Runs blocking calls on an OS thread of its own, strictly one after another.

    sqlite3 is not green: called on the hub it would stall every connection. One call at a
    time also means SQLAlchemy's internals never see two OS threads at once, so the green
    locks that monkey-patching gave them are never contended from a foreign thread. A
    worker greenlet owns the turn, so a caller that gives up waiting (a timeout) cannot
    let the next call start while its own is still running.

    Calls of the functions in `first` (the send path: the group commit and the one-row
    reads before it, such as a DM's block check) go ahead of the others waiting, so a
    user's send does not queue behind the reads of a connect storm; after `AHEAD_RUN`
    of them in a row, one of the others takes its turn, so a flood of sends cannot starve
    them.
    """

    AHEAD_RUN = 4

    def __init__(self, first: Iterable[Callable[..., Any]] = ()) -> None:
        self._thread = Workers("store", threads=1)  # its own: never behind a password hash
        self._first = set(first)
        self._ahead: deque[Job] = deque()
        self._behind: deque[Job] = deque()
        self._waiting = eventlet.semaphore.Semaphore(0)  # one count per queued call
        self._run_ahead = 0  # calls of `first` taken in a row while others waited
        self._worker: Any = None

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._worker is None:
            self._worker = eventlet.spawn(self._run)
        done = eventlet.event.Event()
        (self._ahead if fn in self._first else self._behind).append((fn, args, done))
        self._waiting.release()
        return _outcome(done)

    def _run(self) -> None:
        while True:
            self._waiting.acquire()
            if self._ahead and not (self._behind and self._run_ahead >= self.AHEAD_RUN):
                self._run_ahead += 1 if self._behind else 0
                fn, args, done = self._ahead.popleft()
            else:
                self._run_ahead = 0
                fn, args, done = self._behind.popleft()
            try:
                done.send((True, self._thread.run(fn, *args)))
            except Exception as error:  # raised again in the caller's greenlet
                done.send((False, error))


class Event:
    """A one-shot event several greenlets can wait on."""

    def __init__(self) -> None:
        self._event = eventlet.event.Event()

    def set(self) -> None:
        if not self._event.ready():
            self._event.send(True)

    def is_set(self) -> bool:
        return self._event.ready()

    def wait(self, timeout: float | None = None) -> bool:
        if self._event.ready():
            return True
        with eventlet.Timeout(timeout, False):
            self._event.wait()
            return True
        return False


TimeoutError = eventlet.Timeout


def timeout(seconds: float) -> Any:
    """`with timeout(s):` raises TimeoutError in the block after `s` seconds."""
    return eventlet.Timeout(seconds)


def monkey_patch() -> None:
    """Make the standard library cooperative, and unmask websocket frames quickly. Only the
    entry point calls this."""
    eventlet.monkey_patch()
    from . import compat

    compat.speed_up_unmasking()


def listen(host: str, port: int) -> Any:
    listener = eventlet.listen((host, port), backlog=1024, reuse_addr=True, reuse_port=False)
    # Accepted sockets inherit TCP_NODELAY on Linux: small chat frames go out at once
    # instead of waiting for the peer's delayed ACK (Nagle's algorithm).
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


class PacedListener:
    """The listening socket, taking at most `per_turn` connections between two turns of
    the event loop.

    eventlet's WSGI server accepts until the backlog is empty before the loop runs
    again, so in a connect storm every pending connection's HTTP upgrade and handshakes
    ran in one iteration of the loop while the established connections waited (issue
    13). Paced, the rest wait in the kernel's backlog and the loop polls in between."""

    def __init__(self, sock: Any, per_turn: int = 8) -> None:
        self._sock, self._per_turn, self._taken = sock, per_turn, 0

    def accept(self) -> Any:
        if self._taken >= self._per_turn:
            self._taken = 0
            eventlet.sleep(0)
        accepted = self._sock.accept()
        self._taken += 1
        return accepted

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def serve(listener: Any, wsgi_app: WSGIApplication, max_connections: int,
          protocol: type | None = None) -> None:
    """eventlet's WSGI server; its pool must outsize the connection cap (default 1,024).

    The socket timeout (longer than a long-poll's 45 s) ends connections whose peer
    stopped reading: a send blocked on a full socket gives up instead of waiting forever.
    `protocol` (compat.guarded_http_protocol) adds budgets per address and a deadline for
    request heads. `debug=False`: eventlet's own 500s carry no traceback (edge.harden
    answers the app's exceptions before eventlet sees them).
    """
    eventlet.wsgi.server(PacedListener(listener), wsgi_app, max_size=max_connections + 100,
                         protocol=protocol or eventlet.wsgi.HttpProtocol, debug=False,
                         log_output=False, keepalive=True, socket_timeout=90)
