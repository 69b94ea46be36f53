"""What the storage tests share: the engines they run on."""

import itertools

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def new_url(request, tmp_path):
    """Makes empty databases of one engine, each test once per engine: SQLite files under
    `tmp_path`, or databases of the suite's PostgreSQL server (started on first use)."""
    if request.param == "sqlite":
        numbers = itertools.count()
        return lambda: f"sqlite:///{tmp_path}/db{next(numbers)}.db"
    _, postgres = request.getfixturevalue("backing_services")
    return postgres.create_database
