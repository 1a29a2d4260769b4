"""Store port: the quota ledger and per-app usage (tokens, requests, cost), per UTC day.

A reservation holds the worst case of a request (input estimate + clamped max_tokens) until the
request settles or is released. `reserve` must check and write in one atomic step, so concurrent
requests cannot overshoot a quota; reservations carry an expiry, so a request that dies without
releasing cannot hold quota forever.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DailyUsage:
    tokens: int
    reserved: int
    requests: int
    cost_usd: float


class Ledger(Protocol):
    def reserve(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, limit: int,
        now: float, expires_at: float,
    ) -> bool:
        """Hold `tokens` if used + active reservations + tokens <= limit; False when it would not fit."""
        ...

    def settle(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, cost_usd: float, now: float
    ) -> None:
        """Replace the reservation with the tokens actually used, in one atomic step."""
        ...

    def release(self, reservation_id: str) -> None: ...

    def usage(self, app_id: str, day: str, now: float) -> DailyUsage: ...
