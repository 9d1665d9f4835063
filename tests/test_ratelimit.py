"""The shared client-side rate limiter: even spacing across threads, 429 pauses, recovery.

Timing checks use lower bounds (sleeping can only take longer) and generous upper bounds.
"""

from __future__ import annotations

import threading
import time

import pytest

from pgallery.providers.ratelimit import RateLimiter


def test_requests_are_spaced_evenly_at_the_rate():
    limiter = RateLimiter(50)
    began = time.monotonic()
    starts = []
    for _ in range(6):
        limiter.acquire()
        starts.append(time.monotonic() - began)
    # The k-th start is never before k/50 s (a late wake-up may shorten the next gap, but
    # never lets a request in ahead of its slot), and there is no burst at the start.
    assert all(start >= k / 50 - 1e-3 for k, start in enumerate(starts))
    assert starts[-1] < 0.5


def test_threads_share_one_budget():
    limiter = RateLimiter(100)
    starts, lock = [], threading.Lock()

    def worker():
        for _ in range(5):
            limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    assert len(starts) == 20
    assert starts[-1] - starts[0] >= 19 / 100 - 0.002  # 20 starts at 100/s, not 4x that


def test_a_throttle_pauses_every_thread_and_lowers_the_rate():
    limiter = RateLimiter(100, recovery_seconds=60)
    limiter.acquire()
    limiter.throttle(0.3)
    assert limiter.current_rate == pytest.approx(80, rel=0.01)
    started = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - started >= 0.29
    assert limiter.throttles == 1


def test_a_thread_already_waiting_is_requeued_behind_a_new_pause():
    limiter = RateLimiter(5)  # slots 0.2 s apart
    limiter.acquire()
    woke = []
    waiter = threading.Thread(target=lambda: (limiter.acquire(), woke.append(time.monotonic())))
    started = time.monotonic()
    waiter.start()  # reserved the slot at ~0.2 s
    time.sleep(0.05)
    limiter.throttle(0.5)  # a 429 elsewhere: nobody may start before ~0.55 s
    waiter.join()
    assert woke[0] - started >= 0.5


def test_the_rate_recovers_after_a_throttle():
    limiter = RateLimiter(100, recovery_seconds=0.2)
    limiter.throttle(0)
    limiter.throttle(0)
    assert limiter.current_rate < 70
    time.sleep(0.25)
    assert limiter.current_rate == 100


def test_the_rate_never_drops_below_its_floor():
    limiter = RateLimiter(100, min_fraction=0.1, recovery_seconds=60)
    for _ in range(50):
        limiter.throttle(0)
    assert limiter.current_rate == pytest.approx(10, rel=0.01)


def test_acquire_gives_up_when_cancelled():
    limiter = RateLimiter(1)
    limiter.acquire()
    cancel = threading.Event()
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    assert limiter.acquire(cancel) is False
    assert time.monotonic() - started < 0.5


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate must be > 0"):
        RateLimiter(0)
