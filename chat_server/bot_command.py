"""`python -m chat_server bot add NAME|list|remove NAME`: bot accounts, for operators
(docs/protocol.md §12.1). Like `admin`, it writes the store directly, so it works with
the servers running; settings (the database above all) come as for the server: flags
after the command, or the environment.

- `add NAME` registers a bot and prints its token, once, alone on stdout; the store keeps
  only its hash. A bot's token does not expire.
- `list` prints each bot: name, when it was added, when its token was last used.
- `remove NAME` deletes its token (the HTTP API refuses it at once, 401) and bans the
  user from the server, so its open Socket.IO connections close within seconds and it
  cannot connect again; the name stays taken, so nobody else seems to have written its
  messages.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from .commands import run_on_store, when
from .domain.bots import add_bot, find_bot
from .domain.errors import ChatError
from .store import Store

REMOVED_BY = "operator"  # who the bot's connections are told banned them (`banned {by}`)


def main(argv: Sequence[str]) -> int:
    return run_on_store("bot", __doc__, ("add", "list", "remove"), argv, _act,
                        name_help="the bot to add or remove")


def _act(store: Store, args: argparse.Namespace) -> int:
    now = int(time.time() * 1000)
    if args.action == "list":
        for name, created, used in store.bots():
            sys.stdout.write(f"{name}\tadded {when(created)}\tlast used {when(used)}\n")
        return 0
    if args.action == "add":
        try:
            bot = add_bot(store, args.name, now)
        except ChatError as error:
            sys.stderr.write(f"chat_server bot: cannot add {args.name!r}: {error.message}\n")
            return 1
        sys.stderr.write(f"bot {bot.user.name} added; its token, shown only now "
                         "(use it as 'Authorization: Bearer <token>'):\n")
        sys.stdout.write(bot.token + "\n")
        return 0
    user = find_bot(store, args.name)
    if user is None:
        sys.stderr.write(f"chat_server bot: no bot {args.name!r}\n")
        return 1
    store.remove_bot(user.id)
    store.ban_user(user.id, REMOVED_BY, True, now)
    sys.stdout.write(f"bot {user.name} removed\n")
    return 0
