"""Alembic migrations of the store's schema (SQLite and PostgreSQL alike): `schema.migrate`
runs them at start, in the transaction that holds the schema lock."""
