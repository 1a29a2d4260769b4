"""Store port: the limits ledger. Every limit is a counter; a reservation holds amounts on several.

A `Limit` is one counter with its cap and window: its key names who (app, model, business unit),
what (tokens, requests, USD in whole 1e-8 units) and which window (minute, day, month, UTC), e.g.
`app/retail/tokens/day/2026-11-29` (`limit_key`). A reservation is a list of `Hold`s, one per limit
that applies to a request; `reserve` grants all of them or none, in one atomic step per store: for
every hold, used + held + amount <= cap. A cap of None is counted, never refused (the bookkeeping
counters of `day_keys`, which `SqliteLedger.usage` reads). `settle` replaces a reservation's holds by what was actually used
(more than was held still counts: the next reservation sees it) and is idempotent per reservation
id; `release` frees them; reservations expire, and `sweep` frees what requests that died left.

Adapters:
- SQLite (sqlite.py): counters and reservations in one file; every step is one transaction under
  the write lock. Expired holds are freed by the next reserve and by `sweep`.
- DynamoDB (dynamodb.py): containers lease blocks of each counter atomically (conditional on the
  cap) and serve reservations from their leases in memory: a hot app costs its counter a write per
  block, not two per request. A lease never lets a counter pass its cap: a request may be refused a
  little early (other containers hold unused leases), never late. See the adapter for dead
  containers' leases.

`remaining` is for response headers: SQLite reads it; DynamoDB answers from what the container last
saw (no call). `flush` hands unused leases back (SQLite: nothing to do); after it, `counters` of the
two adapters agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True, slots=True)
class Limit:
    key: str  # the counter: who, what and which window (limit_key)
    cap: int | None  # whole units: tokens, requests or 1e-8 USD; None: counted, never refused
    resets_at: float  # epoch seconds at which the window ends (the counter is not needed after it)


@dataclass(frozen=True, slots=True)
class Hold:
    limit: Limit
    amount: int


@dataclass(frozen=True, slots=True)
class Counter:
    used: int  # settled usage
    held: int  # live reservations (DynamoDB: leases, which include them)


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a reservation or top-up was not granted: the limit it would overshoot, or None when the
    reservation to grow is gone (settled, released, expired or swept)."""

    limit: Limit | None


@dataclass(frozen=True, slots=True)
class DailyUsage:
    tokens: int
    reserved: int
    requests: int
    cost_usd: float


def limit_key(scope: str, what: str, window: str, period: str) -> str:
    """`scope` e.g. `app/retail` or `bu/retail-banking` or `app/retail/model/m`; `what` tokens,
    requests or usd; `window` minute, day or month; `period` the window's UTC label."""
    return f"{scope}/{what}/{window}/{period}"


def day_keys(app_id: str, day: str) -> tuple[str, str, str]:
    """The app's bookkeeping counters of a UTC day: tokens (capped by tokens_per_day, if set),
    requests answered, and cost in 1e-8 USD. Every request holds them."""
    scope = f"app/{app_id}"
    return (limit_key(scope, "tokens", "day", day), limit_key(scope, "requests", "day", day),
            limit_key(scope, "usd", "day", day))


class Ledger(Protocol):
    def reserve(
        self, *, reservation_id: str, holds: Sequence[Hold], now: float, expires_at: float,
    ) -> Refused | None:
        """Hold every amount if, for each capped limit, used + held + amount <= cap: all or none,
        atomically. None when granted, else the (first) limit that would be overshot. An id held
        already is a ValueError; a finished one (settled, released, swept) may be reserved again."""
        ...

    def top_up(self, *, reservation_id: str, holds: Sequence[Hold], now: float) -> Refused | None:
        """Grow a live reservation by `holds`, under the same condition, atomically."""
        ...

    def settle(self, *, reservation_id: str, used: Sequence[Hold], now: float) -> None:
        """Replace the reservation's holds by what was used, in one atomic step. Once per id: a
        replay changes nothing. A reservation swept (or never seen) still has its usage booked."""
        ...

    def release(self, reservation_id: str) -> None:
        """Free the reservation's holds; a no-op for an unknown, settled or released id."""
        ...

    def counters(self, limits: Sequence[Limit], now: float) -> list[Counter]:
        """Used and held per limit, read from the store."""
        ...

    def remaining(self, limits: Sequence[Limit], now: float) -> list[int | None]:
        """cap - used - held per limit (None: no cap), for response headers: may be approximate."""
        ...

    def flush(self, now: float) -> None:
        """Give back what this instance holds beyond its live reservations (DynamoDB's leases)."""
        ...

    def sweep(self, now: float) -> int:
        """Free the holds of reservations (and leases) that expired: requests and containers that
        died. Returns how many. Run on a schedule."""
        ...
