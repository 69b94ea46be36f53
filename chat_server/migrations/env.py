"""Alembic's environment: always the connection `schema.migrate` hands over (in
`config.attributes`), never a URL of its own, so a migration runs inside the caller's
transaction and lock."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
context.run_migrations()
