"""Refusals the group commit makes in its own transaction, so that a send or a change
needs no store call before it. Moderation's (docs/protocol.md §10.2, §10.5): a DM to
someone who blocks the sender is `Blocked`, a room message from a member muted there is
`Muted`, while the others of the same batch are stored; a retry of a clientId accepted
before the block keeps its original. Reading's (§8): a change asking the commit to check
(`check_readable`) is not found when its user may not read the message's conversation.
On both engines."""

import pytest

from chat_server import schema
from chat_server.domain.errors import Blocked, Muted, NotFound
from chat_server.domain.models import Message, NewChange, NewMessage
from chat_server.store import Store

ALICE, BOB, CAROL = 1, 2, 3
NOW = 1_000_000


@pytest.fixture
def store(new_url):
    store = Store(new_url())
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(schema.users.insert(), [
            {"id": n, "name": name, "key": name, "guest": False, "created_at": 1,
             "skeleton": name} for n, name in ((ALICE, "alice"), (BOB, "bob"),
                                               (CAROL, "carol"))])
    yield store
    store.close()


def dm(sender, recipient, text="hi", client_id=None, ts=NOW):
    names = {ALICE: "alice", BOB: "bob", CAROL: "carol"}
    key = "dm:" + ":".join(sorted((names[sender], names[recipient])))
    return NewMessage(conv_key=key, conversation=key, kind="direct", from_user_id=sender,
                      from_name=names[sender], from_sid="s", to=names[recipient],
                      to_user_id=recipient, text=text, ts=ts, client_id=client_id,
                      check_blocks=True)


def in_room(room, sender, text="hi", ts=NOW):
    return NewMessage(conv_key=room.key, conversation=room.name, kind="room",
                      from_user_id=sender, from_name="x", from_sid="s", to=room.name,
                      to_user_id=None, text=text, ts=ts, client_id=None,
                      mute_room_id=room.id)


def test_a_dm_to_a_blocker_is_refused_and_the_rest_of_the_batch_is_stored(store):
    store.block(BOB, ALICE, True)
    results = store.insert_messages([dm(ALICE, BOB, "one"), dm(CAROL, BOB, "two"),
                                     dm(BOB, ALICE, "three")])
    assert isinstance(results[0], Blocked) and results[0].code == "forbidden"
    assert [r[0].text for r in results[1:]] == ["two", "three"]  # the blocker may write
    assert [m.text for m in store.messages_after(0, 10)] == ["two", "three"]


def test_a_block_is_checked_only_when_the_send_asks_for_it(store):
    store.block(BOB, ALICE, True)
    unchecked = dm(ALICE, BOB)
    unchecked = NewMessage(**{**unchecked.__dict__, "check_blocks": False})
    [(message, duplicate)] = store.insert_messages([unchecked])  # v1 rules: no blocks
    assert isinstance(message, Message) and not duplicate


def test_a_lifted_block_lets_the_dm_through(store):
    store.block(BOB, ALICE, True)
    store.block(BOB, ALICE, False)
    [(message, _)] = store.insert_messages([dm(ALICE, BOB)])
    assert message.to == "bob"


def test_a_retry_of_a_message_accepted_before_the_block_gets_its_original(store):
    [(original, _)] = store.insert_messages([dm(ALICE, BOB, client_id="c1")])
    store.block(BOB, ALICE, True)
    [(again, duplicate), refused] = store.insert_messages(
        [dm(ALICE, BOB, client_id="c1"), dm(ALICE, BOB, client_id="c2")])
    assert duplicate and again.id == original.id
    assert isinstance(refused, Blocked)


def test_a_muted_member_is_refused_until_the_mute_ends(store):
    room = store.create_room("#Den", "#den", ALICE, None)
    store.add_member(room.id, BOB)
    store.mute(room.id, BOB, NOW + 5_000)
    results = store.insert_messages([in_room(room, BOB, "muted"), in_room(room, ALICE, "ok"),
                                     in_room(room, BOB, "later", ts=NOW + 5_000)])
    assert isinstance(results[0], Muted) and results[0].code == "forbidden"
    assert [r[0].text for r in results[1:]] == ["ok", "later"]  # the mute ended at `until`
    store.mute(room.id, BOB, None)
    [(message, _)] = store.insert_messages([in_room(room, BOB, "free")])
    assert message.text == "free"


def test_a_mute_in_one_room_does_not_reach_another(store):
    den = store.create_room("#Den", "#den", ALICE, None)
    hall = store.create_room("#Hall", "#hall", ALICE, None)
    for room in (den, hall):
        store.add_member(room.id, BOB)
    store.mute(den.id, BOB, NOW + 5_000)
    refused, (stored, _) = store.insert_messages([in_room(den, BOB), in_room(hall, BOB)])
    assert isinstance(refused, Muted)
    assert stored.conversation == "#Hall"


def test_a_change_is_refused_where_its_user_may_not_read(store):
    room = store.create_room("#Den", "#den", ALICE, None)
    [(den, _), (direct, _), (lobby, _)] = store.insert_messages([
        in_room(room, ALICE, "in the den"), dm(ALICE, BOB, "psst"),
        NewMessage(conv_key="lobby", conversation="lobby", kind="broadcast",
                   from_user_id=CAROL, from_name="carol", from_sid="s", to=None,
                   to_user_id=None, text="hello", ts=NOW, client_id=None)])
    assert den.conv_key == room.key

    def react(user, name, message):
        return NewChange(message.id, "react", user, name, "s", NOW, emoji="👍",
                         check_readable=True)

    results = store.insert_messages([
        react(BOB, "bob", den), react(CAROL, "carol", direct),  # refused
        react(ALICE, "alice", den), react(BOB, "bob", direct), react(BOB, "bob", lobby)])
    assert [type(r) for r in results[:2]] == [NotFound, NotFound]
    assert [r[0].conversation for r in results[2:]] == ["#Den", "dm:alice:bob", "lobby"]
    unchecked = NewChange(den.id, "react", CAROL, "carol", "s", NOW, emoji="👍")
    [(update, _)] = store.insert_messages([unchecked])  # the domain checked it already
    assert update.target_id == den.id
