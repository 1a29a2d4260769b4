"""A small, bounded, in-memory record of the SigV4 signatures already accepted (local mode only).

A signature stays acceptable for the clock-skew window after it was made, so one captured on the
wire could be replayed until then. Each verified signature is kept until its window closes; a
second use inside it is refused. SigV4 has no nonce: two byte-identical requests signed in the
same second share a signature, so `client/garden_auth.py` signs a random `x-garden-nonce` header.

Bounded: past `capacity` live entries the one whose window closes first is dropped (it could then
be replayed until it expires). Only verified signatures enter, so filling it needs a valid key.
"""
from __future__ import annotations

import heapq
import threading
from datetime import datetime


class ReplayCache:
    def __init__(self, capacity: int = 16_384) -> None:
        self._capacity = capacity
        self._expiry: dict[str, float] = {}  # signature -> when its skew window closes (epoch s)
        self._heap: list[tuple[float, str]] = []  # the same, ordered by expiry
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def first_use(self, signature: str, now: datetime, expires: datetime) -> bool:
        """Record `signature` until `expires`; False if it was already recorded and still live."""
        now_s, expires_s = now.timestamp(), expires.timestamp()
        with self._lock:
            while self._heap and self._heap[0][0] <= now_s:
                _, old = heapq.heappop(self._heap)
                self._expiry.pop(old, None)
            if signature in self._expiry:
                return False
            while len(self._expiry) >= self._capacity:
                _, old = heapq.heappop(self._heap)
                self._expiry.pop(old, None)
            self._expiry[signature] = expires_s
            heapq.heappush(self._heap, (expires_s, signature))
            return True
