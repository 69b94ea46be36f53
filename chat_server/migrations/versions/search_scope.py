"""Search scoped inside the full-text index (docs/protocol.md §9.4), SQLite only.

The FTS5 table gains a column `conv`: one token per message naming its conversation (the
hex digits of the key's UTF-8, so any key is one token and no two keys share one). A
search within a few conversations, or one whose scope holds few of the matches, then
lets the index intersect the words with the conversations instead of walking every match
of the words (a common word in a DM walked 15,000-45,000 matches at a million messages:
50-140 ms). The table becomes contentless (`content=''`, `columnsize=0`): its rows were
never read, only its index; the triggers hand it the values to delete. PostgreSQL is
unchanged (its `tsvector` index is filtered by the planner).
"""

import sqlalchemy as sa
from alembic import op

revision = "search_scope"
down_revision = "bots"
branch_labels = None
depends_on = None

TOKENIZE = "tokenize='unicode61 remove_diacritics 2', prefix='2 3'"
DROP = ["DROP TRIGGER messages_fts_insert", "DROP TRIGGER messages_fts_delete",
        "DROP TRIGGER messages_fts_update", "DROP TABLE messages_fts"]

UPGRADE = [
    *DROP,
    "CREATE VIRTUAL TABLE messages_fts USING fts5(text, conv, content='', columnsize=0, "
    f"{TOKENIZE})",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind != 'update' "
    "BEGIN INSERT INTO messages_fts(rowid, text, conv) "
    "VALUES (new.id, new.text, hex(new.conv_key)); END",
    # A contentless index forgets exactly what it is told: the old values, as inserted.
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind != 'update' "
    "BEGIN INSERT INTO messages_fts(messages_fts, rowid, text, conv) "
    "VALUES ('delete', old.id, old.text, hex(old.conv_key)); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, conv_key ON messages "
    "WHEN old.kind != 'update' BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text, conv) "
    "VALUES ('delete', old.id, old.text, hex(old.conv_key)); "
    "INSERT INTO messages_fts(rowid, text, conv) "
    "VALUES (new.id, new.text, hex(new.conv_key)); END",
    "INSERT INTO messages_fts(rowid, text, conv) "
    "SELECT id, text, hex(conv_key) FROM messages WHERE kind != 'update'",
]

# The index of revision `messages_that_change`.
DOWNGRADE = [
    *DROP,
    "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', "
    f"content_rowid='id', {TOKENIZE})",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind != 'update' "
    "BEGIN INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind != 'update' "
    "BEGIN INSERT INTO messages_fts(messages_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages "
    "WHEN old.kind != 'update' BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in UPGRADE:
            op.execute(sa.text(statement))
    op.execute(sa.text("UPDATE meta SET value = '7' WHERE key = 'schema'"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in DOWNGRADE:
            op.execute(sa.text(statement))
    op.execute(sa.text("UPDATE meta SET value = '6' WHERE key = 'schema'"))
