"""`python -m chat_server admin list|ban NAME|unban NAME`: server bans from the shell, for
operators (docs/protocol.md §10.4). It writes the store directly, so it works with the
servers running: each node closes the banned user's connections within a few seconds
(`app._apply_bans`), and the user's next connect is refused with `banned`. Settings
(the database above all) come as for the server: flags after the command, or the
environment."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .commands import run_on_store, when
from .domain.validation import fold
from .store import Store


def main(argv: Sequence[str]) -> int:
    return run_on_store("admin", __doc__, ("list", "ban", "unban"), argv, _act,
                        name_help="the user to ban or unban", options=_options)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", default="operator", help="who bans, as users are told")


def _act(store: Store, args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, by, ts in store.banned_users():
            sys.stdout.write(f"{name}\tbanned by {by}\t{when(ts)}\n")
        return 0
    user = store.user_by_key(fold(args.name))
    if user is None:
        sys.stderr.write(f"chat_server admin: no user {args.name!r}\n")
        return 1
    store.ban_user(user.id, args.by, args.action == "ban", int(time.time() * 1000))
    sys.stdout.write(f"{user.name} {'banned' if args.action == 'ban' else 'unbanned'}\n")
    return 0
