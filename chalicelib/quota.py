"""Quota: every limit that applies to a request, reserved at once before any paid call, settled
to what the call used after it.

Limits (catalog `quotas`, `business_units`): the app's tokens per minute, day and month, requests
per minute, USD per month, a per-model tokens-per-day cap, and its business unit's USD and tokens
per month. Days and months are UTC calendar days and months; minutes are fixed one-minute windows
(hh:mm:00 to hh:mm+1:00 UTC). Each is a counter in the ledger (chalicelib/store); a reservation
holds on all of them in one atomic step per store, so no limit is overshot by concurrent requests.

A reservation holds the worst case: the prompt's upper-bound estimate (tokens.estimate_input_tokens)
plus max_tokens, priced for the USD budgets at the highest price on the app's route for the model
(any deployment may serve it). After redaction and guardrails have shaped the text the model will
see, `top_up` holds what it grew by before the model is called. `settle` books what was actually
used, at the price of the deployment that served (usage above the reservation still counts: the
next reservation sees it). A request that fails before a model answered books nothing but its
place in the requests-per-minute window (it was admitted: PII detection and guardrails ran).

A reservation lives at most as long as a request may (the deadline plus a margin), so a request
that dies mid-way frees its holds on its own (SQLite) or at the scheduled sweep.

Refusals: over a per-minute limit, 429 `rate_limit_exceeded`; over a day, month or USD budget,
429 `insufficient_quota`; both with `retry-after` (seconds to the window's reset) and the refusing
window's `x-ratelimit-*` headers. A request that alone needs more than a whole limit is 429 with its
limit's code and a message saying what to lower (no retry-after: waiting will not help).
Store unavailable: 503, unless the app says `on_store_unavailable: fail_open` (served unmetered;
the request's record says so).
"""
from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from chalicelib.catalog import App, BusinessUnit, Model
from chalicelib.errors import GatewayError, QuotaExceeded, ServiceUnavailable
from chalicelib.ratelimit_headers import Window, ratelimit_headers
from chalicelib.store import Hold, Ledger, Limit, Refused, day_keys, limit_key
from chalicelib.usage import cost_units

_EXPIRY_MARGIN_S = 60.0
_FLEXIBLE_ATTEMPTS = 3  # re-read and retry a shrunk reservation when racing requests take the room
_UNITS_PER_USD = 10**8  # USD counters count whole 1e-8 USD (usage.COST_UNIT)
STORE_FAIL_OPEN = "UNAVAILABLE:FAIL_OPEN"


@dataclass(frozen=True, slots=True)
class Plan:
    """The limits one request meets, by what they count."""

    tokens: tuple[Limit, ...]  # input + output tokens (capped windows and the day's bookkeeping)
    admitted: tuple[Limit, ...]  # requests per minute: 1 per admitted request, even if it then fails
    answered: tuple[Limit, ...]  # the day's requests answered (bookkeeping)
    usd: tuple[Limit, ...]  # 1e-8 USD: at the route's highest price when held, the actual cost when settled
    input_per_1k: float = 0.0  # the route's highest prices (USD per 1,000 tokens)
    output_per_1k: float = 0.0
    names: dict[str, str] = field(default_factory=dict)  # limit key -> the catalog field that set it

    def holds(self, input_tokens: int, output_tokens: int) -> list[Hold]:
        return self.used(input_tokens + output_tokens, self.price_units(input_tokens, output_tokens), 1)

    def used(self, tokens: int, usd_units: int, answered: int) -> list[Hold]:
        return ([Hold(limit, tokens) for limit in self.tokens] + [Hold(limit, 1) for limit in self.admitted]
                + [Hold(limit, answered) for limit in self.answered] + [Hold(limit, usd_units) for limit in self.usd])

    def price_units(self, input_tokens: int, output_tokens: int) -> int:
        # USD/1k x tokens / 1000 x 1e8 = x 1e5; rounded up (a hold is an upper bound), float dust aside.
        return math.ceil(round((input_tokens * self.input_per_1k + output_tokens * self.output_per_1k) * 1e5, 6))


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    app_id: str
    day: str
    input_tokens: int  # the prompt's upper-bound estimate (tokens.estimate_input_tokens)
    output_tokens: int  # max_tokens the provider is given: never more than is held for it
    flexible: bool = False  # the caller set no max_tokens: output may shrink to fit the budget
    plan: Plan | None = None  # None: unmetered (the store was down and the app fails open)
    fail_open: bool = False  # the app's on_store_unavailable: a store down at settle is not an error
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-*, as the reservation left them
    budget_pace: float | None = None  # the business unit's USD spent / budget to date (`budget_pace`)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def unmetered(self) -> bool:
        return self.plan is None


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
                flexible: bool = False, *, model: Model | None = None,
                unit: BusinessUnit | None = None) -> Reservation:
        """Hold input + output tokens (and their price, and one request) on every limit that
        applies, before any paid call. `flexible` (the caller set no max_tokens): when the whole
        does not fit, output shrinks to what the budgets have left."""
        now = self._clock()
        plan = plan_for(app, model, unit, now)
        self._check_whole(plan, input_tokens, 1 if flexible else output_tokens, flexible, now)
        reservation = Reservation(reservation_id, app.id, utc_day(now), input_tokens, output_tokens, flexible, plan,
                                  fail_open=app.store_fail_open)
        try:
            refused = self._hold(reservation, now)
            for _ in range(_FLEXIBLE_ATTEMPTS if flexible else 0):
                if refused is None or refused.limit is None or refused.limit.key not in _room_keys(plan):
                    break
                room = self._output_room(plan, input_tokens, now)
                if room < 1:
                    break
                reservation = replace(reservation, output_tokens=min(output_tokens, room))
                refused = self._hold(reservation, now)  # still conditional: a racing request may win
        except ServiceUnavailable:
            if not app.store_fail_open:
                raise
            return replace(reservation, plan=None)  # served unmetered: the caller's record says so
        if refused is not None:
            raise self._exhausted(plan, refused.limit, now)
        return replace(reservation, headers=self._headers(plan, now), budget_pace=self._budget_pace(plan, now))

    def top_up(self, app: App, reservation: Reservation, input_tokens: int) -> Reservation:
        """The prompt grew after the reservation (redaction placeholders, a guardrail's masks):
        hold the difference before the provider call, or give it from a flexible output budget."""
        extra = input_tokens - reservation.input_tokens
        plan = reservation.plan
        if extra <= 0 or plan is None:
            return replace(reservation, input_tokens=max(input_tokens, reservation.input_tokens))
        now = self._clock()
        holds = [Hold(limit, extra) for limit in plan.tokens]
        holds += [Hold(limit, plan.price_units(input_tokens, reservation.output_tokens)
                       - plan.price_units(reservation.input_tokens, reservation.output_tokens)) for limit in plan.usd]
        try:
            refused = self._ledger.top_up(reservation_id=reservation.id, holds=holds, now=now)
        except ServiceUnavailable:
            if not app.store_fail_open:
                raise
            refused = None  # the reservation stands; what it grew by goes unmetered
        if refused is None:
            return replace(reservation, input_tokens=input_tokens)
        shrunk = reservation.output_tokens - extra
        if reservation.flexible and shrunk >= 1 and (
                plan.price_units(input_tokens, shrunk) <= plan.price_units(reservation.input_tokens,
                                                                           reservation.output_tokens)):
            return replace(reservation, input_tokens=input_tokens, output_tokens=shrunk)
        raise self._exhausted(plan, refused.limit or plan.tokens[0], now)

    def settle(self, reservation: Reservation, tokens: int, cost_usd: float) -> None:
        """Book what the call used, at the serving deployment's price, in place of the holds."""
        if reservation.plan is not None:
            self._book(reservation, reservation.plan.used(tokens, cost_units(cost_usd), 1))

    def release(self, reservation: Reservation) -> None:
        """No model answered: free the holds; the request keeps its place in per-minute windows."""
        if reservation.plan is not None:
            self._book(reservation, reservation.plan.used(0, 0, 0))

    def headers(self, app: App, unit: BusinessUnit | None = None) -> dict[str, str]:
        """The app's x-ratelimit-* as its windows stand, consuming nothing (`/v1/models`): the
        app-wide windows only (a per-model cap belongs to a chat or embeddings request). Empty when
        the store cannot answer: a listing never fails on its headers."""
        now = self._clock()
        try:
            return self._headers(plan_for(app, None, unit, now), now)
        except ServiceUnavailable:
            return {}

    def sweep(self) -> int:
        """Free the holds of requests (and leases of containers) that died, for every app. Run on a
        schedule (app.py)."""
        return self._ledger.sweep(self._clock())

    # -- helpers ------------------------------------------------------------------------------
    def _book(self, reservation: Reservation, used: list[Hold]) -> None:
        try:
            self._ledger.settle(reservation_id=reservation.id, used=used, now=self._clock())
        except ServiceUnavailable:
            if not reservation.fail_open:
                raise
            # Failing open: the answer is not lost for the store; its holds expire on their own.

    def _hold(self, reservation: Reservation, now: float) -> Refused | None:
        assert reservation.plan is not None
        return self._ledger.reserve(
            reservation_id=reservation.id, holds=reservation.plan.holds(reservation.input_tokens,
                                                                         reservation.output_tokens),
            now=now, expires_at=now + self._hold_s)

    def _check_whole(self, plan: Plan, input_tokens: int, output_floor: int, flexible: bool, now: float) -> None:
        """A request that could not fit in an empty window of some limit is refused at once."""
        lower = "shorten the prompt" if flexible else "lower max_tokens or shorten the prompt"
        for hold in plan.holds(input_tokens, output_floor):
            if hold.limit.cap is not None and hold.amount > hold.limit.cap:
                name = plan.names.get(hold.limit.key, "a limit")
                what = "costs more at the route's highest price" if hold.limit in plan.usd else "needs more tokens"
                raise QuotaExceeded(f"this request {what} than {name} allows: {lower}",
                                    code=_code(hold.limit), headers=self._window_headers(plan, hold.limit, now))

    def _output_room(self, plan: Plan, input_tokens: int, now: float) -> int:
        """The most output tokens every token and USD limit still has room for."""
        limits = [limit for limit in plan.tokens + plan.usd if limit.cap is not None]
        room = 2**62
        for limit, left in zip(limits, self._ledger.remaining(limits, now), strict=True):
            if left is None:
                continue
            if limit in plan.tokens:
                room = min(room, left - input_tokens)
            elif plan.output_per_1k > 0:
                room = min(room, math.floor((left - plan.price_units(input_tokens, 0)) / (plan.output_per_1k * 1e5)))
            elif plan.price_units(input_tokens, 0) > left:
                room = 0
        return room

    def _exhausted(self, plan: Plan, limit: Limit | None, now: float) -> QuotaExceeded:
        limit = limit or plan.tokens[0]
        name = plan.names.get(limit.key, "a limit")
        wait = _seconds_until(limit.resets_at, now)
        window = limit.key.split("/")[-2]
        when = {"minute": "at the next minute", "day": "at 00:00 UTC",
                "month": "on the 1st of next month, 00:00 UTC"}[window]
        headers = {"retry-after": str(wait), **self._window_headers(plan, limit, now)}
        return QuotaExceeded(f"{name} is used up for this window; it resets {when}", code=_code(limit),
                             headers=headers)

    def _window_headers(self, plan: Plan, limit: Limit, now: float) -> dict[str, str]:
        """The x-ratelimit-* trio of the window that refused (none for a USD budget)."""
        kind = _kind(plan, limit)
        if kind is None or limit.cap is None:
            return {}
        try:
            (left,) = self._ledger.remaining([limit], now)
        except ServiceUnavailable:
            return {}
        return ratelimit_headers([Window(kind, limit.cap, max(0, left or 0), limit.resets_at - now)])

    def _budget_pace(self, plan: Plan, now: float) -> float | None:
        """The business unit's month so far: USD spent (live holds included, so an upper bound) over
        its monthly budget pro rata to date, the first day counted whole so that a morning's first
        calls do not read as a runaway. Budgets change at run time, so the gateway, which knows
        both, emits it (telemetry.py: BudgetPace). None without a BU USD budget. Costs no store
        call on DynamoDB (the reservation's lease knows the counter) and one local read on SQLite."""
        budget = next((limit for limit in plan.usd if limit.key.startswith("bu/") and limit.cap), None)
        if budget is None or budget.cap is None:
            return None
        try:
            (left,) = self._ledger.remaining([budget], now)
        except ServiceUnavailable:
            return None
        if left is None:
            return None
        t = time.gmtime(now)
        start = float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0)))
        to_date = budget.cap * min(1.0, max(now - start, 86400.0) / (budget.resets_at - start))
        return round((budget.cap - left) / to_date, 4)

    def _headers(self, plan: Plan, now: float) -> dict[str, str]:
        limits = [limit for limit in plan.admitted + plan.tokens if limit.cap is not None]
        if not limits:
            return {}
        try:
            left = self._ledger.remaining(limits, now)
        except ServiceUnavailable:
            return {}  # the reservation stands; only its headers are missing
        return ratelimit_headers([Window(_kind(plan, limit) or "tokens", limit.cap or 0, max(0, n or 0),
                                         limit.resets_at - now) for limit, n in zip(limits, left, strict=True)])


def plan_for(app: App, model: Model | None, unit: BusinessUnit | None, now: float) -> Plan:
    """Every limit the catalog sets for a request of `app` on `model`, in the windows of `now`."""
    q = app.quotas
    day, month, minute = utc_day(now), time.strftime("%Y-%m", time.gmtime(now)), time.strftime(
        "%Y-%m-%dT%H:%M", time.gmtime(now))
    ends = {"minute": (now // 60 + 1) * 60, "day": (now // 86400 + 1) * 86400, "month": _end_of_month(now)}
    periods = {"minute": minute, "day": day, "month": month}
    names: dict[str, str] = {}

    def limit(scope: str, what: str, window: str, cap: Any, name: str) -> Limit:
        key = limit_key(scope, what, window, periods[window])
        names[key] = name
        if what == "usd" and cap is not None:
            cap = int(round(cap * _UNITS_PER_USD))
        return Limit(key, cap, ends[window])

    scope = f"app/{app.id}"
    day_tokens, day_requests, day_usd = day_keys(app.id, day)
    tokens = [Limit(day_tokens, q.tokens_per_day, ends["day"])]
    names[day_tokens] = "quotas.tokens_per_day"
    admitted, usd = [], [Limit(day_usd, None, ends["day"])]
    if q.tokens_per_month is not None:
        tokens.append(limit(scope, "tokens", "month", q.tokens_per_month, "quotas.tokens_per_month"))
    if q.tokens_per_minute is not None:
        tokens.append(limit(scope, "tokens", "minute", q.tokens_per_minute, "quotas.tokens_per_minute"))
    if q.requests_per_minute is not None:
        admitted.append(limit(scope, "requests", "minute", q.requests_per_minute, "quotas.requests_per_minute"))
    if q.usd_per_month is not None:
        usd.append(limit(scope, "usd", "month", q.usd_per_month, "quotas.usd_per_month"))
    if model is not None and model.id in q.model_tokens_per_day:
        tokens.append(limit(f"{scope}/model/{model.id}", "tokens", "day", q.model_tokens_per_day[model.id],
                            f"quotas.models.{model.id}.tokens_per_day"))
    if unit is not None:
        bu = f"bu/{unit.id}"
        if unit.tokens_per_month is not None:
            tokens.append(limit(bu, "tokens", "month", unit.tokens_per_month,
                                f"business_units.{unit.id}.tokens_per_month"))
        if unit.usd_per_month is not None:
            usd.append(limit(bu, "usd", "month", unit.usd_per_month, f"business_units.{unit.id}.usd_per_month"))
    input_price = output_price = 0.0
    if model is not None:
        # Issue 9's rule: any deployment of the route may serve, so hold at the highest price on it
        # (a cache write may cost more than plain input: the hold covers it too).
        prices = [model.price_for(d) for d in model.deployments] or [model.price]
        input_price = max(max(p.input_per_1k, p.cache_write_per_1k or 0.0) for p in prices)
        output_price = max(p.output_per_1k for p in prices)
    return Plan(tuple(tokens), tuple(admitted), (Limit(day_requests, None, ends["day"]),), tuple(usd),
                input_price, output_price, names)


def _room_keys(plan: Plan) -> set[str]:
    return {limit.key for limit in plan.tokens + plan.usd}


def _kind(plan: Plan, limit: Limit) -> str | None:
    if limit in plan.admitted:
        return "requests"
    if limit in plan.tokens:
        return "tokens"
    return None


def _code(limit: Limit) -> str:
    return "rate_limit_exceeded" if limit.key.split("/")[-2] == "minute" else "insufficient_quota"


def _end_of_month(now: float) -> float:
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)))


def _seconds_until(at: float, now: float) -> int:
    return max(1, math.ceil(at - now))


def utc_day(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def with_headers(error: BaseException, headers: dict[str, str]) -> None:
    """A gateway error raised after the reservation carries its x-ratelimit-* headers too (its
    own, such as a refusing window's, win)."""
    if isinstance(error, GatewayError) and headers:
        error.headers = {**headers, **error.headers}


def with_app_headers(error: GatewayError, keeper: QuotaKeeper, app: App, unit: BusinessUnit | None) -> None:
    """An error answered to a known app before (or without) a reservation's headers carries the
    app's windows as they stand."""
    if not any(name.startswith("x-ratelimit-") for name in error.headers):
        error.headers = {**keeper.headers(app, unit), **error.headers}
