"""Who is online on this node: users and their connections (one per browser tab)."""

from dataclasses import dataclass, field


@dataclass
class Connection:
    sid: str
    user: object  # models.User
    token: str
    connected_at: float
    transport: str = ""
    address: str = ""
    extra: dict = field(default_factory=dict)


class Presence:
    def __init__(self):
        self.by_sid = {}  # self.by_sid[sid] = Connection
        self.by_user = {}  # self.by_user[user_key][sid] = Connection, oldest first

    def add(self, conn):
        """Returns True when this is the user's first connection."""
        self.by_sid[conn.sid] = conn
        tabs = self.by_user.setdefault(conn.user.key, {})
        tabs[conn.sid] = conn
        return len(tabs) == 1

    def remove(self, sid):
        """Returns (connection, was_last) or (None, False) for an unknown sid."""
        conn = self.by_sid.pop(sid, None)
        if conn is None:
            return None, False
        tabs = self.by_user.get(conn.user.key, {})
        tabs.pop(sid, None)
        if tabs:
            return conn, False
        self.by_user.pop(conn.user.key, None)
        return conn, True

    def get(self, sid):
        return self.by_sid.get(sid)

    def sids_of(self, user_key):
        return list(self.by_user.get(user_key, ()))

    def online_user(self, user_key):
        tabs = self.by_user.get(user_key)
        return next(iter(tabs.values())).user if tabs else None

    def users(self):
        return [{"name": next(iter(tabs.values())).user.name, "sids": list(tabs)}
                for tabs in self.by_user.values()]

    def __len__(self):
        return len(self.by_sid)
