"""Unique names, so that tests can share one server without seeing each other."""

import uuid


def uid(n=10):
    """A random lower-case hex string, to keep names unique on shared servers."""
    return uuid.uuid4().hex[:n]


def uname(prefix="u"):
    """A fresh, valid, unique user name; never 20 characters, the shape of a sid that v2
    refuses as a name (docs/protocol.md §1.3)."""
    name = f"{prefix}-{uid()}"
    return name if len(name) != 20 else name + "x"


def uroom(prefix="r"):
    """A fresh, valid, unique room name."""
    return f"#{prefix}-{uid()}"


def dm_key(a, b):
    """The conversation key of the DM between users `a` and `b`."""
    x, y = sorted([a.lower(), b.lower()])
    return f"dm:{x}:{y}"
