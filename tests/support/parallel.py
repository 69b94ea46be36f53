"""Under pytest-xdist: a test marked `alone` runs while no other worker is inside a test.

Its timing assertions (round trips while the store is locked, a burst that must outrun a
rate limit) need the CPU that the other workers would take. A readers-writer lock on two
files that the workers of one run share: every test holds `tests.lock` shared, an `alone`
test holds it exclusively. Tests enter through `gate.lock`, which an `alone` test keeps
while it waits and runs, so that the other workers cannot keep it waiting for ever.
"""

import fcntl
from contextlib import contextmanager


@contextmanager
def turn(folder, alone):
    """Hold the lock for one test: shared, or exclusive if `alone`."""
    with open(folder / "gate.lock", "a") as gate, open(folder / "tests.lock", "a") as tests:
        fcntl.flock(gate, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(tests, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        yield  # closing the files releases both locks
