"""Public reads per client address, counted in this process: a public key sits in
every visitor's page, so the address is the only thing to hold a scraper to.

In process memory, not in Redis: a Redis call per public read is what the shared
count exists to avoid. With N processes behind a load balancer an address may make
up to N times the limit.
"""

from __future__ import annotations

import time

WINDOW = 60.0  # seconds
MAX_ADDRESSES = 100_000  # remembered at most; past it, those whose minute is over go


class AddressLimit:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute  # 0: no limit
        self._windows: dict[str, list[float]] = {}  # address -> [window start, requests]

    def wait(self, address: str) -> float:
        """0 and counted when the address may read now; otherwise seconds to wait."""
        if not self.per_minute:
            return 0.0
        now = time.monotonic()
        window = self._windows.get(address)
        if window is None or now - window[0] >= WINDOW:
            if window is None and len(self._windows) >= MAX_ADDRESSES:
                self._forget(now)
            self._windows[address] = [now, 1]
            return 0.0
        if window[1] >= self.per_minute:
            return WINDOW - (now - window[0])
        window[1] += 1
        return 0.0

    def _forget(self, now: float) -> None:
        over = [a for a, (start, _) in self._windows.items() if now - start >= WINDOW]
        for address in over or list(self._windows):
            del self._windows[address]
