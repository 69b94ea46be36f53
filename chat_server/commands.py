"""What the operators' commands (`admin`, `bot`, `export`) share: the store that the
server's own settings name (flags after the command, or the environment), and how they
write times."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from .config import ConfigError, load, setup_logging
from .store import Store


def open_store(command: str, settings: Sequence[str]) -> Store | None:
    """The store, its schema brought up to date; None after saying on stderr why the
    settings cannot be used (the command then exits with 2)."""
    try:
        config = load(settings)
    except ConfigError as error:
        sys.stderr.write(f"chat_server {command}: bad setting: {error}\n")
        return None
    setup_logging("WARNING", config.log_format)
    store = Store(config.database_url)
    store.create_schema()
    return store


def when(ms: int | None) -> str:
    """A time of the store (ms since the epoch) as operators read it."""
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
