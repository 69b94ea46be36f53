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

from .commands import open_store, when
from .domain.validation import fold


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat_server admin",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("list", "ban", "unban"))
    parser.add_argument("name", nargs="?", help="the user to ban or unban")
    parser.add_argument("--by", default="operator", help="who bans, as users are told")
    args, rest = parser.parse_known_args(argv)
    if args.action != "list" and not args.name:
        parser.error(f"{args.action} needs a name")
    store = open_store("admin", rest)
    if store is None:
        return 2
    try:
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
    finally:
        store.close()
