"""Data tools on a database of a million messages (issue 17): `export` streams JSON lines
in constant memory, and retention (`RETENTION_DAYS`) prunes old messages in the
background, in small batches, while the server keeps answering."""

import json
import resource
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from support import ROOT
from support.checks import ok
from support.names import uname
from support.server import ServerProcess

from chat_server.store import Store

MILLION = 1_000_000
DAY_MS = 86_400_000


def fill(url, count, old, now_ms):
    """`count` messages in 11 conversations, the first `old` of them 30 days old; built in
    SQL (the full-text index's triggers run for each row, as for real sends)."""
    store = Store(url)
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(sa.text("""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
            INSERT INTO messages (conv_key, conversation, kind, from_user_id, from_name,
                                  from_sid, text, ts)
            SELECT CASE WHEN i % 11 = 0 THEN 'lobby' ELSE '#room' || (i % 11) END,
                   CASE WHEN i % 11 = 0 THEN 'lobby' ELSE '#room' || (i % 11) END,
                   CASE WHEN i % 11 = 0 THEN 'broadcast' ELSE 'room' END,
                   1, 'ann', 'sid', 'message number ' || i,
                   CASE WHEN i <= :old THEN :then ELSE :now END
            FROM n"""), {"count": count, "old": old, "then": now_ms - 30 * DAY_MS,
                         "now": now_ms})
    store.close()


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    path = tmp_path_factory.mktemp("million") / "chat.db"
    fill(f"sqlite:///{path}", MILLION, 30_000, int(time.time() * 1000))
    return path


def run_export(path, out, *extra):
    """Run the export command; returns (its exit code, its peak RSS in KB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-m", "chat_server", "export", "--out", str(out),
                           "--database-url", f"sqlite:///{path}", *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return proc, max(peak, before)


def test_export_streams_a_million_messages_in_constant_memory(million, tmp_path):
    small = tmp_path / "small.db"
    fill(f"sqlite:///{small}", 5_000, 0, int(time.time() * 1000))
    proc, small_peak = run_export(small, tmp_path / "small.jsonl")
    assert proc.returncode == 0, proc.stderr
    proc, peak = run_export(million, tmp_path / "all.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"chat_server export: {MILLION} messages"
    # ru_maxrss of children is the largest child so far: a million messages may not cost
    # more than a few MB beyond five thousand (each page is dropped before the next).
    assert peak < small_peak + 40_000, (small_peak, peak)
    with open(tmp_path / "all.jsonl", encoding="utf-8") as lines:
        first = json.loads(next(lines))
        count, last = 1, first
        for line in lines:
            count += 1
            last = line
    last = json.loads(last)
    assert count == MILLION and first["id"] == 1 and last["id"] == MILLION
    assert first["text"] == "message number 1" and set(first) >= {"conversation", "from"}
    proc, _ = run_export(million, tmp_path / "lobby.jsonl", "--conversation", "lobby")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "lobby.jsonl", encoding="utf-8") as lines:
        lobby = [json.loads(line)["id"] for line in lines]
    assert lobby == list(range(11, MILLION + 1, 11))


def test_retention_prunes_old_messages_in_the_background(million, tmp_path, client_factory,
                                                          request):
    srv = ServerProcess(tmp_path, env={"RETENTION_DAYS": "7",
                                       "METRICS_TOKEN": "prune-metrics",
                                       "DATABASE_URL": f"sqlite:///{million}"})
    srv.start(timeout=90)  # a loaded machine opening a database of 160 MB
    request.addfinalizer(srv.stop)
    client = client_factory()
    client.connect(srv.url, auth={"name": uname("keeper")})
    slowest = 0.0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = time.monotonic()
        ok(client.call("listRooms", timeout=10))  # the server answers while it prunes
        slowest = max(slowest, time.monotonic() - started)
        pruned = [line for line in srv.get("/metrics", headers={
            "Authorization": "Bearer prune-metrics"}).text.splitlines()
            if line.startswith("chat_messages_pruned_total ")]
        if pruned and float(pruned[0].split()[1]) >= 30_000:
            break
        time.sleep(0.5)
    assert pruned and float(pruned[0].split()[1]) == 30_000, pruned
    history = ok(client.call("history", {"conversation": "lobby", "after": 0, "limit": 1}))
    assert history["messages"][0]["id"] > 30_000  # the oldest left is recent
    assert slowest < 5, slowest  # generous: a loaded CI machine, not a timing claim
    with sa.create_engine(f"sqlite:///{million}").connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == \
            MILLION - 30_000
        assert conn.execute(sa.text(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'number'")).scalar() \
            == MILLION - 30_000
