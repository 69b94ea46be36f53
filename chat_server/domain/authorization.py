"""Who may do what to whom (docs/protocol.md §8.2, §10): the one table every moderation
check reads, so that a rule is written once and a test can walk all of it.

An actor's role is its role in the room (`owner`, `moderator`, `member`), or `admin`
(a server admin, in any room), or `outsider` (not a member). A target's role is counted
the same way. `ALLOWED[action][actor]` is the set of target roles the actor may act on.
"""

from __future__ import annotations

ADMIN, OWNER, MODERATOR, MEMBER, OUTSIDER = "admin", "owner", "moderator", "member", "outsider"
ROLES = (ADMIN, OWNER, MODERATOR, MEMBER, OUTSIDER)

# Kick, ban and mute: the owner may act on anyone below it, a moderator only on members
# (and on outsiders for a ban that keeps them out); an admin on anyone but another admin.
_REMOVE = {
    ADMIN: {OWNER, MODERATOR, MEMBER},
    OWNER: {MODERATOR, MEMBER},
    MODERATOR: {MEMBER},
}

ALLOWED: dict[str, dict[str, set[str]]] = {
    "setRole": {OWNER: {MODERATOR, MEMBER}},
    "kick": _REMOVE,
    "ban": {actor: targets | {OUTSIDER} for actor, targets in _REMOVE.items()},
    "mute": _REMOVE,
    # Someone else's message in a room (one's own is always one's own to delete).
    "deleteMessage": {ADMIN: set(ROLES) - {ADMIN}, OWNER: set(ROLES) - {ADMIN},
                      MODERATOR: {MEMBER, OUTSIDER}},
    "closeRoom": {ADMIN: {OWNER}, OWNER: {OWNER}},
    "banUser": {ADMIN: {OWNER, MODERATOR, MEMBER, OUTSIDER}},
}


def allowed(action: str, actor: str, target: str) -> bool:
    return target in ALLOWED.get(action, {}).get(actor, set())


def refusal(action: str) -> str:
    """What a `forbidden` answer says for the action."""
    return _REFUSALS.get(action, "You may not do that.")


_REFUSALS = {
    "setRole": "Only the room's owner may change roles.",
    "kick": "You may not remove this member.",
    "ban": "You may not ban this user.",
    "mute": "You may not mute this member.",
    "deleteMessage": "You may not delete this message.",
    "closeRoom": "Only the room's owner may close it.",
    "banUser": "Only a server admin may ban users, and not another admin.",
}
