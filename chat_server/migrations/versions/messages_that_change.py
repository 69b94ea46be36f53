"""Messages that change, read state, mentions and search (docs/protocol.md §8-9).

- `messages` also holds the changes (`kind` "update": an edit, a deletion, a reaction),
  so that messages and changes share one id sequence, one order and one replay; a message
  row keeps its current state (`edited_at`, `deleted`, its text) and what it replies to
  and who it mentions.
- `reactions`: who reacted with what, for the current state of each message.
- `read_markers`: how far each user has read each conversation.
- `mentions`: who each message mentions, indexed to count a user's unread mentions.
- The full-text index: SQLite FTS5 over the messages' text, kept in step by triggers (in
  the writing transaction); PostgreSQL a generated `tsvector` column with a GIN index.
"""

import sqlalchemy as sa
from alembic import op

revision = "messages_that_change"
down_revision = "v3_baseline"
branch_labels = None
depends_on = None

MessageId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SQLITE_SEARCH = [
    # prefix='2 3': indexes of 2- and 3-letter prefixes, so that a last word typed short
    # ("de" for "deploy") does not expand into every term of the index.
    "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind != 'update' "
    "BEGIN INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind != 'update' "
    "BEGIN INSERT INTO messages_fts(messages_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages "
    "WHEN old.kind != 'update' BEGIN "
    "INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages WHERE kind != 'update'",
]

POSTGRES_SEARCH = [
    "ALTER TABLE messages ADD COLUMN search tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED",
    "CREATE INDEX ix_messages_search ON messages USING GIN (search)",
]


def upgrade() -> None:
    # A database from before Alembic whose messages table was made at the upgrade to the
    # baseline already has these columns (`schema.migrate`).
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("messages")}
    columns: list[sa.Column] = [
        sa.Column("reply_to", MessageId),
        sa.Column("edited_at", sa.BigInteger),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("mentions", sa.Text),  # JSON list of names, or null
        sa.Column("target_id", MessageId),  # an update's message
        sa.Column("change", sa.String(16)),  # edit/delete/react/unreact
        sa.Column("emoji", sa.String(64)),
    ]
    for column in columns:  # plain ALTER TABLE: a copied SQLite table would lose AUTOINCREMENT
        if column.name not in present:
            op.add_column("messages", column)
    # Replaces (conv_key, id): the same order, and counting a conversation's unread
    # messages (kind, deleted, author) reads the index alone, never the rows (§9.2).
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("messages")}
    if "ix_messages_conv" not in indexes:
        op.create_index("ix_messages_conv", "messages",
                        ["conv_key", "id", "kind", "deleted", "from_user_id"])
    if "ix_messages_conv_id" in indexes:
        op.drop_index("ix_messages_conv_id", "messages")
    op.create_table(
        "reactions",
        sa.Column("message_id", MessageId, sa.ForeignKey("messages.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("emoji", sa.String(64), primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False))
    op.create_table(
        "read_markers",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("conv_key", sa.String(300), primary_key=True),
        sa.Column("last_read", MessageId, nullable=False))
    op.create_table(
        "mentions",
        sa.Column("message_id", MessageId, sa.ForeignKey("messages.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("conv_key", sa.String(300), nullable=False))
    op.create_index("ix_mentions_user_conv", "mentions", ["user_id", "conv_key", "message_id"])
    statements = SQLITE_SEARCH if op.get_bind().dialect.name == "sqlite" else POSTGRES_SEARCH
    for statement in statements:
        op.execute(sa.text(statement))
    op.execute(sa.text("UPDATE meta SET value = '4' WHERE key = 'schema'"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(sa.text(f"DROP TRIGGER messages_fts_{trigger}"))
        op.execute(sa.text("DROP TABLE messages_fts"))
    else:
        op.execute(sa.text("DROP INDEX ix_messages_search"))
        op.execute(sa.text("ALTER TABLE messages DROP COLUMN search"))
    for table in ("mentions", "read_markers", "reactions"):
        op.drop_table(table)
    op.create_index("ix_messages_conv_id", "messages", ["conv_key", "id"])
    op.drop_index("ix_messages_conv", "messages")
    for column in ("emoji", "change", "target_id", "mentions", "deleted", "edited_at",
                   "reply_to"):
        op.drop_column("messages", column)
    op.execute(sa.text("UPDATE meta SET value = '3' WHERE key = 'schema'"))
