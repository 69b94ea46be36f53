"""What an edit, deletion or reaction asks the store before its group commit (docs/protocol.md
§8): for a message committed here lately, nothing (its conversation and author are kept);
for an older one, nothing either when the commit can check it alone (an edit without
`@`, a reaction: the commit checks the conversation is readable), else one lookup, in a
batch with the others waiting (an edit that mentions someone, a deletion, which may be a
moderator's). The checks hold every way: the conversation must still be readable, and
the commit checks the message's state."""

import pytest

from chat_server.domain.errors import Forbidden, NotFound
from chat_server.domain.sending import Sending


def join(chat, sid, auth=None):
    conn = chat.identity.connect(sid, auth)
    chat.live.go_live(sid)
    return conn


def test_a_change_to_a_recent_message_goes_straight_to_the_commit(counted):
    chat = counted
    join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"name": "bob"})
    chat.rooms.join_room("s1", {"room": "#team"})
    chat.rooms.join_room("s2", {"room": "#team"})
    lobby = chat.sending.send_lobby("s1", "hello")
    room = chat.sending.send_message("s1", {"content": "hi team", "destId": "#team"})
    reply = chat.sending.send_message("s2", {"content": "re", "destId": "#team",
                                             "replyTo": room.id})
    chat.calls.clear()
    chat.changes.edit("s1", {"messageId": lobby.id, "text": "hello all"})
    chat.changes.react("s2", {"messageId": room.id, "emoji": "👍", "on": True})
    chat.changes.react("s1", {"messageId": reply.id, "emoji": "👍", "on": True})
    chat.changes.delete("s1", {"messageId": lobby.id})
    assert chat.calls == ["insert_messages"] * 4


def test_an_older_message_is_looked_up_and_every_check_still_holds(counted, monkeypatch):
    monkeypatch.setattr(Sending, "HEADS", 1)
    chat = counted
    join(chat, "s1", {"name": "alice"})
    join(chat, "s2", {"name": "bob"})
    chat.rooms.join_room("s1", {"room": "#team"})
    chat.rooms.join_room("s2", {"room": "#team"})
    old = chat.sending.send_message("s1", {"content": "first", "destId": "#team"})
    recent = chat.sending.send_message("s1", {"content": "second", "destId": "#team"})
    chat.calls.clear()
    assert chat.changes.edit("s1", {"messageId": old.id, "text": "first!"})["update"][
        "text"] == "first!"
    assert chat.calls == ["insert_messages"]  # the commit checked the room
    chat.calls.clear()
    assert chat.changes.edit("s1", {"messageId": old.id, "text": "@bob first"})["update"][
        "mentions"] == ["bob"]
    assert chat.calls[0] == "message_heads"  # whom it mentions depends on the room
    with pytest.raises(Forbidden):  # the commit checks the author
        chat.changes.edit("s2", {"messageId": recent.id, "text": "mine now"})
    with pytest.raises(NotFound):  # a change's id is no message
        chat.changes.react("s2", {"messageId": recent.id + 1, "emoji": "👍", "on": True})
    chat.rooms.leave_room("s2", {"room": "#team"})
    for message in (old, recent):  # known or looked up: the room is no longer readable
        with pytest.raises(NotFound):
            chat.changes.react("s2", {"messageId": message.id, "emoji": "👍", "on": True})
    chat.changes.delete("s1", {"messageId": recent.id})
    with pytest.raises(Forbidden):  # deleted since it was kept
        chat.changes.react("s1", {"messageId": recent.id, "emoji": "👍", "on": True})


def test_the_commit_refuses_what_the_user_may_not_read(counted, monkeypatch):
    """Changes to messages this node no longer keeps: the commit finds the conversation
    and refuses, as not found, a room the user is not in and other people's DMs."""
    monkeypatch.setattr(Sending, "HEADS", 1)
    chat = counted
    for sid, name in (("s1", "alice"), ("s2", "bob"), ("s3", "carol")):
        join(chat, sid, {"name": name})
    chat.rooms.join_room("s1", {"room": "#team"})
    chat.rooms.join_room("s2", {"room": "#team"})
    in_room = chat.sending.send_message("s2", {"content": "hi team", "destId": "#team"})
    direct = chat.sending.send_message("s1", {"content": "psst", "destId": "bob"})
    lobby = chat.sending.send_lobby("s3", "hello")
    chat.sending.send_lobby("s3", "pushes the others out of the heads kept")
    chat.calls.clear()
    for sid, message in (("s3", in_room), ("s3", direct)):
        with pytest.raises(NotFound):
            chat.changes.react(sid, {"messageId": message.id, "emoji": "👍", "on": True})
    chat.rooms.leave_room("s2", {"room": "#team"})
    with pytest.raises(NotFound):  # its author, no longer in the room
        chat.changes.edit("s2", {"messageId": in_room.id, "text": "edited"})
    assert "message_heads" not in chat.calls
    assert chat.changes.react("s2", {"messageId": direct.id, "emoji": "👍", "on": True})[
        "update"]["conversation"] == "dm:alice:bob"
    assert chat.changes.react("s1", {"messageId": in_room.id, "emoji": "👍", "on": True})[
        "update"]["type"] == "react"
    assert chat.changes.react("s2", {"messageId": lobby.id, "emoji": "👍", "on": True})[
        "update"]["type"] == "react"
