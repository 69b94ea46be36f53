"""Payload and name rules of docs/protocol.md, as pure functions that raise domain errors."""

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, TypeGuard

from . import names
from .errors import InvalidName, InvalidPayload, TooLarge

NAME_MAX = 32
ROOM_MAX = 32
CLIENT_ID_MAX = 64
HISTORY_DEFAULT = 50
HISTORY_MAX = 100
ID_MAX = 2**63 - 1
PASSWORD_MAX = 1024
CONVERSATION_MAX = 100  # `dm:` + two names of 32 and a colon fit with room to spare
GUEST_PREFIX = "guest-"
NAME_RULE = "Names are 1-32 letters, digits, '_', '-' or '.', and may not start with 'guest-'."
SID_NAME_RULE = ("Names of exactly 20 characters from A-Z, a-z, 0-9, '_' and '-' look like a "
                 "session id and are not allowed.")
_SID_SHAPE = re.compile(r"[A-Za-z0-9_-]{20}")  # a Socket.IO sid (python-engineio's alphabet)


def _is_word_char(ch: str, extra: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] == "L" or category == "Nd" or category in ("Mn", "Mc") or ch in extra


def _check_word(text: object, extra: str, max_len: int) -> TypeGuard[str]:
    """Letters of any script, digits and `extra`; marks only after a base character."""
    if not isinstance(text, str) or not 1 <= len(text) <= max_len:
        return False
    if unicodedata.category(text[0]) in ("Mn", "Mc"):
        return False
    return all(_is_word_char(ch, extra) for ch in text)


def fold(text: str) -> str:
    """The key under which names and rooms compare case-insensitively."""
    return unicodedata.normalize("NFC", text).casefold()


def valid_user_name(name: object) -> TypeGuard[str]:
    return _check_word(name, "_-.", NAME_MAX)


def check_user_name(name: str) -> str:
    """A name a client may sign in or register with: valid and not in the guest namespace,
    however it is spelled (in fullwidth letters, or with a Cyrillic s)."""
    if not valid_user_name(name) or names.loose(name).startswith(GUEST_PREFIX) or \
            names.skeleton(name).startswith(GUEST_PREFIX):
        raise InvalidName(NAME_RULE)
    return name


def sid_shaped(name: str) -> bool:
    """Whether `name`, or the key it is looked up by, has the shape of a Socket.IO sid:
    exactly 20 of `A-Z a-z 0-9 _ -` (docs/protocol.md §1.3). The key counts too, so that
    no name folding to a sid's spelling ("ß" to "ss", the Kelvin sign to "k") can be
    reached by a `destId` that holds a sid."""
    return _SID_SHAPE.fullmatch(name) is not None or _SID_SHAPE.fullmatch(fold(name)) is not None


def check_new_user_name(name: str) -> str:
    """A name a client may register now: `check_user_name`, and not shaped like a sid
    (v2, docs/protocol.md §1.3). Names registered before that rule still sign in."""
    check_user_name(name)
    if sid_shaped(name):
        raise InvalidName(SID_NAME_RULE)
    return name


def is_room_name(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and text.startswith("#") and _check_word(text[1:], "_-", ROOM_MAX)


def check_room_name(text: object) -> str:
    if not is_room_name(text):
        raise InvalidPayload("Room names are '#' and 1-32 letters, digits, '_' or '-'.")
    return text


def dm_part(name: str) -> str:
    """A user's part of a `dm:` key: the registered name, NFC, lower-cased (not casefolded:
    "Straße" is "straße"). Its `casefold()` is the user's key, so one part is one user."""
    return unicodedata.normalize("NFC", name).lower()


def dm_key(a_name: str, b_name: str) -> str:
    """Direct conversations are named by both users' names, sorted and lower-case."""
    first, second = sorted((dm_part(a_name), dm_part(b_name)))
    return f"dm:{first}:{second}"


def is_dm_key_of(conversation: str, name: str) -> bool:
    """Whether `conversation` is, spelled as the server spells it, a `dm:` key of the user
    registered as `name` (with anyone: a key naming no one else just has no messages)."""
    parts = conversation.split(":")
    if len(parts) != 3 or parts[0] != "dm" or dm_part(name) not in parts[1:]:
        return False
    first, second = parts[1:]
    return "" < first <= second and first == first.lower() and second == second.lower()


def dm_user_keys(conv_key: str) -> tuple[str, str]:
    """The keys of the two users a `dm:` key names (the same twice for a note to oneself)."""
    _, first, second = conv_key.split(":")
    return first.casefold(), second.casefold()


def check_unicode(text: str, field: str) -> str:
    """Valid Unicode: lone surrogates cannot be encoded, stored or hashed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload(f"'{field}' is not valid Unicode.") from None
    return text


def _storable(text: str, field: str) -> str:
    """Text a database can hold: valid Unicode and no NUL (PostgreSQL refuses it)."""
    if "\x00" in text:
        raise InvalidPayload(f"'{field}' may not contain NUL characters.")
    return check_unicode(text, field)


def check_text(text: object, max_length: int, field: str = "text") -> str:
    if not isinstance(text, str):
        raise InvalidPayload(f"'{field}' must be a string.")
    _storable(text, field)
    length = len(text.strip())
    if length == 0:
        raise InvalidPayload(f"'{field}' is empty.")
    if length > max_length:
        raise TooLarge(f"'{field}' is longer than {max_length} characters.")
    return text


def _check_client_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= CLIENT_ID_MAX:
        raise InvalidPayload("'clientId' must be a string of 1-64 characters.")
    return _storable(value, "clientId")


def check_id(value: object, field: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= ID_MAX:
        raise InvalidPayload(f"'{field}' must be a non-negative integer.")
    return value


def check_conversation(value: object) -> str:
    """A conversation as clients name it (docs/protocol.md §8.4): only its shape here;
    which conversation it is, and whether the user may read it, the domain decides."""
    if not isinstance(value, str) or not 1 <= len(value) <= CONVERSATION_MAX:
        raise InvalidPayload("'conversation' must be lobby, a #room, a user name or a dm: key.")
    return value


def require_dict(payload: object) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidPayload("The payload must be an object.")
    return payload


def _optional_password(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= PASSWORD_MAX:
        raise InvalidPayload("'password' must be a string of 1-1024 characters.")
    return check_unicode(value, "password")


@dataclass(frozen=True)
class Send:
    text: str
    client_id: str | None
    dest: str | None = None  # None for the lobby
    reply_to: int | None = None  # v2 (§8): the message this one answers


def parse_message(payload: object, max_length: int) -> Send:
    if isinstance(payload, str):
        return Send(check_text(payload, max_length), None)
    payload = require_dict(payload)
    return Send(check_text(payload.get("text"), max_length),
                _check_client_id(payload.get("clientId")),
                reply_to=check_id(payload.get("replyTo"), "replyTo"))


def parse_send_message(payload: object, max_length: int) -> Send:
    payload = require_dict(payload)
    dest = payload.get("destId")
    if not isinstance(dest, str) or not 1 <= len(dest) <= 64:
        raise InvalidPayload("'destId' must be a room, a sid or a user name.")
    return Send(check_text(payload.get("content"), max_length, "content"),
                _check_client_id(payload.get("clientId")), dest,
                check_id(payload.get("replyTo"), "replyTo"))


def mentioned_names(text: str) -> list[str]:
    """The names `@name` mentions in `text` (docs/protocol.md §9.3), once each, in order:
    a name runs to the first character a name cannot hold (combining marks included, as
    in Devanagari), and a run longer than a name is none (not its first 32 characters)."""
    found: list[str] = []
    start = text.find("@")
    while start != -1:
        end = start + 1
        while end < len(text) and _is_word_char(text[end], "_-."):
            end += 1
        name = text[start + 1:end]
        if valid_user_name(name) and name not in found:
            found.append(name)
        start = text.find("@", end)
    return found


@dataclass(frozen=True)
class JoinRoom:
    room: str
    password: str | None


def parse_join_room(payload: object) -> JoinRoom:
    payload = require_dict(payload)
    return JoinRoom(check_room_name(payload.get("room")),
                    _optional_password(payload.get("password")))


def parse_room(payload: object) -> str:
    payload = require_dict(payload)
    return check_room_name(payload.get("room"))


@dataclass(frozen=True)
class HistoryQuery:
    conversation: str
    before: int | None
    after: int | None
    limit: int


def parse_history(payload: object) -> HistoryQuery:
    payload = require_dict(payload)
    conversation = check_conversation(payload.get("conversation"))
    limit = payload.get("limit", HISTORY_DEFAULT)
    if limit is None:
        limit = HISTORY_DEFAULT
    if type(limit) is not int or not 1 <= limit <= HISTORY_MAX:
        raise InvalidPayload("'limit' must be an integer from 1 to 100.")
    return HistoryQuery(conversation, check_id(payload.get("before"), "before"),
                        check_id(payload.get("after"), "after"), limit)


LIST_USERS_MAX = 500


@dataclass(frozen=True)
class UserPage:
    prefix: str  # folded; "" for any name
    after: str | None  # folded
    limit: int


def parse_list_users(payload: object) -> UserPage:
    """`listUsers {"prefix"?, "after"?, "limit"?}` (docs/protocol.md §7); no payload: the
    first 500 online users."""
    if payload is None:
        return UserPage("", None, LIST_USERS_MAX)
    fields = require_dict(payload)
    prefix, after, limit = fields.get("prefix"), fields.get("after"), fields.get("limit")
    for field, value in (("prefix", prefix), ("after", after)):
        if value is not None and (not isinstance(value, str) or len(value) > 64):
            raise InvalidPayload(f"'{field}' must be a string of at most 64 characters.")
    if limit is None:
        limit = LIST_USERS_MAX
    if type(limit) is not int or not 1 <= limit <= LIST_USERS_MAX:
        raise InvalidPayload("'limit' must be an integer from 1 to 500.")
    return UserPage(fold(check_unicode(prefix or "", "prefix")),
                    None if after is None else fold(check_unicode(after, "after")), limit)


WATCH_MAX = 500


def parse_watch_users(payload: object) -> list[str]:
    """`watchUsers {"names": [...]}` (docs/protocol.md §7): at most 500 names; the keys of
    the valid ones, in order, once each. A name no one holds yet is watched all the same
    (someone may take it), one that no one could hold is left out."""
    names = require_dict(payload).get("names")
    if not isinstance(names, list) or len(names) > WATCH_MAX:
        raise InvalidPayload("'names' must be a list of at most 500 user names.")
    if not all(isinstance(name, str) and len(name) <= 64 for name in names):
        raise InvalidPayload("Each of 'names' must be a user name.")
    return list(dict.fromkeys(fold(name) for name in names if valid_user_name(name)))


@dataclass(frozen=True)
class Typing:
    to: str
    typing: bool


def parse_sign_out(payload: object) -> bool:
    """`signOut {"everywhere"?: bool}` (docs/protocol.md §1.5); no payload: this token."""
    if payload is None:
        return False
    everywhere = require_dict(payload).get("everywhere", False)
    if not isinstance(everywhere, bool):
        raise InvalidPayload("'everywhere' must be true or false.")
    return everywhere


def parse_typing(payload: object) -> Typing:
    payload = require_dict(payload)
    to = payload.get("to")
    if not isinstance(to, str) or not 1 <= len(to) <= 64:
        raise InvalidPayload("'to' must be a '#room' or a user name.")
    typing = payload.get("typing")
    if not isinstance(typing, bool):
        raise InvalidPayload("'typing' must be true or false.")
    return Typing(to, typing)


@dataclass(frozen=True)
class Auth:
    name: str | None
    token: str | None
    password: str | None
    last_id: int | None


def parse_auth(auth: object) -> Auth:
    """Connect-time auth (docs/protocol.md §1.1, §1.6). A malformed `auth` is refused with
    `invalid_payload`: not an object, or a field of the wrong type or outside its range
    (`token` 1-200 characters, `password` 1-1024, `lastId` 0 to 2^63-1). A well-formed
    value that is refused keeps its own code: a string `name` breaking the rules of §1.3 is
    `invalid_name`; unknown tokens and wrong passwords are found out later by the domain.
    """
    if auth is None:
        return Auth(None, None, None, None)
    if not isinstance(auth, dict):
        raise InvalidPayload("The connection's auth must be an object.")
    name = auth.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidPayload("'name' must be a string.")
    if name is not None and not valid_user_name(name):
        raise InvalidName(NAME_RULE)
    token = auth.get("token")
    if token is not None and (not isinstance(token, str) or not 1 <= len(token) <= 200):
        raise InvalidPayload("'token' must be a string of 1-200 characters.")
    return Auth(name, token, _optional_password(auth.get("password")),
                check_id(auth.get("lastId"), "lastId"))
