"""Issue 17: the built wheel carries the page and the socket.io client. It is built from
this checkout, installed into a fresh virtual environment outside it, and started from an
empty folder; Chromium loads the page, two people chat, and no request fails.

The fresh environment gets its dependencies from this suite's own environment (on
PYTHONPATH, which has no `chat_server` of its own: the checkout is installed editable,
through a path hook that is not read from PYTHONPATH), so the test needs no network
beyond what building the wheel needs.
"""

import os
import re
import subprocess
import sys
import sysconfig
import time

import pytest
import requests
from support import ROOT
from support.names import uname

pytestmark = pytest.mark.browser

SERVING = re.compile(r"Serving on http://([\d.]+):(\d+)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel of this checkout installed (no dependencies)."""
    where = tmp_path_factory.mktemp("clean-room")
    wheels = where / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(wheels), str(ROOT)], check=True, timeout=300, cwd=where)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", site.stdout.strip(), *map(str, wheels.glob("*.whl"))],
                   check=True, timeout=120)
    return python


def test_the_installed_wheel_serves_the_page_from_an_empty_folder(installed, tmp_path,
                                                                     open_chat):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"],
           "DATABASE_URL": f"sqlite:///{tmp_path}/chat.db", "LOG_LEVEL": "INFO"}
    proc = subprocess.Popen([str(installed), "-m", "chat_server", "--host", "127.0.0.1",
                             "--port", "0"], cwd=empty, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines, url = [], None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = SERVING.search(line)
            if found:
                url = f"http://127.0.0.1:{found.group(2)}"
        assert url, "the installed server did not start:\n" + "".join(lines)
        where = subprocess.run([str(installed), "-c", "import chat_server, pathlib; "
                                "print(pathlib.Path(chat_server.__file__).parent)"],
                               capture_output=True, text=True, env=env, cwd=empty)
        assert str(ROOT) not in where.stdout, "the checkout's package was imported"
        assert not any("socket.io client" in line for line in lines), lines
        assert requests.get(url + "/vendor/socket.io.min.js", timeout=10).status_code == 200
        assert requests.get(url + "/favicon.ico", timeout=10).status_code == 204
        ready = requests.get(url + "/readyz", timeout=10).json()
        assert "client" not in ready, ready

        failed = []
        ann, bob = open_chat(url), open_chat(url)
        for chat in (ann, bob):
            chat.page.on("requestfailed", lambda request: failed.append(request.url))
            chat.page.on("response", lambda response: failed.append(response.url)
                         if response.status >= 400 else None)
        ann.goto()
        ann.sign_in(uname("ann"))
        bob.goto()
        bob.sign_in(uname("bob"))
        ann.send("hello from the wheel")
        bob.expect_once("hello from the wheel")
        assert not failed, failed
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
