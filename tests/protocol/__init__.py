"""The Socket.IO protocol over a real server, one module a topic (connect, rooms, dm...)."""
