"""Order without a server: a connection's sends keep their order (docs/protocol.md §4), and
a node of several delivers messages in id order, whatever order they come in, filling
gaps from the store (§11, `cluster.ordering.Sequencer`)."""

import random
import threading

from chat_server.cluster.ordering import Sequencer
from chat_server.domain.models import Message
from chat_server.domain.sending import SendOrder


def message(n, conv="lobby"):
    return Message(n, conv, conv, "broadcast", "ann", "sid", None, f"m{n}", 0)


class Store:
    """What was committed, as the store would answer `messages_after`."""

    def __init__(self, ids):
        self.rows = {n: message(n) for n in ids}
        self.reads = 0

    def after(self, after, limit):
        self.reads += 1
        return [self.rows[n] for n in sorted(self.rows) if n > after][:limit]


def make(store):
    delivered, timers = [], []
    seq = Sequencer(store.after, lambda effects: delivered.extend(e.data["id"] for e in effects),
                    later=lambda seconds, fn, *args: timers.append((fn, args)),
                    on_caught_up=lambda count: None)
    return seq, delivered, timers


def run_timers(timers):
    while timers:
        fn, args = timers.pop(0)
        fn(*args)


def test_in_order_arrivals_are_delivered_at_once_without_the_store():
    store = Store(range(1, 6))
    seq, delivered, timers = make(store)
    seq.offer([message(1), message(2)])
    seq.offer([message(3)])
    assert delivered == [1, 2, 3] and not timers and store.reads == 0


def test_an_early_message_waits_for_the_one_before_it():
    seq, delivered, _ = make(Store(range(1, 4)))
    seq.offer([message(2)])
    assert delivered == []
    seq.offer([message(1)])
    assert delivered == [1, 2] and seq.delivered_mark() == 2


def test_a_gap_that_lasts_is_filled_from_the_store_and_burned_ids_are_skipped():
    store = Store([1, 2, 4, 6])  # 3 and 5 were burned (rolled back), never stored
    seq, delivered, timers = make(store)
    seq.offer([message(6)])
    run_timers(timers)
    assert delivered == [1, 2, 4, 6]
    seq.offer([message(4), message(2)])  # late arrivals from the channel: dropped
    assert delivered == [1, 2, 4, 6]


def test_any_arrival_order_delivers_each_id_once_in_order():
    rng = random.Random(11)
    for _ in range(50):
        ids = sorted(rng.sample(range(1, 80), 40))
        store = Store(ids)
        seq, delivered, timers = make(store)
        shuffled = ids[:]
        rng.shuffle(shuffled)
        for n in shuffled:
            seq.offer([message(n)])
            if rng.random() < 0.2:
                run_timers(timers)
        run_timers(timers)
        assert delivered == ids


def test_catch_up_after_an_outage_reads_what_others_stored():
    store = Store(range(1, 11))
    seq, delivered, _ = make(store)
    seq.start(4)
    assert seq.catch_up() == 6
    assert delivered == [5, 6, 7, 8, 9, 10]


def test_a_send_waits_for_the_one_its_connection_sent_before():
    order = SendOrder(threading.Event)
    first, second, other = order.take("a"), order.take("a"), order.take("b")
    waited = threading.Event()

    def second_send():
        second.wait()
        waited.set()

    thread = threading.Thread(target=second_send)
    thread.start()
    other.wait()  # another connection's send never waits for this one
    assert not waited.wait(0.1)
    first.done()
    assert waited.wait(2)
    thread.join()
    second.done()
    other.done()
    assert order.last == {}
