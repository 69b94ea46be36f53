"""What every part of the domain shares: the store, the settings, the way out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .ports import PresencePort, Publish, Runner, direct

if TYPE_CHECKING:
    from ..config import Config
    from ..store import Store


@dataclass(frozen=True)
class Context:
    """`store_call` runs store methods (off the event loop in the server), `offload` runs
    CPU-heavy work such as password hashing, `publish` hands effects to the transport."""

    store: Store
    config: Config
    publish: Publish
    presence: PresencePort
    store_call: Runner = direct
    offload: Runner = direct
    clock: Callable[[], float] = time.time

    def now_ms(self) -> int:
        return int(self.clock() * 1000)
