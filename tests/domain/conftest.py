"""Fixtures of the domain tests: a Chat on its own SQLite file, no server."""

import pytest
from support.clock import Clock

from chat_server.config import Config
from chat_server.domain.chat import Chat
from chat_server.store import Store


@pytest.fixture
def make_chat(tmp_path):
    """make_chat(clock=None, **settings) -> a started Chat with `published` (its effects),
    `refused` (the budgets that said no) and `clock_` (a clock the test moves by hand)."""
    made = []

    def make(clock=None, **settings):
        published, refused = [], []
        clock = clock or Clock()
        store = Store(f"sqlite:///{tmp_path}/chat{len(made)}.db")
        chat = Chat(store, Config(**settings), publish=published.extend, clock=clock,
                    monotonic=clock, on_refused=refused.append)
        chat.published, chat.refused, chat.clock_ = published, refused, clock
        chat.start()
        made.append(store)
        return chat

    yield make
    for store in made:
        store.close()


@pytest.fixture
def chat(make_chat):
    """A Chat with the default settings."""
    return make_chat()


@pytest.fixture
def counted(tmp_path):
    """A Chat whose store calls are recorded by name in `chat.calls`."""
    store = Store(f"sqlite:///{tmp_path}/calls.db")
    calls = []

    def store_call(fn, *args):
        calls.append(fn.__name__)
        return fn(*args)

    chat = Chat(store, Config(), publish=lambda effects: None, store_call=store_call)
    chat.calls = calls
    chat.start()
    yield chat
    store.close()
