"""Starting the server: settings from flags and environment, and clear refusals."""

import os
import subprocess
import sys

import pytest
from support import ROOT
from support.server import ServerProcess


def run(*args, env=None, timeout=20):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "chat_server", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, env, needle", [
    (["--port", "99999"], {}, "--port"),
    ([], {"PORT": "eighty"}, "PORT"),
    ([], {"RATE_LIMIT": "lots"}, "RATE_LIMIT"),
    ([], {"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    (["--log-level", "LOUD"], {}, "--log-level"),
    (["--no-such-flag"], {}, "--no-such-flag"),
    ([], {"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS"),
])
def test_bad_settings_stop_with_one_line(args, env, needle):
    """A bad setting ends the server at start: non-zero exit, one line naming it, no traceback."""
    result = run(*args, env=env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_help_lists_every_setting():
    result = run("--help")
    assert result.returncode == 0
    for word in ("--host", "--port", "--database-url", "--log-level", "HOST", "PORT",
                 "DATABASE_URL", "LOG_LEVEL", "RATE_LIMIT"):
        assert word in result.stdout


def test_port_in_use_is_one_line(server):
    result = run("--host", "127.0.0.1", "--port", str(server.port))
    assert result.returncode != 0
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_flags_win_over_environment(tmp_path):
    """PORT from the environment is overridden by --port; the log names the real address."""
    srv = ServerProcess(tmp_path, env={"PORT": "1", "HOST": "0.0.0.0"})
    srv.start()  # ServerProcess passes --host 127.0.0.1 --port 0: the flags must win
    try:
        assert srv.port not in (0, 1)
        assert "Serving on http://127.0.0.1:" in srv.log_text()
        assert srv.get("/healthz").json()["store"] == "ok"
    finally:
        srv.stop()


def test_default_database_is_chat_db_in_working_directory(tmp_path):
    """Without DATABASE_URL the store is ./chat.db of the working directory."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "chat_server", "--host", "127.0.0.1",
                             "--port", "0"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "Serving on" in line:
                break
        assert (tmp_path / "chat.db").exists()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
