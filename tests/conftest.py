"""Every shared fixture of the suite, registered once: test modules use them by name.

The helpers behind them (the server process, the recording client, the raw Engine.IO
session, the backing services) live in `tests/support/`; test modules import those
explicitly. Fixtures that only one module needs stay in that module.
"""

import os

import pytest
from support.client import CALL_TIMEOUT, TRANSPORTS, ChatClient, disconnect_all
from support.parallel import turn
from support.raw_engineio import RawEngineIO
from support.server import RUNNING, ServerProcess


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the tail of each running server's log: a failure
    that only CI sees can then be read, not guessed."""
    report = yield
    if report.failed:
        for srv in list(RUNNING):
            report.sections.append((f"server on port {srv.port} (last lines)", srv.log_tail()))
    return report


# -- chat servers ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A server shared by the tests that only need one; use unique names in each test.
    Neither sends nor other events are rate limited, and a client may pipeline as many as
    it likes, so tests can seed what they need (hardening/test_budgets.py tests the
    budgets, and the page under them)."""
    srv = ServerProcess(tmp_path_factory.mktemp("server"),
                        env={"RATE_LIMIT": "off", "EVENT_RATE": "off",
                             "EVENT_WINDOW": "1000"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory):
    """A shared server with the default rate limit on (20 sends per 10 s)."""
    srv = ServerProcess(tmp_path_factory.mktemp("limited")).start()
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(tmp_path):
    """Start private servers (own database, own settings) that the test may kill."""
    started = []

    def make(env=None, args=()):
        srv = ServerProcess(tmp_path / f"s{len(started)}", env=env, args=args)
        srv.tmp_path.mkdir(parents=True, exist_ok=True)
        started.append(srv)
        return srv.start()

    yield make
    for srv in started:
        srv.stop()


# -- clients --------------------------------------------------------------------------------

@pytest.fixture(params=TRANSPORTS)
def transport(request):
    """The Socket.IO transport under test: every protocol test runs over both."""
    return request.param


@pytest.fixture
def client_factory():
    """Make unconnected `ChatClient`s that are always disconnected at teardown."""
    made = []

    def make(**client_kwargs):
        c = ChatClient(**client_kwargs)
        made.append(c)
        return c

    yield make
    disconnect_all(made)


@pytest.fixture
def connect(client_factory, transport):
    """connect(url, auth=None, **kw) -> a connected ChatClient over the test's transport."""

    def _connect(url, auth=None, transport=transport, headers=None, timeout=CALL_TIMEOUT,
                 **client_kwargs):
        c = client_factory(**client_kwargs)
        c.connect(url, auth=auth, transport=transport, headers=headers, timeout=timeout)
        return c

    return _connect


@pytest.fixture
def raw_factory():
    """Make `RawEngineIO` sessions that are always closed at teardown."""
    made = []

    def make(url, transport="polling", **kw):
        r = RawEngineIO(url, transport, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# -- real Redis, PostgreSQL and nginx for the scale-out tests ------------------------------

@pytest.fixture(scope="session")
def backing_services():
    """One Redis and one PostgreSQL cluster for the session, or a skip naming what is missing.

    scripts/setup.sh --test installs them; CI always has them."""
    from support import services

    missing = services.available()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing on CI: {missing}")
        pytest.skip(f"not installed: {missing}")
    redis_server = services.RedisServer().start()
    postgres = services.PostgresServer().start()
    yield redis_server, postgres
    redis_server.cleanup()
    postgres.cleanup()


@pytest.fixture
def cluster(backing_services, server_factory):
    """`cluster(n)` starts n chat nodes sharing a fresh PostgreSQL database and Redis."""
    redis_server, postgres = backing_services
    redis_server.proc and redis_server.proc.poll() is not None and redis_server.start()
    flush = __import__("redis").Redis.from_url(redis_server.url)
    flush.flushall()
    flush.close()
    database_url = postgres.create_database()

    def start(n=2, env=None):
        nodes = []
        for i in range(n):
            node_env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server.url,
                        "RATE_LIMIT": "off", "PRESENCE_TTL": "3", "NODE_NAME": f"node{i + 1}"}
            node_env.update(env or {})
            nodes.append(server_factory(env=node_env))
        return nodes

    start.redis = redis_server
    start.database_url = database_url
    return start


# -- parallel runs --------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _alone_when_marked(request, tmp_path_factory):
    """Under pytest-xdist, a test marked `alone` runs while no other test runs."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, common to its workers
    with turn(shared, alone=request.node.get_closest_marker("alone") is not None):
        yield
