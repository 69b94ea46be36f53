"""Domain errors. Each carries the protocol error code the transport sends back."""


class ChatError(Exception):
    """A request the chat refuses; `code` is one of the error codes of docs/protocol.md §2."""

    code = "invalid_payload"
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InvalidPayload(ChatError):
    code = "invalid_payload"


class TooLarge(ChatError):
    code = "too_large"
    default_message = "The message is too long."


class NotFound(ChatError):
    code = "not_found"
    default_message = "No such room or user."


class Forbidden(ChatError):
    code = "forbidden"
    default_message = "You are not allowed to do that."


class Blocked(Forbidden):
    """A DM (or DM typing) to someone who blocks the sender (docs/protocol.md §10.5)."""

    default_message = "This user does not take your direct messages."


class Muted(Forbidden):
    """Sending or typing in a room where one is muted (docs/protocol.md §10.2)."""

    default_message = "You are muted in this room for now."


class BadPassword(ChatError):
    code = "bad_password"
    default_message = "Wrong or missing password."


class RateLimited(ChatError):
    code = "rate_limited"
    default_message = "You are sending too fast; wait a moment."


class Unavailable(ChatError):
    code = "unavailable"
    default_message = "The message store is unavailable; try again shortly."


class InvalidName(ChatError):
    code = "invalid_name"
    default_message = "That name is not allowed."


class NameTaken(ChatError):
    code = "name_taken"
    default_message = "That name is already taken."


class BadToken(ChatError):
    code = "bad_token"
    default_message = "That session is no longer valid; sign in again."


class ServerFull(ChatError):
    code = "server_full"
    default_message = "The server is full; try again later."


class Banned(ChatError):
    """A connect refused because the user is banned from the server (docs/protocol.md §1.6;
    the bans themselves are §10, moderation)."""

    code = "banned"
    default_message = "You are banned from this server."
