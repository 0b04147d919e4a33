"""Choosing a replica: round_robin, least_busy or failover (first usable in order)."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import Generic, Protocol, TypeVar


class Candidate(Protocol):
    """What the balancer needs to know about a replica."""

    @property
    def usable(self) -> bool:
        """Connected and its circuit lets a request through."""
        ...

    @property
    def in_flight(self) -> int:
        """Requests currently running on it."""
        ...


C = TypeVar("C", bound=Candidate)


class Balancer(Generic[C]):
    """Picks the next replica for a call under one strategy."""

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self._counter = itertools.count()

    def pick(self, replicas: Sequence[C], *, exclude: Collection[C] = ()) -> C | None:
        """The replica for the next attempt, or None when none is usable."""
        candidates = [r for r in replicas if r.usable and r not in exclude]
        if not candidates:
            return None
        if self.strategy == "failover":
            return candidates[0]
        start = next(self._counter)
        rotated = [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]
        if self.strategy == "least_busy":
            # ties rotate, so an idle pool still spreads sequential calls
            return min(rotated, key=lambda r: r.in_flight)
        return rotated[0]
