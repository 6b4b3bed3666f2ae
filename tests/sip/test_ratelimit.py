"""Token-bucket rate limiter, sans-I/O with a fake clock."""

from __future__ import annotations

import pytest

from tgsip.sip.ratelimit import RateLimiter


def test_burst_then_refill_at_rate() -> None:
    rl = RateLimiter(rate=10, burst=5)
    assert [rl.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert rl.allow("b", 0.0)  # buckets are per key
    assert not rl.allow("a", 0.05)  # half a token
    assert rl.allow("a", 0.1)
    assert not rl.allow("a", 0.1)
    assert [rl.allow("a", 10.0) for _ in range(6)] == [True] * 5 + [False]  # capped at burst


def test_clock_going_back_does_not_mint_tokens() -> None:
    rl = RateLimiter(rate=1, burst=1)
    assert rl.allow("a", 100.0)
    assert not rl.allow("a", 50.0)
    assert not rl.allow("a", 100.5)
    assert rl.allow("a", 101.5)


def test_memory_is_bounded_and_forget() -> None:
    rl = RateLimiter(rate=1, burst=1, max_tracked=100)
    for i in range(1000):
        rl.allow(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(rl) == 100
    assert not rl.allow("10.0.3.231", 0.0)  # the most recent keys are kept
    rl.forget("10.0.3.231")
    assert rl.allow("10.0.3.231", 0.0)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0)
