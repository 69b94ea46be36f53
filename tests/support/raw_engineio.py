"""Engine.IO / Socket.IO spoken by hand, for the tests that must send what a well-behaved
client never would."""

import json
import time

import requests
import websocket


class RawEngineIO:
    """A hand-driven Engine.IO v4 session over `polling` or `websocket`.

    Packets are strings in the wire format (`"40"`, `'42["message","hi"]'`) or bytes
    (sent as binary). `closed()` tells whether the server has ended the session.
    """

    def __init__(self, url, transport="polling", headers=None, timeout=5):
        self.url = url
        self.transport = transport
        self.timeout = timeout
        self.base = url + "/socket.io/?EIO=4&transport=" + transport
        self.http = None
        self.ws = None
        if transport == "polling":
            self.http = requests.Session()
            r = self.http.get(self.base, headers=headers, timeout=timeout)
            r.raise_for_status()
            open_pkt = r.text.split("\x1e")[0]
        else:
            ws_url = self.base.replace("http://", "ws://", 1)
            self.ws = websocket.create_connection(ws_url, timeout=timeout,
                                                  header=headers or {})
            open_pkt = self.ws.recv()
        assert open_pkt.startswith("0"), f"not an Engine.IO open packet: {open_pkt!r}"
        self.handshake = json.loads(open_pkt[1:])
        self.sid = self.handshake["sid"]

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close(timeout=0.5)
            except Exception:
                pass
            self.ws.shutdown()  # always release the socket
        if self.http is not None:
            self.http.close()

    def send(self, *packets):
        """Send packets; for polling return the POST's HTTP status."""
        if self.ws is not None:
            for p in packets:
                if isinstance(p, bytes):
                    self.ws.send_binary(p)
                else:
                    self.ws.send(p)
            return None
        body = "\x1e".join(packets) if all(isinstance(p, str) for p in packets) else packets[0]
        try:
            r = self.http.post(self.base + "&sid=" + self.sid, data=body,
                               headers={"Content-Type": "text/plain;charset=UTF-8"},
                               timeout=self.timeout)
        except requests.exceptions.ConnectionError:
            return -1  # the server dropped the HTTP connection
        return r.status_code

    def receive(self, timeout=2.0):
        """Packets received within `timeout` (one poll / frames until quiet).

        Returns None when the server has closed the session (HTTP 400, a close packet
        or a closed socket)."""
        if self.ws is not None:
            got = []
            self.ws.settimeout(timeout)
            try:
                while True:
                    opcode, data = self.ws.recv_data(control_frame=True)
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        return None
                    if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                        continue
                    text = data.decode("utf-8", "replace")
                    if text == "1":
                        return None
                    got.append(text)
                    self.ws.settimeout(0.2)
            except websocket.WebSocketTimeoutException:
                return got
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                return None
        try:
            r = self.http.get(self.base + "&sid=" + self.sid, timeout=timeout)
        except requests.exceptions.ReadTimeout:
            return []
        except requests.exceptions.ConnectionError:
            return None
        if r.status_code != 200:
            return None
        packets = r.text.split("\x1e") if r.text else []
        if "1" in packets:
            return None
        return packets

    def connect_socketio(self, auth=None, timeout=3.0):
        """Send the Socket.IO CONNECT and return the packets up to and including welcome."""
        self.send("40" if auth is None else "40" + json.dumps(auth))
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            packets = self.receive(timeout=1.0)
            assert packets is not None, f"session closed while connecting; got {got!r}"
            for p in packets:
                if p == "2":
                    self.send("3")
                    continue
                got.append(p)
            if any(p.startswith('42["welcome"') for p in got):
                return got
        raise AssertionError(f"no welcome after raw CONNECT; got {got!r}")

    def acks(self, wanted, timeout=3.0):
        """The arguments of the acks (`43<id>[...]`) for the ids in `wanted` that arrive
        within `timeout` seconds, by id, answering pings meanwhile; None if the session
        closes first."""
        got = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and set(got) != set(wanted):
            packets = self.receive(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            if packets is None:
                return None
            for p in packets:
                if p == "2":
                    self.send("3")
                    continue
                head, bracket, rest = p.partition("[")
                if bracket and head[:2] == "43" and head[2:].isdigit() \
                        and int(head[2:]) in wanted:
                    got[int(head[2:])] = json.loads(bracket + rest)
        return got

    def ack(self, ack_id, timeout=3.0):
        """The arguments of the ack for `ack_id` (see `acks`); fails if it does not come."""
        got = self.acks({ack_id}, timeout)
        assert got is not None, "the session was closed"
        assert ack_id in got, f"no ack {ack_id}"
        return got[ack_id]

    def closed(self, timeout=3.0):
        """True if the server closes the session within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            packets = self.receive(timeout=min(left, 1.0))
            if packets is None:
                return True
            for p in packets:
                if p == "2":
                    self.send("3")
