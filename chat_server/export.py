"""`python -m chat_server export [--conversation KEY] [--out FILE]`: the messages of one
conversation, or of all, as JSON lines (one MESSAGE of docs/protocol.md §3 per line, in
its current state, in id order). It streams: one page of rows at a time, by id, so memory
stays the same for a thousand messages or a hundred million, and it reads beside a
running server (each page is its own short transaction). Settings (the database above
all) come as for the server: flags after the command, or the environment."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from .commands import open_store
from .store import Store

PAGE = 2000  # rows per transaction


def export(store: Store, out: TextIO, conversation: str | None = None) -> int:
    """Write every message (of `conversation`) as JSON lines; returns how many."""
    written, after = 0, 0
    while True:
        page = store.export_page(after, PAGE, conversation)
        if not page:
            return written
        for message in page:
            out.write(json.dumps(message.to_wire(), ensure_ascii=False) + "\n")
        written += len(page)
        after = page[-1].id


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat_server export",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--conversation", help="a conversation key: lobby, #room, dm:a:b")
    parser.add_argument("--out", help="a file to write (default: standard output)")
    args, rest = parser.parse_known_args(argv)
    store = open_store("export", rest)
    if store is None:
        return 2
    try:
        if args.out:
            with open(args.out, "w", encoding="utf-8") as out:
                count = export(store, out, args.conversation)
        else:
            count = export(store, sys.stdout, args.conversation)
        sys.stderr.write(f"chat_server export: {count} messages\n")
        return 0
    finally:
        store.close()
