"""What the operators' commands (`admin`, `bot`, `export`) share: the store that the
server's own settings name (flags after the command, or the environment), and how they
write times."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

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


def run_on_store(command: str, doc: str | None, actions: Sequence[str], argv: Sequence[str],
                 act: Callable[[Store, argparse.Namespace], int], *, name_help: str,
                 options: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse `ACTION [NAME] [settings...]` (every action but `list` needs the name), open
    the store and run `act` on it: the frame `admin` and `bot` share, so both read settings
    and report errors the same way."""
    parser = argparse.ArgumentParser(prog=f"python -m chat_server {command}",
                                     description=(doc or "").splitlines()[0])
    parser.add_argument("action", choices=actions)
    parser.add_argument("name", nargs="?", help=name_help)
    if options is not None:
        options(parser)
    args, rest = parser.parse_known_args(argv)
    if args.action != "list" and not args.name:
        parser.error(f"{args.action} needs a name")
    store = open_store(command, rest)
    if store is None:
        return 2
    try:
        return act(store, args)
    finally:
        store.close()


def when(ms: int | None) -> str:
    """A time of the store (ms since the epoch) as operators read it."""
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
