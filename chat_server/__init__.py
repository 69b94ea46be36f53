"""chat_server: a Socket.IO chat server on python-socketio and eventlet.

Importing the package does nothing; `create_app(config)` in `app.py` builds a server and
`python -m chat_server` runs one.
"""

__version__ = "0.1.0"
