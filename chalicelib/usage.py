"""Usage aggregates: what every chat and embeddings request used and cost, kept for chargeback.

The store keeps one aggregate per (app, business unit, model, UTC day) (`UsageTotals`), for at least
13 months; `group_usage` sums them for the admin API's `group_by` and the monthly chargeback. Costs
are whole units of 1e-8 USD (the precision of every per-request cost), so sums are exact and equal
what the /v1 answers reported (`x-garden-cost-usd`) to the cent and beyond.

Outcomes: `requests` are answered 200, `rejected` are 429s, `errors` any other failure.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Protocol, Sequence

COST_UNIT = Decimal("0.00000001")  # USD per cost unit
# group_by name -> the row key it contributes, in the contract's column order.
GROUP_KEYS = {"app": "app_id", "business_unit": "business_unit", "model": "model", "day": "day", "month": "month"}
METRICS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "errors", "rejected")
OUTCOMES = ("ok", "rejected", "error")


def cost_units(cost_usd: float) -> int:
    """A per-request cost (rounded to 8 decimals by cost.py) in whole 1e-8 USD."""
    return int((Decimal(repr(cost_usd)) / COST_UNIT).to_integral_value())


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One governed chat or embeddings request, as the usage aggregates count it."""

    app_id: str
    business_unit: str
    model: str  # the catalog model that served (or was asked for, when the request failed before routing)
    day: str  # YYYY-MM-DD, UTC
    outcome: str  # ok | rejected | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_units: int = 0


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """The stored aggregate of one (app, business unit, model, day)."""

    app_id: str
    business_unit: str
    model: str
    day: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_units: int = 0
    errors: int = 0
    rejected: int = 0


class UsageStore(Protocol):
    def record(self, event: UsageEvent) -> None:
        """Add one request to its day's aggregate (atomic add; safe under concurrency)."""
        ...

    def totals(self, from_day: str, to_day: str) -> list[UsageTotals]:
        """Every aggregate with from_day <= day <= to_day (inclusive, UTC)."""
        ...


def group_usage(totals: Iterable[UsageTotals], group_by: Sequence[str]) -> list[dict[str, object]]:
    """Sum aggregates by the `group_by` names (app, business_unit, model, day, month): rows with only
    the grouped keys, in the contract's order (grouped keys first, then METRICS), sorted by them."""
    keys = [GROUP_KEYS[g] for g in GROUP_KEYS if g in group_by]  # contract order, whatever the caller's order
    sums: dict[tuple[str, ...], list[int]] = {}
    for t in totals:
        values = {"app_id": t.app_id, "business_unit": t.business_unit, "model": t.model, "day": t.day,
                  "month": t.day[:7]}
        row = sums.setdefault(tuple(values[k] for k in keys), [0] * len(METRICS))
        for i, n in enumerate((t.requests, t.prompt_tokens, t.completion_tokens, t.cached_tokens,
                               t.cost_units, t.errors, t.rejected)):
            row[i] += n
    out: list[dict[str, object]] = []
    for group in sorted(sums):
        metrics = dict(zip(METRICS, sums[group], strict=True))
        metrics["cost_usd"] = float(Decimal(metrics["cost_usd"]) * COST_UNIT)
        out.append({**dict(zip(keys, group, strict=True)), **metrics})
    return out
