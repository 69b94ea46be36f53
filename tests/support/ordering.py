"""Pipelined sends and the order checks of docs/protocol.md §4 and §11, for the scale tests.

`pipeline` emits several sends at once, each with its ack, without waiting for any;
`reply_ids` reads what one client received, per conversation, in arrival order (the
client records events on its reader, in the order they arrived: compat's
`handle_in_arrival_order`); `sequence_problems` says how a received sequence differs from
the one expected, in words a failure report can show.
"""

import itertools
import threading
import time


def lobby_send(text, client_id):
    """The (event, payload) of a `message` to the lobby with a clientId."""
    return "message", {"text": text, "clientId": client_id}


def direct_send(dest, text, client_id):
    """The (event, payload) of a `sendMessage` to a room or a user, with a clientId."""
    return "sendMessage", {"content": text, "destId": dest, "clientId": client_id}


class Pipelined:
    """Sends emitted at once on one client: `acks[i]` is the ack of the i-th send, or None
    while it has not arrived; `wait()` waits for all of them."""

    def __init__(self, client, sends):
        self.acks = [None] * len(sends)
        self.ack_times = [None] * len(sends)
        self._left = len(sends)
        self._cond = threading.Condition()
        for i, (event, payload) in enumerate(sends):
            client.emit(event, payload, callback=self._callback(i))
        self.emitted_at = time.monotonic()

    def _callback(self, i):
        def cb(*args):
            with self._cond:
                if self.acks[i] is None:
                    self._left -= 1
                self.acks[i] = args[0] if len(args) == 1 else list(args)
                self.ack_times[i] = time.monotonic()
                self._cond.notify_all()
        return cb

    def wait(self, timeout):
        """True when every ack arrived within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._left:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True


def pipeline(client, sends, timeout):
    """Emit every (event, payload) of `sends` without waiting; return the acks in sending
    order, or raise AssertionError naming what did not come back within `timeout`."""
    batch = Pipelined(client, sends)
    if not batch.wait(timeout):
        missing = [i for i, a in enumerate(batch.acks) if a is None]
        raise AssertionError(f"{client.name}: {len(missing)} of {len(sends)} acks missing "
                             f"after {timeout}s (first: send #{missing[0]}; "
                             f"{client.state()})")
    return batch.acks


def reply_ids(events):
    """{conversation: [id, ...]} from recorded (name, payload) events, in arrival order."""
    seen = {}
    for name, payload in events:
        if name == "reply" and isinstance(payload, dict):
            seen.setdefault(payload.get("conversation"), []).append(payload.get("id"))
    return seen


def sequence_problems(got, expected):
    """How `got` (ids in arrival order) differs from `expected` (the ids, in id order, that
    should have arrived exactly once each); [] when they are equal."""
    if got == expected:
        return []
    problems = []
    counts = {}
    for i in got:
        counts[i] = counts.get(i, 0) + 1
    dupes = sorted(i for i, n in counts.items() if n > 1)
    if dupes:
        problems.append(f"received more than once: {dupes[:10]}"
                        + (f" (+{len(dupes) - 10})" if len(dupes) > 10 else ""))
    wanted = set(expected)
    missing = [i for i in expected if i not in counts]
    if missing:
        problems.append(f"missing {len(missing)}: {missing[:10]}")
    extra = sorted({i for i in got if i not in wanted})
    if extra:
        problems.append(f"not expected: {extra[:10]}")
    inversions = [(a, b) for a, b in itertools.pairwise(got) if b <= a]
    if inversions:
        a, b = inversions[0]
        at = got.index(b, got.index(a))
        problems.append(f"{len(inversions)} time(s) out of id order, first {b} after {a} "
                        f"(around {got[max(0, at - 4):at + 4]})")
    return problems


def wait_until(condition, timeout, interval=0.05):
    """Poll `condition()` until it is true or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
