"""chat_server/runtime.py: the store's lane runs one call at a time, off the event loop,
and lets the group commit of messages go ahead of the reads waiting behind it; the
listener takes a few connections per turn of the loop."""

import time

import eventlet

from chat_server import runtime


def commit(log, name):
    log.append(name)
    return name


def read(log, name, seconds=0.0):
    time.sleep(seconds)  # the unpatched sleep: blocks the lane's OS thread, not the hub
    log.append(name)
    return name


def test_the_lane_runs_calls_one_at_a_time_and_commits_go_first():
    lane = runtime.Lane(first=[commit])
    log = []
    busy = eventlet.spawn(lane.run, read, log, "busy", 0.2)
    eventlet.sleep(0.05)  # the lane's thread is now in "busy"
    waiting = [eventlet.spawn(lane.run, read, log, "read 1"),
               eventlet.spawn(lane.run, read, log, "read 2"),
               eventlet.spawn(lane.run, commit, log, "commit")]
    ticks = 0
    while not busy.dead:  # the event loop is free while the lane's thread works
        eventlet.sleep(0.01)
        ticks += 1
    assert [g.wait() for g in waiting] == ["read 1", "read 2", "commit"]
    assert log == ["busy", "commit", "read 1", "read 2"]
    assert ticks >= 5


def test_a_flood_of_commits_lets_the_others_in_every_few_turns():
    lane = runtime.Lane(first=[commit])
    log = []
    busy = eventlet.spawn(lane.run, read, log, "busy", 0.2)
    eventlet.sleep(0.05)
    waiting = [eventlet.spawn(lane.run, read, log, "read")]
    waiting += [eventlet.spawn(lane.run, commit, log, f"commit {n}") for n in range(10)]
    busy.wait()
    for g in waiting:
        g.wait()
    run = runtime.Lane.AHEAD_RUN
    assert log == ["busy", *(f"commit {n}" for n in range(run)), "read",
                   *(f"commit {n}" for n in range(run, 10))]


def test_an_error_reaches_its_caller_and_the_lane_goes_on():
    lane = runtime.Lane()

    def fail():
        raise ValueError("no")

    try:
        lane.run(fail)
    except ValueError as error:
        assert str(error) == "no"
    else:
        raise AssertionError("the error was lost")
    assert lane.run(read, [], "after") == "after"


def test_the_listener_lets_the_loop_run_between_a_few_accepts():
    """eventlet's own accept returns at once while connections wait in the backlog, so a
    connect storm's whole backlog was taken before anything else ran (issue 13)."""
    listener = runtime.listen("127.0.0.1", 0)
    paced = runtime.PacedListener(listener, per_turn=4)
    address = listener.getsockname()
    clients = [eventlet.connect(address) for _ in range(10)]
    eventlet.sleep(0.05)  # all ten are in the backlog
    order = []
    eventlet.spawn_n(order.append, "loop")
    for number in range(10):
        conn, _ = paced.accept()
        order.append(number)
        conn.close()
    eventlet.sleep(0)
    for client in clients:
        client.close()
    listener.close()
    assert order[:5] == [0, 1, 2, 3, "loop"]
    assert order[5:] == [4, 5, 6, 7, 8, 9]
