"""The OpenAPI 3.1 description of the HTTP API (`api.py`), served at
`/api/v1/openapi.json`. Kept beside the code it describes; tests/protocol/test_bot_api.py
checks it with a real validator and against what the server answers."""

from __future__ import annotations

from typing import Any

ERRORS = {
    "400": ("invalid_payload", "The body, the query or a field is not valid."),
    "401": ("bad_token", "No bearer token, or one that is not a bot's (unknown, or "
                         "removed with `bot remove`)."),
    "403": ("forbidden", "Not allowed: not a member of the room, a wrong or missing room "
                         "password, banned from the room or the server, muted, blocked."),
    "404": ("not_found", "No such room, user, conversation, message replied to, or "
                         "endpoint."),
    "413": ("too_large", "The text is over the length limit, or the body over the size "
                         "limit."),
    "429": ("rate_limited", "Over a rate limit; try again after `Retry-After` seconds."),
    "503": ("unavailable", "The store is unavailable, the server failed or is restarting; "
                           "try again."),
}


def _error(status: str) -> dict[str, Any]:
    code, meaning = ERRORS[status]
    response: dict[str, Any] = {
        "description": f"`{code}`: {meaning}",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"},
                                          "example": {"error": {"code": code,
                                                                "message": meaning}}}}}
    if status == "429":
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1}}}
    if status == "401":
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"$ref": f"#/components/responses/E{status}"} for status in statuses}


def _json_body(schema: str, example: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{schema}"}, "example": example}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ID = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}


def document(max_text_length: int = 2000) -> dict[str, Any]:
    """The description, with this server's text limit."""
    message = {
        "type": "object",
        "description": "MESSAGE (docs/protocol.md §3.2).",
        "required": ["id", "conversation", "kind", "from", "fromSid", "to", "text", "ts"],
        "properties": {
            "id": {"type": "integer", "description": "Unique, growing in acceptance order."},
            "conversation": {"type": "string", "examples": ["lobby", "#team", "dm:ann:bob"]},
            "kind": {"enum": ["broadcast", "room", "direct"]},
            "from": {"type": "string"},
            "fromSid": {"type": "string",
                        "description": "The sid it was sent from; `http:<user id>` over "
                                       "this API."},
            "to": {"type": ["string", "null"]},
            "text": {"type": "string"},
            "ts": {"type": "integer", "description": "Milliseconds since the epoch."},
            "replyTo": {"type": ["integer", "null"]},
            "editedAt": {"type": ["integer", "null"]},
            "deleted": {"type": "boolean"},
            "mentions": {"type": "array", "items": {"type": "string"}},
            "reactions": {"type": "array", "items": {
                "type": "object", "required": ["emoji", "count", "names"],
                "properties": {"emoji": {"type": "string"}, "count": {"type": "integer"},
                               "names": {"type": "array", "items": {"type": "string"}}}}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chat_server HTTP API for bots",
            "version": "1",
            "description": (
                "Post and read messages without Socket.IO (docs/protocol.md §12). A bot's "
                "token comes from `python -m chat_server bot add NAME`. A message posted "
                "here is validated, rate limited, stored and delivered to Socket.IO "
                "clients exactly as one sent with `message`/`sendMessage`. No cookies: "
                "the bearer token is the only credential."),
        },
        "servers": [{"url": "/"}],
        "security": [{"bot": []}],
        "paths": {
            "/api/v1/messages": {
                "post": {
                    "operationId": "postMessage",
                    "summary": "Send a message to the lobby, a room or a user",
                    "description": (
                        "A retry with the same `clientId` answers the original message and "
                        "delivers nothing again. Sending to a room needs membership "
                        "(`POST /api/v1/rooms/join`)."),
                    "requestBody": _json_body("Send", {"to": "#team", "text": "deploy ok",
                                                       "clientId": "build-1234"}),
                    "responses": {
                        "201": _ok("Stored and delivered (or the original, for a retry).", {
                            "type": "object", "required": ["message"],
                            "properties": {"message": {"$ref": "#/components/schemas/"
                                                               "Message"}}}),
                        **_errors("400", "401", "403", "404", "413", "429", "503")},
                },
                "get": {
                    "operationId": "getMessages",
                    "summary": "History of a conversation, oldest first",
                    "description": "As the `history` event (docs/protocol.md §2.5).",
                    "parameters": [
                        {"name": "conversation", "in": "query", "required": True,
                         "description": "`lobby`, `#room` (a member's), `dm:a:b` or a "
                                        "user name (the DM with that user).",
                         "schema": {"type": "string", "minLength": 1, "maxLength": 100}},
                        {"name": "before", "in": "query", "schema": ID,
                         "description": "Only messages with a smaller id: the newest of "
                                        "those."},
                        {"name": "after", "in": "query", "schema": ID,
                         "description": "Only messages with a larger id: the oldest of "
                                        "those."},
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                    "default": 50}},
                    ],
                    "responses": {
                        "200": _ok("Messages, oldest first.", {
                            "type": "object", "required": ["messages"],
                            "properties": {"messages": {"type": "array", "items": {
                                "$ref": "#/components/schemas/Message"}}}}),
                        **_errors("400", "401", "403", "404", "429", "503")},
                },
            },
            "/api/v1/rooms/join": {
                "post": {
                    "operationId": "joinRoom",
                    "summary": "Join (or create) a room",
                    "description": (
                        "As `joinRoom` (docs/protocol.md §2.4): a room that does not "
                        "exist is created, private when a password is given. The answer "
                        "is the ack's, without `ok`."),
                    "requestBody": _json_body("Join", {"room": "#team"}),
                    "responses": {
                        "200": _ok("Joined (or already a member).", {
                            "type": "object", "required": ["room", "members", "history"],
                            "properties": {
                                "room": {"$ref": "#/components/schemas/Room"},
                                "members": {"type": "array", "items": {"type": "string"}},
                                "history": {"type": "array", "items": {
                                    "$ref": "#/components/schemas/Message"}}}}),
                        **_errors("400", "401", "403", "404", "429", "503")},
                },
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description",
                    "security": [],
                    "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})},
                },
            },
        },
        "components": {
            "securitySchemes": {"bot": {
                "type": "http", "scheme": "bearer",
                "description": "A bot's token, from `python -m chat_server bot add NAME`."}},
            "schemas": {
                "Send": {
                    "type": "object", "required": ["to", "text"],
                    "properties": {
                        "to": {"type": "string", "minLength": 1, "maxLength": 64,
                               "description": "`lobby`, a `#room` the bot is in, or a "
                                              "user name (a direct message)."},
                        "text": {"type": "string", "minLength": 1,
                                 "description": f"At most {max_text_length} characters "
                                                "after trimming; sent as is."},
                        "clientId": {"type": "string", "minLength": 1, "maxLength": 64,
                                     "description": "Makes retries safe: one message per "
                                                    "clientId and bot."},
                        "replyTo": {**ID, "description": "A message of the same "
                                                         "conversation."},
                    },
                },
                "Join": {
                    "type": "object", "required": ["room"],
                    "properties": {
                        "room": {"type": "string", "pattern": "^#",
                                 "examples": ["#team"]},
                        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                    },
                },
                "Room": {
                    "type": "object",
                    "required": ["room", "owner", "private", "members"],
                    "properties": {
                        "room": {"type": "string"},
                        "owner": {"type": ["string", "null"]},
                        "private": {"type": "boolean"},
                        "members": {"type": "integer"},
                        "moderators": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "Message": message,
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {
                        "type": "object", "required": ["code", "message"],
                        "properties": {
                            "code": {"enum": [code for code, _ in ERRORS.values()]},
                            "message": {"type": "string"}}}},
                },
            },
            "responses": {f"E{status}": _error(status) for status in ERRORS},
        },
    }
