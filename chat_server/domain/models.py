"""Plain records shared by the domain and the store; `to_wire` gives the shapes of
docs/protocol.md §3."""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class User:
    id: int
    name: str
    key: str
    guest: bool
    password_hash: str | None = None


@dataclass(frozen=True)
class Room:
    id: int
    name: str
    key: str
    owner: str | None
    private: bool
    members: int
    password_hash: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"room": self.name, "owner": self.owner, "private": self.private,
                "members": self.members}


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


@dataclass(frozen=True)
class Message:
    id: int
    conv_key: str
    conversation: str
    kind: str
    from_name: str
    from_sid: str
    to: str | None
    text: str
    ts: int

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "conversation": self.conversation, "kind": self.kind,
                "from": self.from_name, "fromSid": self.from_sid, "to": self.to,
                "text": self.text, "ts": self.ts}
