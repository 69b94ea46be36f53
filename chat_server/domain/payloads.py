"""Payloads of the v2 events that change messages, read them and moderate
(docs/protocol.md §8-10): editMessage, deleteMessage, react, markRead, search, setRole,
kick, ban, mute, banUser, block. The rules they share with the v1 events (names, texts,
ids) are in `validation`."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from .errors import InvalidPayload
from .validation import (
    check_conversation,
    check_id,
    check_room_name,
    check_text,
    check_unicode,
    fold,
    require_dict,
    valid_user_name,
)


@dataclass(frozen=True)
class Change:
    message_id: int
    text: str = ""  # editMessage
    emoji: str | None = None  # react
    on: bool = True  # react: add (true) or take back (false)


def _message_id(payload: dict[str, Any]) -> int:
    message_id = check_id(payload.get("messageId"), "messageId")
    if message_id is None:
        raise InvalidPayload("'messageId' is required.")
    return message_id


def parse_edit(payload: object, max_length: int) -> Change:
    """`editMessage {"messageId", "text"}` (docs/protocol.md §8.2): the text rules of §5."""
    fields = require_dict(payload)
    return Change(_message_id(fields), text=check_text(fields.get("text"), max_length))


def parse_delete(payload: object) -> Change:
    return Change(_message_id(require_dict(payload)))


EMOJI_MAX = 16  # code points


def parse_react(payload: object) -> Change:
    """`react {"messageId", "emoji", "on"}`: `emoji` 1-16 code points, no whitespace and
    no control characters (docs/protocol.md §8.2)."""
    fields = require_dict(payload)
    emoji, on = fields.get("emoji"), fields.get("on")
    if not isinstance(emoji, str) or not 1 <= len(emoji) <= EMOJI_MAX or any(
            ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
            for ch in emoji):
        raise InvalidPayload("'emoji' must be 1-16 characters without spaces or controls.")
    if not isinstance(on, bool):
        raise InvalidPayload("'on' must be true or false.")
    return Change(_message_id(fields), emoji=check_unicode(emoji, "emoji"), on=on)


@dataclass(frozen=True)
class MarkRead:
    conversation: str
    id: int


def parse_mark_read(payload: object) -> MarkRead:
    """`markRead {"conversation", "id"}` (docs/protocol.md §9.1)."""
    fields = require_dict(payload)
    conversation = check_conversation(fields.get("conversation"))
    read = check_id(fields.get("id"), "id")
    if read is None:
        raise InvalidPayload("'id' is required.")
    return MarkRead(conversation, read)


@dataclass(frozen=True)
class Search:
    words: list[str]  # case-folded; the last may match as a prefix
    conversation: str | None
    before: int | None
    limit: int


SEARCH_MAX = 50
QUERY_MAX = 200  # characters
WORD = re.compile(r"\w+")


def parse_search(payload: object) -> Search:
    """`search {"query", "conversation"?, "before"?, "limit"?}` (docs/protocol.md §9.4):
    the words of `query` (letters and digits, any script), at most 10 of them."""
    fields = require_dict(payload)
    query, conversation = fields.get("query"), fields.get("conversation")
    if not isinstance(query, str) or not 1 <= len(query) <= QUERY_MAX:
        raise InvalidPayload("'query' must be a string of 1-200 characters.")
    words = [fold(word) for word in WORD.findall(check_unicode(query, "query"))][:10]
    if not words:
        raise InvalidPayload("'query' must contain a word.")
    if conversation is not None:
        conversation = check_conversation(conversation)
    limit = fields.get("limit", 20)
    if type(limit) is not int or not 1 <= limit <= SEARCH_MAX:
        raise InvalidPayload("'limit' must be an integer from 1 to 50.")
    return Search(words, conversation, check_id(fields.get("before"), "before"), limit)


@dataclass(frozen=True)
class RoomAction:
    """`setRole`, `kick`, `ban`, `mute` (docs/protocol.md §10.1-10.2)."""

    room: str
    name: str
    role: str = ""
    on: bool = True
    seconds: int = 0


def parse_room_action(payload: object, role: bool = False, on: bool = False,
                      seconds: bool = False, max_seconds: int = 604_800) -> RoomAction:
    fields = require_dict(payload)
    room = check_room_name(fields.get("room"))
    name = fields.get("name")
    if not valid_user_name(name):
        raise InvalidPayload("'name' must be a user name.")
    action = RoomAction(room, name)
    if role:
        if fields.get("role") not in ("moderator", "member"):
            raise InvalidPayload("'role' must be moderator or member.")
        action = RoomAction(room, name, role=fields["role"])
    if on:
        if not isinstance(fields.get("on"), bool):
            raise InvalidPayload("'on' must be true or false.")
        action = RoomAction(room, name, on=fields["on"])
    if seconds:
        value = fields.get("seconds")
        if type(value) is not int or not 0 <= value <= max_seconds:
            raise InvalidPayload(f"'seconds' must be an integer from 0 to {max_seconds}.")
        action = RoomAction(room, name, seconds=value)
    return action


def parse_user_switch(payload: object) -> tuple[str, bool]:
    """`banUser` and `block`: `{"name", "on": bool}` (docs/protocol.md §10.4-10.5)."""
    fields = require_dict(payload)
    name, on = fields.get("name"), fields.get("on")
    if not valid_user_name(name):
        raise InvalidPayload("'name' must be a user name.")
    if not isinstance(on, bool):
        raise InvalidPayload("'on' must be true or false.")
    return name, on
