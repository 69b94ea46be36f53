"""The benchmark's own arithmetic (bench/flame.py, run.py's CPU per unit of work): a
wrong share or a wrong division would put wrong numbers in bench/README.md unnoticed."""

import importlib.util
import sys
import xml.etree.ElementTree as ET

from support import ROOT

BENCH = ROOT / "bench"


def load(name):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # run.py imports flame.py from beside it
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RAW = """\
GreenThread.main (/v/lib/python3.11/site-packages/eventlet/greenthread.py:272);\
Sending.send_as (/repo/chat_server/domain/sending.py:10);\
Store.insert (/repo/chat_server/store/messages.py:98) 6
GreenThread.main (/v/lib/python3.11/site-packages/eventlet/greenthread.py:272);\
Sending.send_as (/repo/chat_server/domain/sending.py:12) 2
Thread.run (/usr/lib/python3.11/threading.py:982);\
Connection.execute (/v/lib/python3.11/site-packages/sqlalchemy/engine/base.py:1494) 2
"""


def test_frames_are_shortened_and_shares_count_each_sample_once(tmp_path):
    flame = load("flame")
    raw = tmp_path / "p.txt"
    raw.write_text(RAW)
    by_line = flame.read_stacks(raw)
    assert sum(by_line.values()) == 10
    by_function = flame.read_stacks(raw, lines=False)
    incl = flame.inclusive(by_function)
    assert incl["Sending.send_as (chat_server/domain/sending.py)"] == 8  # both lines
    assert incl["GreenThread.main (eventlet/greenthread.py)"] == 8
    assert flame.exclusive(by_line)["Store.insert (chat_server/store/messages.py:98)"] == 6
    assert flame.origin("Store.insert (chat_server/store/messages.py)") == "ours"
    assert flame.origin("Thread.run (threading.py)") == "stdlib"
    assert flame.origin("Connection.execute (sqlalchemy/engine/base.py)") == "library"
    summary = flame.top_frames(by_line, seconds=1.0)
    ours = summary.split("our code (chat_server/):\n")[1].split("\ninclusive")[0]
    assert ours.splitlines()[0].split() == ["80.0%", "Sending.send_as",
                                            "(chat_server/domain/sending.py)"]


def test_the_flame_graph_is_svg_with_a_box_per_frame(tmp_path):
    flame = load("flame")
    raw = tmp_path / "p.txt"
    raw.write_text(RAW)
    svg = flame.render_svg(flame.read_stacks(raw, lines=False), "t & <title>")
    root = ET.fromstring(svg)  # well-formed, the title escaped
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "all: 10 samples, 100.0%" in titles
    assert "Store.insert (chat_server/store/messages.py): 6 samples, 60.0%" in titles


def test_cpu_per_unit_of_work():
    run = load("run")
    assert run.cpu_us_per({"srv_cpu_s": 0.5}, 1000) == 500
    # Runs recorded before srv_cpu_s: the share of a core over the window's wall time.
    assert run.cpu_us_per({"srv_cpu": 50.0, "wall_s": 2.0}, 2000) == 500
    assert run.cpu_us_per({"srv_cpu_s": 0.5}, 0) is None
    assert run.cpu_us_per({"store_cpu_s": 0.1}, 1000, "store_cpu_s") == 100
