"""Per-source request rate limiting with token buckets (``sip.md`` §8.3), sans-I/O.

Why: digest challenges, nonce signing and parsing cost CPU; a registrar line open to every
address (empty Trusted IPs) would otherwise let one source flood the gateway with REGISTERs
that are each answered. Each source gets a bucket of ``burst`` tokens refilled at ``rate``
per second; a request takes one token and is refused when none is left. At most
``max_tracked`` sources are held (least recently seen evicted first), so a flood of spoofed
addresses costs bounded memory. Time is injected (``now``, seconds).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token bucket per key (a source IP)."""

    def __init__(
        self, rate: float = 50.0, burst: float = 200.0, max_tracked: int = 100_000
    ) -> None:
        if rate <= 0 or burst < 1 or max_tracked < 1:
            raise ValueError("need rate > 0, burst >= 1 and max_tracked >= 1")
        self.rate = rate
        self.burst = burst
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str, now: float) -> bool:
        """Take one token for ``key`` at ``now``; False when its bucket is empty."""
        entry = self._buckets.get(key)
        if entry is None:
            if len(self._buckets) >= self.max_tracked:
                self._buckets.popitem(last=False)
            tokens, last = self.burst, now
        else:
            tokens, last = entry
            if now > last:
                tokens = min(self.burst, tokens + (now - last) * self.rate)
                last = now
            self._buckets.move_to_end(key)
        if tokens < 1.0:
            self._buckets[key] = (tokens, last)
            return False
        self._buckets[key] = (tokens - 1.0, last)
        return True

    def forget(self, key: str) -> None:
        """Drop the bucket of ``key`` (it starts full next time)."""
        self._buckets.pop(key, None)
