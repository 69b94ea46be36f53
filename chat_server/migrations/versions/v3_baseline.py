"""The schema as it stood before migrations were managed by Alembic (the store's own
`meta.schema` 3): users, sign-in sessions, rooms and their members, direct conversations,
messages.

A database from before is stamped with this revision by `schema.migrate` (after the old
in-code upgrades, if it is older still); a new database is created from here.
"""

import sqlalchemy as sa
from alembic import op

revision = "v3_baseline"
down_revision = None
branch_labels = None
depends_on = None

MessageId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False))
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False, unique=True),
        sa.Column("guest", sa.Boolean, nullable=False),
        sa.Column("gone", sa.Boolean, nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("skeleton", sa.String(512)))
    op.create_index("ix_users_skeleton", "users", ["skeleton"])
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("used_at", sa.BigInteger))
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    op.create_table(
        "rooms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False, unique=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id")),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("created_at", sa.BigInteger, nullable=False))
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.UniqueConstraint("room_id", "user_id"))
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "dm_members",
        sa.Column("conv_key", sa.String(300), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True))
    op.create_index("ix_dm_members_user_id", "dm_members", ["user_id"])
    op.create_table(
        "messages",
        sa.Column("id", MessageId, primary_key=True, autoincrement=True),
        sa.Column("conv_key", sa.String(300), nullable=False),
        sa.Column("conversation", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_user_id", sa.Integer, nullable=False),
        sa.Column("from_name", sa.String(64), nullable=False),
        sa.Column("from_sid", sa.String(64), nullable=False),
        sa.Column("to_name", sa.String(64)),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("client_id", sa.String(64)),
        sa.UniqueConstraint("from_user_id", "client_id", name="uq_messages_client_id"),
        sqlite_autoincrement=True)
    op.create_index("ix_messages_conv_id", "messages", ["conv_key", "id"])
    op.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema', '3')"))


def downgrade() -> None:
    for table in ("messages", "dm_members", "memberships", "rooms", "sessions", "users",
                  "meta"):
        op.drop_table(table)
