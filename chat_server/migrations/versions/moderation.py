"""Moderation and blocks (docs/protocol.md §10): room roles, room bans and mutes, users
banned from the server, and who blocks whom.
"""

import sqlalchemy as sa
from alembic import op

revision = "moderation"
down_revision = "messages_that_change"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("memberships")}
    if "role" not in present:  # `member` or `moderator`; the owner is rooms.owner_id
        op.add_column("memberships", sa.Column("role", sa.String(16), nullable=False,
                                               server_default="member"))
    op.create_table(
        "room_bans",
        sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("by_name", sa.String(64), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False))
    op.create_table(
        "room_mutes",
        sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("until", sa.BigInteger, nullable=False))
    op.create_table(
        "user_bans",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("by_name", sa.String(64), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False))
    op.create_index("ix_user_bans_ts", "user_bans", ["ts"])
    op.create_table(
        "blocks",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("blocked_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  primary_key=True))
    op.execute(sa.text("UPDATE meta SET value = '5' WHERE key = 'schema'"))


def downgrade() -> None:
    for table in ("blocks", "user_bans", "room_mutes", "room_bans"):
        op.drop_table(table)
    op.drop_column("memberships", "role")
    op.execute(sa.text("UPDATE meta SET value = '4' WHERE key = 'schema'"))
