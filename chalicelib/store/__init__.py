"""Store port: the quota ledger and per-app usage (tokens, requests, cost), per UTC day.

A reservation holds the worst case of a request (input estimate + clamped max_tokens) until the
request settles or is released. `reserve` must check and write in one atomic step, so concurrent
requests cannot overshoot a quota; reservations carry an expiry, so a request that dies without
releasing cannot hold quota forever.

Expired reservations differ between adapters until swept: SQLite stops counting them on its own
(reserve and usage filter on expiry); DynamoDB counts them in `reserve` and `usage().reserved`
until `sweep` frees them (its conditions cannot compare a sum of items). Call `sweep` on a
schedule; after `sweep(app, day, now)` both adapters agree.
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

    def top_up(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, limit: int, now: float,
    ) -> bool:
        """Grow a live reservation by `tokens` if used + active reservations + tokens <= limit, in
        one atomic step; False when it would not fit or the reservation is gone (expired, swept)."""
        ...

    def release(self, reservation_id: str) -> None: ...

    def usage(self, app_id: str, day: str, now: float) -> DailyUsage: ...

    def sweep(self, app_id: str, day: str, now: float) -> int:
        """Release the holds of reservations that expired (requests that died without settling);
        returns how many. Settling a swept reservation still records its usage."""
        ...
