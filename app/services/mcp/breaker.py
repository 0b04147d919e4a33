"""A per-replica circuit breaker: open after consecutive failures, then one half-open trial."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Counts consecutive failures; an open circuit lets one trial through after a pause."""

    def __init__(
        self,
        *,
        failures: int,
        reset_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.reset_after_s = reset_after_s
        self._clock = clock
        self.state: BreakerState = "closed"
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_at: float | None = None

    def available(self) -> bool:
        """Whether a request may be routed here now (does not take the trial slot)."""
        if self.state == "closed":
            return True
        now = self._clock()
        if self.state == "open":
            return now - self._opened_at >= self.reset_after_s
        # half-open: one trial at a time; a trial that never reported expires
        return self._trial_at is None or now - self._trial_at >= self.reset_after_s

    def acquire(self) -> bool:
        """Take permission for one request; an elapsed open circuit turns half-open."""
        if not self.available():
            return False
        if self.state != "closed":
            self.state = "half_open"
            self._trial_at = self._clock()
        return True

    def record_success(self) -> None:
        """A request or probe worked: close the circuit."""
        self.state = "closed"
        self.consecutive_failures = 0
        self._trial_at = None

    def record_failure(self) -> None:
        """A request or probe failed; open at the threshold or when a trial fails."""
        self.consecutive_failures += 1
        if self.state == "half_open" or self.consecutive_failures >= self.threshold:
            self.state = "open"
            self._opened_at = self._clock()
            self._trial_at = None

    def trip(self) -> None:
        """Open now (the connection is known to be gone)."""
        self.consecutive_failures = max(self.consecutive_failures, self.threshold)
        self.state = "open"
        self._opened_at = self._clock()
        self._trial_at = None
