"""Unique names, so that tests can share one server without seeing each other."""

import uuid


def uid(n=10):
    """A random lower-case hex string, to keep names unique on shared servers."""
    return uuid.uuid4().hex[:n]


def uname(prefix="u"):
    """A fresh, valid, unique user name."""
    return f"{prefix}-{uid()}"


def uroom(prefix="r"):
    """A fresh, valid, unique room name."""
    return f"#{prefix}-{uid()}"


def dm_key(a, b):
    """The conversation key of the DM between users `a` and `b`."""
    x, y = sorted([a.lower(), b.lower()])
    return f"dm:{x}:{y}"
