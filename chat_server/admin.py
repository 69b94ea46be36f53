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

from .config import ConfigError, load, setup_logging
from .domain.validation import fold
from .store import Store


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat_server admin",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("list", "ban", "unban"))
    parser.add_argument("name", nargs="?", help="the user to ban or unban")
    parser.add_argument("--by", default="operator", help="who bans, as users are told")
    args, rest = parser.parse_known_args(argv)
    if args.action != "list" and not args.name:
        parser.error(f"{args.action} needs a name")
    try:
        config = load(rest)
    except ConfigError as error:
        sys.stderr.write(f"chat_server admin: bad setting: {error}\n")
        return 2
    setup_logging("WARNING", config.log_format)
    store = Store(config.database_url)
    try:
        store.create_schema()
        if args.action == "list":
            for name, by, ts in store.banned_users():
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts / 1000))
                sys.stdout.write(f"{name}\tbanned by {by}\t{when} UTC\n")
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
