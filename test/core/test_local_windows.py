"""The in-process moving windows behind the rate limits (no Redis)."""

from __future__ import annotations

import pytest

from app.core import ratelimit
from app.core.ratelimit import LocalWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", fake)
    return fake


def test_a_window_allows_its_amount_then_says_how_long_to_wait(clock: Clock) -> None:
    windows = LocalWindows()
    for _ in range(3):
        assert windows.hit("k", amount=3, window_s=60) is None
        clock.now += 10
    assert windows.hit("k", amount=3, window_s=60) == pytest.approx(30)  # the first hit + 60 s
    clock.now += 30  # the first hit leaves the window: one slot is free, exactly one
    assert windows.hit("k", amount=3, window_s=60) is None
    assert windows.hit("k", amount=3, window_s=60) == pytest.approx(10)


def test_refused_hits_do_not_count_and_keys_are_independent(clock: Clock) -> None:
    windows = LocalWindows()
    assert windows.hit("a", amount=1, window_s=5) is None
    for _ in range(10):
        assert windows.hit("a", amount=1, window_s=5) is not None
    assert windows.hit("b", amount=1, window_s=5) is None
    clock.now += 5  # a moving window, not a fixed one: free once the one hit is 5 s old
    assert windows.hit("a", amount=1, window_s=5) is None


def test_idle_keys_are_forgotten(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "SWEEP_EVERY", 10)
    windows = LocalWindows()
    for i in range(5):
        windows.hit(f"old-{i}", amount=5, window_s=1)
    clock.now += 2
    for i in range(5):
        windows.hit(f"new-{i}", amount=5, window_s=60)  # the 10th hit sweeps
    assert sorted(windows._keys) == [f"new-{i}" for i in range(5)]
    windows.clear()
    assert windows._keys == {}
