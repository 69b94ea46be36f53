"""python-engineio's client, for tests and tools."""

from __future__ import annotations

import logging
from typing import Any

import engineio
import engineio.exceptions
import engineio.payload
import engineio.socket
import socketio

from ._checks import has

logger = logging.getLogger(__name__)


# -- python-engineio's client (tests and tools) ----------------------------------------------

def handle_in_arrival_order(client: socketio.Client) -> None:
    """Make a python-socketio client handle incoming packets one after another.

    python-engineio's client runs every received message on a new thread
    (`engineio.Client._trigger_event(..., run_async=True)`), so two events that arrived in
    order can be handled in the opposite order. Socket.IO DISCONNECT packets (type "1")
    keep the threaded path: their handler joins the reader thread."""
    eio = client.eio
    dispatch = eio._trigger_event

    def in_order(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message" and not (args and isinstance(args[0], str)
                                       and args[0][:1] == "1"):
            kwargs["run_async"] = False
        return dispatch(event, *args, **kwargs)

    eio._trigger_event = in_order


def problems() -> list[str | None]:
    """What this module relies on in python-engineio's client."""
    return [has(engineio.Client, "_trigger_event", ("self", "event"))]
