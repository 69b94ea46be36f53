"""How each compat module states what it relies on: `has()` one name, with its parameters."""

from __future__ import annotations

import inspect
from typing import Any


def has(owner: Any, name: str, params: tuple[str, ...] = ()) -> str | None:
    """None when `owner.name` exists (taking `params` first), else what is wrong."""
    target = getattr(owner, name, None)
    label = f"{getattr(owner, '__module__', '')}.{getattr(owner, '__name__', owner)}.{name}"
    if target is None:
        return f"{label} is missing"
    if params:
        found = tuple(inspect.signature(target).parameters)
        if found[:len(params)] != params:
            return f"{label}{found} no longer takes {params}"
    return None
