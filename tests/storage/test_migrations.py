"""Schema migrations (Alembic): a database written by the version before them (schema 3,
no `alembic_version`) is upgraded in place on SQLite and PostgreSQL, keeping every row;
a new database is made by the same revisions; a downgrade and upgrade round-trips."""

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from chat_server import schema
from chat_server.store import Store


def alembic_config(conn):
    config = AlembicConfig()
    config.set_main_option("script_location", "chat_server:migrations")
    config.attributes["connection"] = conn
    return config


def write_schema_3(url):
    """A database as the server before Alembic left it: schema 3 and some chat."""
    store = Store(url)  # its engine (driver, pragmas), not its schema
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), schema.BASELINE)
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(sa.text(
            "INSERT INTO users (id, name, key, guest, gone, created_at, skeleton) VALUES "
            "(1, 'Ann', 'ann', false, false, 1, 'ann'), (2, 'Bob', 'bob', false, false, 1, 'bob')"))
        conn.execute(sa.text(
            "INSERT INTO rooms (id, name, key, owner_id, created_at) VALUES "
            "(1, '#Team', '#team', 1, 1)"))
        conn.execute(sa.text("INSERT INTO memberships (room_id, user_id) VALUES (1, 1), (1, 2)"))
        conn.execute(sa.text("INSERT INTO dm_members (conv_key, user_id) VALUES "
                             "('dm:ann:bob', 1), ('dm:ann:bob', 2)"))
        for n, (conv, kind, text) in enumerate([
                ("lobby", "broadcast", "hello everyone"),
                ("#team", "room", "the deploy is green"),
                ("dm:ann:bob", "direct", "lunch at noon?"),
                ("lobby", "broadcast", "deleted before the upgrade")], start=1):
            conn.execute(sa.text(
                "INSERT INTO messages (id, conv_key, conversation, kind, from_user_id, "
                "from_name, from_sid, text, ts) VALUES (:id, :conv, :conv, :kind, 1, 'Ann', "
                "'sid', :text, 1000)"), {"id": n, "conv": conv, "kind": kind, "text": text})
        conn.execute(sa.text("DELETE FROM messages WHERE id = 4"))
    store.close()


def search_ids(conn, word):
    if conn.dialect.name == "sqlite":
        query = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH :q ORDER BY rowid"
        return list(conn.execute(sa.text(query), {"q": word}).scalars())
    query = ("SELECT id FROM messages WHERE search @@ to_tsquery('simple', :q) ORDER BY id")
    return list(conn.execute(sa.text(query), {"q": word}).scalars())


def check_upgraded(url):
    store = Store(url)
    store.create_schema()
    with store.engine.begin() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == \
            "search_scope"
        assert conn.execute(sa.select(schema.meta.c.value)).scalar() == "7"
        rows = conn.execute(sa.select(schema.messages.c.id, schema.messages.c.text,
                                      schema.messages.c.deleted, schema.messages.c.reply_to)
                            .order_by(schema.messages.c.id)).all()
        assert [(r.id, r.text, r.deleted, r.reply_to) for r in rows] == [
            (1, "hello everyone", False, None), (2, "the deploy is green", False, None),
            (3, "lunch at noon?", False, None)]
        assert search_ids(conn, "deploy") == [2]  # old messages are in the new index
    assert [m.text for m in store.history("dm:ann:bob")] == ["lunch at noon?"]
    assert store.rooms_of(2)[0].name == "#Team"
    fresh = store.insert_messages([])
    assert fresh == []
    store.close()
    return store


def test_a_schema_3_sqlite_database_is_upgraded_in_place(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    write_schema_3(url)
    check_upgraded(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # AUTOINCREMENT survived: id 4 is never given again
        assert conn.execute(sa.text(
            "SELECT seq FROM sqlite_sequence WHERE name = 'messages'")).scalar() == 4
    engine.dispose()


def test_a_schema_3_postgresql_database_is_upgraded_in_place(backing_services):
    _, postgres = backing_services
    url = postgres.create_database()
    write_schema_3(url)
    check_upgraded(url)


@pytest.mark.parametrize("engine_kind", ["sqlite", "postgresql"])
def test_new_databases_downgrade_and_upgrade_again(tmp_path, engine_kind, request):
    if engine_kind == "sqlite":
        url = f"sqlite:///{tmp_path}/new.db"
    else:
        _, postgres = request.getfixturevalue("backing_services")
        url = postgres.create_database()
    store = Store(url)
    store.create_schema()
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), schema.BASELINE)
        assert "reactions" not in sa.inspect(conn).get_table_names()
        command.upgrade(alembic_config(conn), "head")
        assert {"reactions", "read_markers", "mentions"} <= set(
            sa.inspect(conn).get_table_names())
    store.close()


def test_a_database_newer_than_the_server_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/future.db"
    store = Store(url)
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(schema.meta.update().values(value="99"))
    with pytest.raises(RuntimeError, match="newer than this server"):
        store.create_schema()
    store.close()
