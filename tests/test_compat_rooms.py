"""chat_server/compat/rooms.py: the manager's room index gives the library's answers,
without walking every room, and a disconnecting connection hears no more broadcasts."""

import itertools
import random
from types import SimpleNamespace

import socketio

from chat_server import compat

NS = "/"


def managers():
    """The library's manager and ours, each with a server whose ids run 0, 1, 2..., so
    both give the same sids."""
    library, ours = socketio.Manager(), compat.IndexedRooms()
    for manager in (library, ours):
        ids = itertools.count()
        manager.set_server(SimpleNamespace(
            packet_class=socketio.packet.Packet,
            eio=SimpleNamespace(generate_id=lambda ids=ids: f"sid{next(ids)}")))
        manager.initialize()
    return library, ours


def state(manager):
    return {room: dict(members) for room, members in manager.rooms.get(NS, {}).items()}


def test_random_enters_leaves_closes_and_disconnects_match_the_library():
    rng = random.Random(7)
    library, ours = managers()
    sids = []
    for step in range(3000):
        action = rng.choice(["connect", "enter", "enter", "leave", "close", "disconnect"])
        if action == "connect" or not sids:
            eio_sid = f"eio{step}"
            sid = library.connect(eio_sid, NS)
            assert ours.connect(eio_sid, NS) == sid
            sids.append(sid)
            continue
        sid = rng.choice(sids)
        room = f"room{rng.randrange(12)}"
        if action == "enter":
            library.enter_room(sid, NS, room)
            ours.enter_room(sid, NS, room)
        elif action == "leave":
            library.leave_room(sid, NS, room)
            ours.leave_room(sid, NS, room)
        elif action == "close":
            library.close_room(room, NS)
            ours.close_room(room, NS)
        else:
            sids.remove(sid)
            library.pre_disconnect(sid, NS)
            ours.pre_disconnect(sid, NS)
            library.disconnect(sid, NS)
            ours.disconnect(sid, NS)
            assert ours.room_index.get((NS, sid)) is None
        assert state(ours) == state(library), step
        for other in sids:
            assert sorted(ours.get_rooms(other, NS), key=str) == \
                sorted(library.get_rooms(other, NS), key=str)
        assert ours.pending_connect == library.pending_connect
        assert ours.pending_disconnect == library.pending_disconnect


def test_a_disconnecting_connection_leaves_its_rooms_before_its_handler_runs():
    _, ours = managers()
    leaving = ours.connect("eio-a", NS)
    staying = ours.connect("eio-b", NS)
    for sid in (leaving, staying):
        ours.enter_room(sid, NS, "lobby")
    ours.pre_disconnect(leaving, NS)  # the library calls its disconnect handler now
    assert [sid for sid, _ in ours.get_participants(NS, "lobby")] == [staying]
    assert list(ours.get_participants(NS, leaving)) == [(leaving, "eio-a")]
    assert not ours.is_connected(leaving, NS)
    ours.disconnect(leaving, NS)
    assert ours.room_index.get((NS, leaving)) is None
    assert leaving not in ours.rooms[NS][None]
