"""Carries out the domain's effects on Socket.IO: emits and room changes."""

from __future__ import annotations

import logging
from typing import Any, cast

import socketio

from . import runtime
from .domain.effects import Close, Disconnect, Effect, Emit, Enter, Exit, Hold, Release
from .metrics import Metrics

logger = logging.getLogger(__name__)

NAMESPACE = "/"


class Delivery:
    def __init__(self, sio: socketio.Server, metrics: Metrics) -> None:
        self.sio = sio
        self.metrics = metrics

    def apply(self, effects: list[Effect]) -> None:
        """Carry out effects in order, without yielding in between.

        A failing effect is logged and skipped: by now the change is stored, so the
        sender's ack must still say so.
        """
        for effect in effects:
            try:
                self._apply(effect)
            except Exception:
                logger.exception("could not apply %r", effect)

    def _apply(self, effect: Effect) -> None:
        if isinstance(effect, Emit):
            if not effect.to:  # python-socketio reads "to nobody" as "to everyone"
                return
            self.sio.emit(effect.event, effect.data, to=effect.to, skip_sid=effect.skip or None,
                          ignore_queue=effect.local)
            if effect.event == "reply":
                self._count_delivery(effect)
        elif isinstance(effect, Enter):
            for sid in effect.sids:
                self.sio.enter_room(sid, effect.audience)
        elif isinstance(effect, Exit):
            for sid in effect.sids:
                self.sio.leave_room(sid, effect.audience)
        elif isinstance(effect, Close):
            self.sio.close_room(effect.audience)
        elif isinstance(effect, Hold):
            self.sio.manager.hold(effect.sid, NAMESPACE)
        elif isinstance(effect, Release):
            self.sio.manager.release(effect.sid, NAMESPACE, effect.first, effect.upto)
        elif isinstance(effect, Disconnect):
            # After a moment, so the ack and what was emitted to them leave first.
            runtime.spawn_after(self.CLOSE_AFTER, self._disconnect, effect.sids)

    CLOSE_AFTER = 0.2  # seconds

    def _disconnect(self, sids: list[str]) -> None:
        for sid in sids:
            try:
                self.sio.disconnect(sid)  # through Redis to the sid's node, when scaled
            except Exception:
                logger.exception("could not close %s", sid)

    def _count_delivery(self, effect: Emit) -> None:
        """Connections of this node that the emit reaches, from room sizes alone: this runs
        for every message, so it must not walk the members."""
        rooms = self.sio.manager.rooms.get(NAMESPACE, {})
        reached = sum(len(rooms.get(target, ())) for target in effect.to) - len(effect.skip)
        if reached > 0:
            message = cast("dict[str, Any]", effect.data)  # a `reply`: MESSAGE on the wire
            self.metrics.count(self.metrics.messages_delivered, message["kind"], reached)
