"""Rate limits: an async token bucket, used for requests per minute and tokens per minute."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """``per_minute`` units per minute, in bursts of up to one second's worth.

    For requests each request takes one unit. For tokens a request takes its estimated size before it
    is sent, and :meth:`adjust` charges or refunds the difference once the server says what it used.
    Use it from one event loop.
    """

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, n: float) -> None:
        """Wait until ``n`` units (at most one burst) are available, then take them."""
        n = min(n, self.capacity)
        async with self.lock:
            while True:
                self._refill()
                if self.level >= n:
                    self.level -= n
                    return
                await asyncio.sleep((n - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Charge (or refund) the difference between estimated and actual use."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)
