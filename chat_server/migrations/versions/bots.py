"""Bot accounts (docs/protocol.md §12): `users.bot` marks a user made by `python -m
chat_server bot add`; its tokens do not expire and it may use the HTTP API.
"""

import sqlalchemy as sa
from alembic import op

revision = "bots"
down_revision = "moderation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("users")}
    if "bot" not in present:
        op.add_column("users", sa.Column("bot", sa.Boolean, nullable=False,
                                         server_default=sa.false()))
    op.execute(sa.text("UPDATE meta SET value = '6' WHERE key = 'schema'"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("bot")
    op.execute(sa.text("UPDATE meta SET value = '5' WHERE key = 'schema'"))
