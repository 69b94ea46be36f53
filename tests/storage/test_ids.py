"""Message ids (docs/protocol.md §3): one batch's messages and changes get increasing ids
in the order they were submitted, and an id is never given twice, not even after the
newest messages were deleted (a closed room) and the store reopened. On both engines:
SQLite's ids are given by the store itself (`MessageStore._insert_rows`)."""

import sqlalchemy as sa

from chat_server import schema
from chat_server.domain.models import NewChange, NewMessage
from chat_server.store import Store


def message(text, conv="lobby"):
    return NewMessage(conv_key=conv, conversation=conv, kind="broadcast", from_user_id=1,
                      from_name="u1", from_sid="s", to=None, to_user_id=None, text=text,
                      ts=1, client_id=None)


def opened(url):
    store = Store(url)
    store.create_schema()
    return store


def test_ids_follow_the_batch_and_never_come_back(new_url):
    url = new_url()
    store = opened(url)
    with store.engine.begin() as conn:
        conn.execute(schema.users.insert().values(id=1, name="u1", key="u1", guest=False,
                                                  created_at=1, skeleton="u1"))
    first = store.insert_messages([message(f"m{n}") for n in range(5)])
    ids = [result[0].id for result in first]
    assert ids == sorted(ids) and len(set(ids)) == 5
    stored = {m.id: m.text for m in store.messages_after(0, 100)}
    assert [stored[i] for i in ids] == [f"m{n}" for n in range(5)]  # each id its own row
    mixed = store.insert_messages([message("m5"), NewChange(ids[0], "edit", 1, "u1", "s", 2,
                                                            text="m0 again"),
                                   message("m6")])
    later = [result[0].id for result in mixed]
    assert later == sorted(later) and later[0] > ids[-1]
    with store.engine.begin() as conn:  # the newest rows go, as a closed room's would
        conn.execute(schema.messages.delete().where(schema.messages.c.id >= ids[2]))
    store.close()
    store = opened(url)
    [(fresh, _)] = store.insert_messages([message("after")])
    assert fresh.id > later[-1]
    with store.engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.messages)
                            ).scalar() == 3  # m0, m1 and "after"
    store.close()
