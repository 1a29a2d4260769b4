"""Quota: reserve the worst case before a model call, settle the actual usage after it.

The worst case is an upper bound on the prompt (tokens.estimate_input_tokens) plus max_tokens.
The reservation is made before any paid call (PII detection, guardrails, the model), on the
caller's text; once redaction and guardrails have shaped the text the model will see, `top_up`
holds whatever it grew by, atomically, before the model is called. Usage above the reservation
(a provider billing more than the estimate) is still booked, so the next reservation sees it.

Days are UTC. A reservation lives at most as long as a request may (the deadline plus a margin),
so a container that dies mid-request frees its hold on its own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from chalicelib.catalog import App
from chalicelib.errors import QuotaExceeded
from chalicelib.store import Ledger

_EXPIRY_MARGIN_S = 60.0
_FLEXIBLE_ATTEMPTS = 3  # re-read and retry a shrunk reservation when racing requests take the room


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    app_id: str
    day: str
    input_tokens: int  # the prompt's upper-bound estimate (tokens.estimate_input_tokens)
    output_tokens: int  # max_tokens the provider is given: never more than is held for it
    flexible: bool = False  # the caller set no max_tokens: output may shrink to fit the budget

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


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

    def reserve(self, app: App, input_tokens: int, output_tokens: int, reservation_id: str,
                flexible: bool = False) -> Reservation:
        """Hold input + output tokens before any paid call. `flexible` (the caller set no
        max_tokens): when the whole does not fit, output shrinks to what the budget has left."""
        now = self._clock()
        day = utc_day(now)
        floor = 1 if flexible else output_tokens
        if input_tokens + floor > _daily(app):
            what = "the prompt" if flexible else "the prompt plus max_tokens"
            raise QuotaExceeded(f"{what} needs more tokens than the app's daily quota allows: "
                                f"{'shorten the prompt' if flexible else 'lower max_tokens'}", code="quota_exceeded")
        reservation = Reservation(reservation_id, app.id, day, input_tokens, output_tokens, flexible)
        if self._hold(app, reservation, now):
            return reservation
        for _ in range(_FLEXIBLE_ATTEMPTS if flexible else 0):
            usage = self._ledger.usage(app.id, day, now)
            left = _daily(app) - usage.tokens - usage.reserved - input_tokens
            if left < 1:
                break
            reservation = Reservation(reservation_id, app.id, day, input_tokens, min(output_tokens, left), True)
            if self._hold(app, reservation, now):  # still conditional: a racing request may win
                return reservation
        raise _exhausted(now)

    def top_up(self, app: App, reservation: Reservation, input_tokens: int) -> Reservation:
        """The prompt grew after the reservation (redaction placeholders, a guardrail's masks):
        hold the difference before the provider call, or give it from a flexible output budget."""
        extra = input_tokens - reservation.input_tokens
        if extra <= 0:
            return reservation
        now = self._clock()
        if self._ledger.top_up(reservation_id=reservation.id, app_id=reservation.app_id, day=reservation.day,
                               tokens=extra, limit=_daily(app), now=now):
            return replace(reservation, input_tokens=input_tokens)
        if reservation.flexible and reservation.output_tokens - extra >= 1:
            return replace(reservation, input_tokens=input_tokens, output_tokens=reservation.output_tokens - extra)
        raise _exhausted(now)

    def _hold(self, app: App, reservation: Reservation, now: float) -> bool:
        return self._ledger.reserve(
            reservation_id=reservation.id, app_id=app.id, day=reservation.day, tokens=reservation.tokens,
            limit=_daily(app), now=now, expires_at=now + self._hold_s,
        )

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


def _daily(app: App) -> int:
    # No daily limit set: nothing to refuse on (the other windows arrive with the limits ledger).
    return app.quotas.tokens_per_day if app.quotas.tokens_per_day is not None else _UNLIMITED


_UNLIMITED = 2**62


def _exhausted(now: float) -> QuotaExceeded:
    return QuotaExceeded("daily token quota exhausted for this app; it resets at 00:00 UTC",
                         headers={"retry-after": str(_seconds_to_midnight(now))})


def utc_day(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def _seconds_to_midnight(epoch_s: float) -> int:
    return int(86400 - epoch_s % 86400) or 1
