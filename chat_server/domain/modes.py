"""One node or several: the one place where the mode picks an implementation of each port."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .budgets import LimiterFactory, local_limiters
from .ports import Distribution, LimiterPort, Memberships, PresencePort
from .presence import Presence
from .ratelimit import RateLimiter
from .rooms import MembershipCache, NoMembershipCache

if TYPE_CHECKING:
    from ..config import Config


@dataclass(frozen=True)
class Mode:
    presence: PresencePort
    limiter: LimiterPort
    memberships: Memberships
    budget_limiter: LimiterFactory = local_limiters  # the buckets of `budgets.Budgets`
    # None: `sending.LocalDistribution`, delivering each batch as it is committed
    distribution: Distribution | None = None


def one_node(config: Config, monotonic: Callable[[], float] = time.monotonic) -> Mode:
    """Everything in this process: presence and buckets in memory, memberships cached."""
    return Mode(Presence(), RateLimiter(config.rate_limit, monotonic), MembershipCache(),
                lambda limit, name: RateLimiter(limit, monotonic))


def several_nodes(presence: PresencePort, limiter: LimiterPort, distribution: Distribution,
                  budget_limiter: LimiterFactory = local_limiters) -> Mode:
    """Presence and buckets shared in Redis (`cluster/`); memberships always read from
    the shared store; messages delivered in id order on every node
    (`cluster.ordering`)."""
    return Mode(presence, limiter, NoMembershipCache(), budget_limiter, distribution)
