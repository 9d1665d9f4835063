"""A client-side rate limiter shared by every request thread of a network provider.

:class:`RateLimiter` spaces request starts evenly at ``rate`` per second (no bursts: a
server that allows N requests per second never sees more than N from us in any second).
Threads *reserve* the next free slot under a lock and sleep outside it, so the limiter is
fair and thread-safe.

When the server still answers 429, :meth:`RateLimiter.throttle` makes every thread wait
(the server's ``Retry-After``, or a backoff delay) and lowers the rate to 80 % of its
current value; the rate climbs back to the configured one over ``recovery_seconds``.
Threads that had already reserved a slot inside the pause queue up again behind it, so a
429 never turns into a stampede the moment the pause ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DECREASE_FACTOR = 0.8  # multiplicative decrease per 429


class RateLimiter:
    """Evenly spaced request starts at up to ``rate`` per second, shared by threads."""

    def __init__(
        self,
        rate: float,
        *,
        min_fraction: float = 0.05,
        recovery_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not rate > 0:
            raise ValueError(f"rate must be > 0 requests per second, got {rate!r}")
        self.rate = float(rate)
        self.min_fraction = min_fraction
        self.recovery_seconds = recovery_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._next_start = clock()  # the earliest start of the next reserved slot
        self._paused_until = 0.0
        self._pause_epoch = 0
        self._fraction = 1.0  # of `rate`, lowered by throttle(), recovering over time
        self._updated = clock()
        self.throttles = 0  # how many times a 429 slowed the limiter (for reports)

    @property
    def current_rate(self) -> float:
        """The rate in force now (requests per second), after any 429 slow-down."""
        with self._lock:
            self._recover(self._clock())
            return self.rate * self._fraction

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Block until this thread may start a request. False if ``cancel`` got set."""
        while True:
            with self._lock:
                now = self._clock()
                self._recover(now)
                start = max(now, self._next_start, self._paused_until)
                self._next_start = start + 1.0 / (self.rate * self._fraction)
                epoch = self._pause_epoch
            wait = start - now
            if cancel is not None:
                if cancel.wait(wait) if wait > 0 else cancel.is_set():
                    return False
            elif wait > 0:
                time.sleep(wait)
            with self._lock:
                # A 429 arrived while we slept and paused everyone past our slot: requeue.
                if self._pause_epoch == epoch or self._paused_until <= start:
                    return True

    def throttle(self, delay: float) -> None:
        """The server said "too many requests": pause everyone ``delay`` s, slow down."""
        with self._lock:
            now = self._clock()
            self._recover(now)
            self._fraction = max(self.min_fraction, self._fraction * DECREASE_FACTOR)
            until = now + max(0.0, delay)
            if until > self._paused_until:
                self._paused_until = until
                self._pause_epoch += 1
            # Slots handed out after the pause are spaced at the lowered rate.
            self._next_start = max(self._next_start, until)
            self.throttles += 1

    def _recover(self, now: float) -> None:
        """Climb linearly back to the full rate (lock held)."""
        if self._fraction < 1.0 and self.recovery_seconds > 0:
            self._fraction = min(1.0, self._fraction
                                 + (now - self._updated) / self.recovery_seconds)
        elif self.recovery_seconds <= 0:
            self._fraction = 1.0
        self._updated = now
