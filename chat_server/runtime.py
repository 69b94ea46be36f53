"""The async layer. Everything that knows about eventlet is here, so it can be swapped.

eventlet is in bug-fix-only maintenance upstream; the rest of the package only sees
`Lane`, `Batcher`, `offload`, `spawn`, `sleep` and `Event` (and `compat`, which leans on
eventlet's internals, reaches it through here).
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication

# eventlet warns on import that it is deprecated; we know, and say so in the README.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402
import eventlet.corolocal  # noqa: E402
import eventlet.event  # noqa: E402
import eventlet.queue  # noqa: E402
import eventlet.semaphore  # noqa: E402
import eventlet.websocket  # noqa: E402
import eventlet.wsgi  # noqa: E402
from eventlet import tpool  # noqa: E402

logger = logging.getLogger(__name__)

spawn = eventlet.spawn
spawn_after = eventlet.spawn_after
sleep = eventlet.sleep
local = eventlet.corolocal.local  # per-greenlet attributes

T = TypeVar("T")
Item = TypeVar("Item")
Result = TypeVar("Result")
Job = tuple[Callable[..., Any], tuple[Any, ...]]  # a blocking call: function, arguments


def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking C call (password hashing) on an OS thread; the hub keeps serving."""
    return tpool.execute(fn, *args)


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

    def submit(self, item: Item) -> Result:
        done = eventlet.event.Event()
        self._queue.put((item, done))
        ok, value = done.wait()
        if ok:
            return value
        raise value

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
    """Runs blocking calls on an OS thread, strictly one after another.

    sqlite3 is not green: called on the hub it would stall every connection. One call at a
    time also means SQLAlchemy's internals never see two OS threads at once, so the green
    locks that monkey-patching gave them are never contended from a foreign thread. A
    worker greenlet owns the turn, so a caller that gives up waiting (a timeout) cannot
    let the next call start while its own is still running.
    """

    def __init__(self) -> None:
        self._worker: Batcher[Job, Any] = Batcher(self._execute, max_batch=1)

    @staticmethod
    def _execute(jobs: list[Job]) -> list[Any]:
        return [tpool.execute(fn, *args) for fn, args in jobs]

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        return self._worker.submit((fn, args))


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


def serve(listener: Any, wsgi_app: WSGIApplication, max_connections: int,
          protocol: type | None = None) -> None:
    """eventlet's WSGI server; its pool must outsize the connection cap (default 1,024).

    The socket timeout (longer than a long-poll's 45 s) ends connections whose peer
    stopped reading: a send blocked on a full socket gives up instead of waiting forever.
    `protocol` (compat.guarded_http_protocol) adds budgets per address and a deadline for
    request heads. `debug=False`: eventlet's own 500s carry no traceback (edge.harden
    answers the app's exceptions before eventlet sees them).
    """
    eventlet.wsgi.server(listener, wsgi_app, max_size=max_connections + 100,
                         protocol=protocol or eventlet.wsgi.HttpProtocol, debug=False,
                         log_output=False, keepalive=True, socket_timeout=90)
