"""Plain records shared by the domain and the store; `to_wire` gives the shapes of
docs/protocol.md §3."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class User:
    id: int
    name: str
    key: str
    guest: bool
    password_hash: str | None = None
    bot: bool = False  # v2 (docs/protocol.md §12): may use the HTTP API, tokens never expire


@dataclass(frozen=True)
class NewUser:
    """A name to register with its first session (`Store.create_users`)."""

    name: str
    key: str
    guest: bool
    token_hash: str
    password_hash: str | None
    skeleton: str | None  # TR39 skeleton of a chosen name; None for guests
    now: int


@dataclass(frozen=True)
class Room:
    id: int
    name: str
    key: str
    owner: str | None
    private: bool
    members: int
    password_hash: str | None = None
    moderators: tuple[str, ...] = ()  # v2 (docs/protocol.md §10.1)

    def to_wire(self) -> dict[str, Any]:
        return {"room": self.name, "owner": self.owner, "private": self.private,
                "members": self.members, "moderators": list(self.moderators)}


@dataclass(frozen=True)
class NewMessage:
    """A message accepted by the domain and waiting for its id from the store."""

    conv_key: str
    conversation: str
    kind: str  # broadcast | room | direct
    from_user_id: int
    from_name: str
    from_sid: str
    to: str | None
    to_user_id: int | None
    text: str
    ts: int
    client_id: str | None
    reply_to: int | None = None
    mentions: list[str] = field(default_factory=list)  # names, as the users spell them
    mention_ids: list[int] = field(default_factory=list)  # their user ids
    # Refused in the commit's transaction (`Blocked`, `Muted`): a mute of the sender in
    # this room, a block of the sender by the DM's recipient (docs/protocol.md §10).
    mute_room_id: int | None = None
    check_blocks: bool = False


@dataclass(frozen=True)
class NewChange:
    """An edit, deletion or reaction accepted by the domain, waiting for its id: the
    store checks it against the message's state in the same transaction (docs/protocol.md
    §8) and answers with the stored UPDATE, None when it changed nothing (a repeated
    reaction), or a ChatError."""

    message_id: int
    change: str  # edit | delete | react | unreact
    by_user_id: int
    by_name: str
    by_sid: str
    ts: int
    text: str = ""  # edit: the new text
    emoji: str | None = None
    may_delete_any: bool = False  # the room's owner, a moderator or an admin deletes
    mentions: list[str] = field(default_factory=list)  # edit: who the new text mentions
    mention_ids: list[int] = field(default_factory=list)
    # The store checks that `by_user_id` may read the message's conversation (in the
    # commit's transaction): the domain did not know its conversation (`Changes`).
    check_readable: bool = False


@dataclass(frozen=True)
class Message:
    """A message, or (kind "update") a change to the message `target_id`: both take ids
    from one sequence and travel the same way (docs/protocol.md §8.1)."""

    id: int
    conv_key: str
    conversation: str
    kind: str
    from_name: str
    from_sid: str
    to: str | None
    text: str
    ts: int
    reply_to: int | None = None
    edited_at: int | None = None
    deleted: bool = False
    mentions: list[str] = field(default_factory=list)
    reactions: list[dict[str, Any]] = field(default_factory=list)  # [{emoji, count, names}]
    target_id: int | None = None  # an update: the message it changes
    change: str | None = None  # an update: edit | delete | react | unreact
    emoji: str | None = None

    @property
    def is_update(self) -> bool:
        return self.kind == "update"

    @property
    def event(self) -> str:
        """The event that carries it to clients: `reply` or `update`."""
        return "update" if self.is_update else "reply"

    def to_wire(self) -> dict[str, Any]:
        if self.is_update:
            update: dict[str, Any] = {
                "id": self.id, "conversation": self.conversation, "messageId": self.target_id,
                "type": self.change, "by": self.from_name, "ts": self.ts}
            if self.change == "edit":
                update["text"] = self.text
                update["mentions"] = list(self.mentions)  # ours: the edited text's (§8.3)
            if self.emoji is not None:
                update["emoji"] = self.emoji
            return update
        return {"id": self.id, "conversation": self.conversation, "kind": self.kind,
                "from": self.from_name, "fromSid": self.from_sid, "to": self.to,
                "text": "" if self.deleted else self.text, "ts": self.ts,
                "replyTo": self.reply_to, "editedAt": self.edited_at, "deleted": self.deleted,
                "mentions": list(self.mentions), "reactions": list(self.reactions)}
