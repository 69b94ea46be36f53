"""The database's tables, and how a database is brought up to date.

One schema for SQLite and PostgreSQL (SQLAlchemy Core). The tables below describe the
newest schema, for building queries; the schema itself is made and changed only by the
Alembic migrations in `migrations/versions`, which `migrate` runs at start. Databases from
before Alembic (the store's own `meta.schema` 1-3) are brought to 3 by the code below,
stamped as the baseline revision, and migrated on from there.
"""

import logging

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from .domain.names import skeleton
from .domain.validation import dm_key

logger = logging.getLogger(__name__)

# 2: `dm:` keys name the users lower-cased ("straße"), no longer by their casefolded keys
# ("strasse"); a version 1 database has its direct conversations renamed at start.
# 3: `users.skeleton` (confusable names), `sessions.used_at` (tokens expire unused), and
# guests who are gone are deleted instead of kept.
# 4 (Alembic revision `messages_that_change`): docs/protocol.md §8-9. Kept in `meta` so
# that an older server refuses a newer database instead of misreading it.
# 5 (revision `moderation`): docs/protocol.md §10.
# 6 (revision `bots`): `users.bot`, docs/protocol.md §12.
# 7 (revision `search_scope`): SQLite's full-text index also names each message's
# conversation, so that search filters its scope inside the index (§9.4).
SCHEMA_VERSION = 7
BASELINE = "v3_baseline"  # the Alembic revision of schema 3
# Message ids are 64-bit; SQLite's rowid alias must be spelled INTEGER.
MessageId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Serialises message inserts across nodes on PostgreSQL, so ids commit in id order and a
# reader who saw id N never later finds a smaller id appear (see insert_messages).
MESSAGE_LOCK = 7_310_001

metadata = sa.MetaData()

meta = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("key", sa.String(128), nullable=False, unique=True),
    sa.Column("guest", sa.Boolean, nullable=False),
    # Schema 2 kept gone guests with gone=true; since 3 they are deleted (their random
    # names are never drawn again), so the column is always false.
    sa.Column("gone", sa.Boolean, nullable=False, default=False),
    sa.Column("password_hash", sa.String(255)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # The name's confusable skeleton (`domain.names.skeleton`): a name that looks like a
    # registered one is refused.
    sa.Column("skeleton", sa.String(512), index=True),
    # A bot account (`python -m chat_server bot add`): its tokens never expire, and only
    # bots may use the HTTP API (docs/protocol.md §12).
    sa.Column("bot", sa.Boolean, nullable=False, server_default=sa.false()),
)

sessions = sa.Table(
    "sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("used_at", sa.BigInteger),  # last sign-in with it; unused for TOKEN_TTL: expired
)

rooms = sa.Table(
    "rooms", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("key", sa.String(128), nullable=False, unique=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("users.id")),
    sa.Column("password_hash", sa.String(255)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# `id` orders members by seniority: an owner who leaves hands over to the lowest id.
memberships = sa.Table(
    "memberships", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
    # Schema 5 (§10): "member" or "moderator"; the owner is `rooms.owner_id`.
    sa.Column("role", sa.String(16), nullable=False, server_default="member"),
    sa.UniqueConstraint("room_id", "user_id"),
)

# The direct conversations each user takes part in, for welcome and replay.
dm_members = sa.Table(
    "dm_members", metadata,
    sa.Column("conv_key", sa.String(300), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True, index=True),
)

messages = sa.Table(
    "messages", metadata,
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
    # Schema 4 (§8): what it replies to, when it was last edited, whether it was deleted
    # (text ""), the names it mentions (JSON). A row of kind "update" is a change to the
    # message `target_id`: `change` edit/delete/react/unreact, with `text` or `emoji`.
    sa.Column("reply_to", MessageId),
    sa.Column("edited_at", sa.BigInteger),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("mentions", sa.Text),
    sa.Column("target_id", MessageId),
    sa.Column("change", sa.String(16)),
    sa.Column("emoji", sa.String(64)),
    # Covers what counting unread messages reads (§9.2): no row lookups.
    sa.Index("ix_messages_conv", "conv_key", "id", "kind", "deleted", "from_user_id"),
    sa.UniqueConstraint("from_user_id", "client_id", name="uq_messages_client_id"),
    # AUTOINCREMENT: ids of deleted rooms' messages are never reused, so ids only grow.
    sqlite_autoincrement=True,
)


reactions = sa.Table(
    "reactions", metadata,
    sa.Column("message_id", MessageId, sa.ForeignKey("messages.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("emoji", sa.String(64), primary_key=True),
    sa.Column("ts", sa.BigInteger, nullable=False),
)

read_markers = sa.Table(
    "read_markers", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("conv_key", sa.String(300), primary_key=True),
    sa.Column("last_read", MessageId, nullable=False),
)

mentions = sa.Table(
    "mentions", metadata,
    sa.Column("message_id", MessageId, sa.ForeignKey("messages.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("conv_key", sa.String(300), nullable=False),
    sa.Index("ix_mentions_user_conv", "user_id", "conv_key", "message_id"),
)


room_bans = sa.Table(
    "room_bans", metadata,
    sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("by_name", sa.String(64), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
)

room_mutes = sa.Table(
    "room_mutes", metadata,
    sa.Column("room_id", sa.Integer, sa.ForeignKey("rooms.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("until", sa.BigInteger, nullable=False),  # ms since the epoch
)

user_bans = sa.Table(
    "user_bans", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("by_name", sa.String(64), nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False, index=True),
)

blocks = sa.Table(
    "blocks", metadata,
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("blocked_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
)


# What a database from before Alembic may lack (tables came and went with the code then).
LEGACY_TABLES = (users, sessions, rooms, memberships, dm_members, messages)


def migrate(conn: sa.Connection) -> None:
    """Bring the database to the newest schema, in the caller's transaction."""
    tables = set(sa.inspect(conn).get_table_names())
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", "chat_server:migrations")
    alembic.attributes["connection"] = conn
    version = None
    if "meta" in tables:
        version = int(conn.execute(sa.select(meta.c.value)
                                   .where(meta.c.key == "schema")).scalar() or 3)
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"database schema {version} is newer than this server")
    if version is not None and version < 3:
        # Before Alembic: make the tables the upgrades below read (a messages table made
        # now already has the columns of schema 4: the migration adds only what lacks).
        missing = [t for t in LEGACY_TABLES if t.name not in tables]
        metadata.create_all(conn, tables=missing)
        if version < 2:
            logger.info("schema 1 -> 2: %d direct conversations renamed", rename_dm_keys(conn))
        logger.info("schema 2 -> 3: %d gone guests deleted", upgrade_to_3(conn))
        conn.execute(meta.update().where(meta.c.key == "schema").values(value="3"))
    if "meta" in tables and "alembic_version" not in tables:
        command.stamp(alembic, BASELINE)
    before = MigrationContext.configure(conn).get_current_revision()
    command.upgrade(alembic, "head")
    after = MigrationContext.configure(conn).get_current_revision()
    if after != before:
        logger.info("database schema upgraded: %s -> %s", before or "empty", after)
    conn.execute(meta.update().where(meta.c.key == "schema")
                 .values(value=str(SCHEMA_VERSION)))


def rename_dm_keys(conn: sa.Connection) -> int:
    """Schema 1 -> 2: `dm:k1:k2` named the users by their keys (casefolded); rename each
    direct conversation to `dm_key` of its users' names. ASCII names keep their keys."""
    old_keys = set(conn.execute(sa.select(dm_members.c.conv_key).distinct()).scalars())
    old_keys |= set(conn.execute(sa.select(messages.c.conv_key).distinct()
                                 .where(messages.c.kind == "direct")).scalars())
    pairs = {key: key.split(":")[1:] for key in old_keys if key.count(":") == 2}
    wanted = sorted({part for pair in pairs.values() for part in pair})
    names: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        names.update(conn.execute(sa.select(users.c.key, users.c.name)
                                  .where(users.c.key.in_(wanted[start:start + 500]))).all())
    renamed = 0
    for old, (first, second) in sorted(pairs.items()):
        if first not in names or second not in names:
            continue
        new = dm_key(names[first], names[second])
        if new == old:
            continue
        conn.execute(messages.update().where(messages.c.conv_key == old)
                     .values(conv_key=new, conversation=new))
        taken = sa.select(dm_members.c.user_id).where(dm_members.c.conv_key == new)
        conn.execute(dm_members.delete().where(dm_members.c.conv_key == old,
                                               dm_members.c.user_id.in_(taken)))
        conn.execute(dm_members.update().where(dm_members.c.conv_key == old)
                     .values(conv_key=new))
        renamed += 1
    return renamed


def sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def upgrade_to_3(conn: sa.Connection) -> int:
    """Schema 2 -> 3: add the skeleton and used_at columns (filled in), and delete the
    guests kept as gone. Returns how many gone guests were deleted."""
    inspector = sa.inspect(conn)
    if "skeleton" not in {c["name"] for c in inspector.get_columns("users")}:
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN skeleton VARCHAR(512)"))
    if "ix_users_skeleton" not in {i["name"] for i in inspector.get_indexes("users")}:
        conn.execute(sa.text("CREATE INDEX ix_users_skeleton ON users (skeleton)"))
    if "used_at" not in {c["name"] for c in inspector.get_columns("sessions")}:
        conn.execute(sa.text("ALTER TABLE sessions ADD COLUMN used_at BIGINT"))
    conn.execute(sessions.update().values(used_at=sessions.c.created_at))
    for user_id, name in conn.execute(sa.select(users.c.id, users.c.name)).all():
        conn.execute(users.update().where(users.c.id == user_id)
                     .values(skeleton=skeleton(name)))
    gone = sa.select(users.c.id).where(users.c.gone.is_(True))
    conn.execute(messages.update().where(messages.c.from_user_id.in_(gone))
                 .values(client_id=None))
    conn.execute(rooms.update().where(rooms.c.owner_id.in_(gone)).values(owner_id=None))
    conn.execute(dm_members.delete().where(dm_members.c.user_id.in_(gone)))
    conn.execute(sessions.delete().where(sessions.c.user_id.in_(gone)))
    conn.execute(memberships.delete().where(memberships.c.user_id.in_(gone)))
    return conn.execute(users.delete().where(users.c.gone.is_(True))).rowcount
