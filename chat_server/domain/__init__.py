"""The chat domain: users, rooms, permissions and messages. No sockets, no eventlet.

`chat.Chat` assembles it; `modes.py` picks one node's or several nodes' implementation of
each port (`ports.py`). Tests drive it without a server (tests/domain/).
"""
