"""Signing out, token expiry, names that look alike, and guests that leave nothing behind
(docs/protocol.md §1.3, §1.5)."""

import pytest
import sqlalchemy as sa
from support.clock import Clock

from chat_server import schema
from chat_server.config import Config
from chat_server.domain import security, validation
from chat_server.domain.chat import Chat
from chat_server.domain.effects import Disconnect, Emit
from chat_server.domain.errors import BadToken, InvalidName, InvalidPayload, NameTaken
from chat_server.domain.names import skeleton
from chat_server.store import Store

DAY = 86_400.0


@pytest.fixture
def chat(make_chat):
    """Tokens expire after 30 days of this test's clock."""
    return make_chat(clock=Clock(1_800_000_000.0), token_ttl=30)


def live(chat, sid, auth=None):
    conn = chat.identity.connect(sid, auth)
    chat.live.go_live(sid)
    return conn


def signed_out(chat):
    """(sids told `signedOut`, sids closed) by the last sign-out."""
    told = [e.to for e in chat.published if isinstance(e, Emit) and e.event == "signedOut"]
    closed = [e.sids for e in chat.published if isinstance(e, Disconnect)]
    return sorted(told[-1]), sorted(closed[-1])


def test_sign_out_revokes_this_token_and_closes_its_tabs_only(chat):
    phone = live(chat, "p1", {"name": "alice", "password": "correct horse"})
    live(chat, "p2", {"token": phone.token})  # a second tab of the same sign-in
    laptop = live(chat, "l1", {"name": "alice", "password": "correct horse"})
    chat.identity.sign_out("p1", None)
    assert signed_out(chat) == (["p1", "p2"], ["p1", "p2"])
    with pytest.raises(BadToken):
        chat.identity.connect("p3", {"token": phone.token})
    assert chat.identity.connect("l2", {"token": laptop.token}).user.name == "alice"


def test_sign_out_everywhere_revokes_every_token_of_the_user(chat):
    first = live(chat, "a1", {"name": "carol", "password": "correct horse"})
    second = live(chat, "b1", {"name": "carol", "password": "correct horse"})
    assert first.token != second.token  # a password login issues a fresh token
    chat.identity.sign_out("a1", {"everywhere": True})
    assert signed_out(chat) == (["a1", "b1"], ["a1", "b1"])
    for token in (first.token, second.token):
        with pytest.raises(BadToken):
            chat.identity.connect("c1", {"token": token})


def test_a_guest_who_signs_out_is_gone_at_once(chat):
    guest = live(chat, "g1")
    live(chat, "g2", {"token": guest.token})
    chat.identity.sign_out("g1", {"everywhere": False})
    assert signed_out(chat) == (["g1", "g2"], ["g1", "g2"])
    chat.identity.disconnect("g1")
    chat.identity.disconnect("g2")
    assert chat.store.user_by_key(guest.user.key) is None


@pytest.mark.parametrize("payload", [5, "yes", {"everywhere": "true"}, {"everywhere": 1}])
def test_sign_out_with_a_bad_payload_is_invalid_and_revokes_nothing(chat, payload):
    alice = live(chat, "s1", {"name": "alice"})
    with pytest.raises(InvalidPayload):
        chat.identity.sign_out("s1", payload)
    assert chat.identity.connect("s2", {"token": alice.token}).user.name == "alice"


def test_a_token_unused_for_token_ttl_expires_and_use_keeps_it_alive(chat):
    alice = live(chat, "s1", {"name": "alice"})
    chat.clock_.now += 29 * DAY
    assert chat.identity.connect("s2", {"token": alice.token}).user.name == "alice"
    chat.clock_.now += 29 * DAY  # 58 days after sign-in, 29 after its last use
    assert chat.identity.connect("s3", {"token": alice.token}).user.name == "alice"
    chat.clock_.now += 31 * DAY
    with pytest.raises(BadToken):
        chat.identity.connect("s4", {"token": alice.token})


@pytest.mark.parametrize(("taken", "lookalike"), [
    ("victim", "v\u0456ctim"),  # Cyrillic i
    ("alice", "a1ice"),
    ("paypal", "\u0440aypal"),  # Cyrillic r
    ("bob", "\uff42\uff4f\uff42"),  # fullwidth
    ("Straße", "strasse"),
])
def test_a_name_that_looks_like_a_registered_one_is_name_taken(chat, taken, lookalike):
    live(chat, "s1", {"name": taken})
    with pytest.raises(NameTaken):
        chat.identity.connect("s2", {"name": lookalike})


@pytest.mark.parametrize("name", ["\uff47\uff55\uff45\uff53\uff54-abc", "gue\u0455t-abc",
                                  "GUEST-abc"])
def test_the_guest_namespace_cannot_be_spelled_another_way(chat, name):
    with pytest.raises(InvalidName):
        chat.identity.connect("s1", {"name": name})


@pytest.mark.parametrize("name", ["A" * 20, "abcDEF0123456789_-_-", "-" * 20,
                                  "abcdefghijklmnopqr\u00df", "\u212a" + "k" * 19])
def test_a_name_shaped_like_a_sid_cannot_be_registered(chat, name):
    """20 of A-Z a-z 0-9 _ -, as written or once case-folded (docs/protocol.md §1.3)."""
    assert validation.sid_shaped(name)
    for auth in ({"name": name}, {"name": name, "password": "correct horse"}):
        with pytest.raises(InvalidName):
            chat.identity.connect("s1", auth)
    assert chat.store.user_by_key(validation.fold(name)) is None


@pytest.mark.parametrize("name", ["A" * 19, "A" * 21, "abcdefghij.klmnopqrs", "\u00e9" * 20])
def test_names_near_the_sid_shape_can_be_registered(chat, name):
    assert not validation.sid_shaped(name)
    assert live(chat, "s1", {"name": name}).user.name == name


def test_a_sid_shaped_name_registered_earlier_still_signs_in(chat):
    """Only registering such a name is refused: one already on record signs in by password
    and by token, and its name alone is `name_taken` as for any registered name."""
    name = "Legacy_Sid-Name01234"
    token = "legacy-token"
    chat.store.create_user(name, validation.fold(name), False, security.hash_token(token),
                           security.hash_password("correct horse"), skeleton(name),
                           chat.ctx.now_ms())
    assert live(chat, "s1", {"token": token}).user.name == name
    by_password = live(chat, "s2", {"name": name.upper(), "password": "correct horse"})
    assert by_password.user.name == name
    assert live(chat, "s3", {"token": by_password.token}).user.name == name
    with pytest.raises(NameTaken):
        chat.identity.connect("s4", {"name": name})


def test_a_gone_guest_leaves_no_rows(chat):
    guest = live(chat, "g")
    bob = live(chat, "b", {"name": "bob"})
    chat.rooms.join_room("g", {"room": "#mine"})
    chat.sending.send_message("g", {"content": "hi", "destId": "bob", "clientId": "c1"})
    chat.identity.disconnect("g")
    with chat.store.engine.begin() as conn:
        for table in (schema.users, schema.sessions, schema.memberships, schema.dm_members):
            column = table.c.id if table is schema.users else table.c.user_id
            assert conn.execute(sa.select(sa.func.count()).where(
                column == guest.user.id)).scalar() == 0, table.name
    history = chat.reading.history("b", {"conversation": f"dm:bob:{guest.user.name}"})
    assert [m["text"] for m in history] == ["hi"]  # what it said stays, under its name
    assert bob.user.name == "bob"


def test_a_schema_2_database_is_upgraded_in_place(tmp_path):
    """Columns added and filled, gone guests deleted with their rows, nothing else lost."""
    url = f"sqlite:///{tmp_path}/v2.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # what schema 2 looked like
        conn.execute(sa.text(
            "CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value VARCHAR(255) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO meta VALUES ('schema', '2')"))
        conn.execute(sa.text(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(64) NOT NULL, "
            "key VARCHAR(128) NOT NULL UNIQUE, guest BOOLEAN NOT NULL, gone BOOLEAN NOT NULL, "
            "password_hash VARCHAR(255), created_at BIGINT NOT NULL)"))
        conn.execute(sa.text(
            "CREATE TABLE sessions (token_hash VARCHAR(64) PRIMARY KEY, user_id INTEGER NOT "
            "NULL REFERENCES users(id), created_at BIGINT NOT NULL)"))
        conn.execute(sa.text("INSERT INTO users VALUES (1, 'Victim', 'victim', 0, 0, NULL, 1),"
                             " (2, 'guest-0123456789', 'guest-0123456789', 1, 1, NULL, 1)"))
        conn.execute(sa.text("INSERT INTO sessions VALUES ('h1', 1, 5)"))
    engine.dispose()
    store = Store(url)
    chat = Chat(store, Config(), publish=lambda effects: None)
    chat.start()
    with store.engine.begin() as conn:
        rows = conn.execute(sa.select(schema.users.c.key, schema.users.c.skeleton)).all()
        assert rows == [("victim", "victirn")]
        assert conn.execute(sa.select(schema.sessions.c.used_at)).scalar() == 5
    with pytest.raises(NameTaken):
        chat.identity.connect("s1", {"name": "v\u0456ctim"})
    store.close()


class Later:
    """Records what the domain asks to run later; the test runs it when it likes."""

    def __init__(self):
        self.calls = []

    def __call__(self, seconds, fn, *args):
        self.calls.append((seconds, fn, args))

    def run_all(self):
        calls, self.calls = self.calls, []
        for _, fn, args in calls:
            fn(*args)


@pytest.fixture
def graceful(tmp_path):
    """A Chat whose guests outlive their last connection by GUEST_GRACE (120 s)."""
    later = Later()
    published = []
    store = Store(f"sqlite:///{tmp_path}/grace.db")
    chat = Chat(store, Config(guest_grace=120), publish=published.extend, later=later)
    chat.published, chat.later_ = published, later
    chat.start()
    yield chat
    store.close()


def test_a_guest_that_comes_back_within_the_grace_keeps_its_name_and_rooms(graceful):
    chat = graceful
    guest = live(chat, "g1")
    live(chat, "b", {"name": "bob"})
    chat.rooms.join_room("g1", {"room": "#stay"})
    chat.rooms.join_room("b", {"room": "#stay"})
    chat.identity.disconnect("g1")
    assert [seconds for seconds, _, _ in chat.later_.calls] == [120]
    back = live(chat, "g2", {"token": guest.token})  # a reload
    assert back.user.name == guest.user.name
    chat.later_.run_all()  # the grace ends while it is back: nothing happens
    assert chat.store.user_by_key(guest.user.key) is not None
    assert [r.name for r in chat.store.rooms_of(guest.user.id)] == ["#stay"]
    chat.published.clear()
    chat.identity.disconnect("g2")
    chat.later_.run_all()  # this time it stayed away
    assert chat.store.user_by_key(guest.user.key) is None
    with pytest.raises(BadToken):
        chat.identity.connect("g3", {"token": guest.token})
    left = [e.data for e in chat.published if isinstance(e, Emit) and e.event == "roomEvent"]
    assert left == [{"room": "#stay", "event": "left", "name": guest.user.name}]


def test_a_guest_that_signs_out_has_no_grace(graceful):
    chat = graceful
    guest = live(chat, "g1")
    chat.identity.sign_out("g1", None)
    chat.identity.disconnect("g1")
    assert chat.later_.calls == []
    assert chat.store.user_by_key(guest.user.key) is None
