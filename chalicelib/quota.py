"""Quota: reserve the worst case before a model call, settle the actual usage after it.

Days are UTC. A reservation lives at most as long as a request may (the deadline plus a margin),
so a container that dies mid-request frees its hold on its own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

from chalicelib.catalog import App
from chalicelib.errors import QuotaExceeded
from chalicelib.store import Ledger

_EXPIRY_MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    app_id: str
    day: str
    tokens: int


class QuotaKeeper:
    def __init__(
        self,
        ledger: Ledger,
        request_timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._hold_s = request_timeout_s + _EXPIRY_MARGIN_S
        self._clock = clock

    def reserve(self, app: App, tokens: int, reservation_id: str) -> Reservation:
        now = self._clock()
        day = utc_day(now)
        if tokens > app.tokens_per_day:
            raise QuotaExceeded(
                "request needs more tokens than the app's daily quota allows: lower max_tokens",
                code="quota_exceeded",
            )
        ok = self._ledger.reserve(
            reservation_id=reservation_id, app_id=app.id, day=day, tokens=tokens,
            limit=app.tokens_per_day, now=now, expires_at=now + self._hold_s,
        )
        if not ok:
            raise QuotaExceeded(
                "daily token quota exhausted for this app; it resets at 00:00 UTC",
                headers={"retry-after": str(_seconds_to_midnight(now))},
            )
        return Reservation(reservation_id, app.id, day, tokens)

    def settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        self._ledger.settle(
            reservation_id=reservation.id, app_id=reservation.app_id, day=reservation.day,
            tokens=tokens, cost_usd=cost_usd, now=self._clock(),
        )

    def release(self, reservation: Reservation) -> None:
        self._ledger.release(reservation.id)


    def sweep(self, app_ids: Iterable[str]) -> int:
        """Free the holds of requests that died without settling, today's and yesterday's (a
        request may straddle midnight). Run on a schedule (app.py)."""
        now = self._clock()
        days = {utc_day(now), utc_day(now - 86400)}
        return sum(self._ledger.sweep(app_id, day, now) for app_id in app_ids for day in days)


def utc_day(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def _seconds_to_midnight(epoch_s: float) -> int:
    return int(86400 - epoch_s % 86400) or 1
