"""One contract for every UsageStore adapter (the `usage_store` fixture, conftest.py): what one
request adds to its day's aggregate, ranges inclusive in UTC days, and concurrent records summing
exactly (costs in whole 1e-8 USD units, so sums are exact)."""
from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest

from chalicelib.usage import UsageEvent, UsageStore, UsageTotals, cost_units, group_usage


def event(outcome: str = "ok", *, app: str = "app", bu: str = "retail", model: str = "m",
          day: str = "2026-11-27", p: int = 0, c: int = 0, cached: int = 0, cost: int = 0) -> UsageEvent:
    return UsageEvent(app_id=app, business_unit=bu, model=model, day=day, outcome=outcome,
                      prompt_tokens=p, completion_tokens=c, cached_tokens=cached, cost_units=cost)


class TestUsageContract:
    def test_empty(self, usage_store: UsageStore) -> None:
        assert usage_store.totals("2026-01-01", "2026-12-31") == []

    def test_outcomes_add_to_one_aggregate(self, usage_store: UsageStore) -> None:
        usage_store.record(event("ok", p=10, c=5, cached=2, cost=375))
        usage_store.record(event("ok", p=1, c=1, cost=25))
        usage_store.record(event("rejected"))
        usage_store.record(event("error", p=7, cost=0))
        assert usage_store.totals("2026-11-27", "2026-11-27") == [UsageTotals(
            app_id="app", business_unit="retail", model="m", day="2026-11-27", requests=2,
            prompt_tokens=18, completion_tokens=6, cached_tokens=2, cost_units=400, errors=1, rejected=1)]

    def test_keys_are_separate_and_range_inclusive(self, usage_store: UsageStore) -> None:
        for day in ("2026-10-31", "2026-11-01", "2026-11-30", "2026-12-01"):
            usage_store.record(event(day=day, p=1))
        usage_store.record(event(app="other", day="2026-11-01", p=2))
        usage_store.record(event(model="n", day="2026-11-01", p=3))
        usage_store.record(event(bu="markets", day="2026-11-01", p=4))
        got = usage_store.totals("2026-11-01", "2026-11-30")
        assert sorted((t.day, t.app_id, t.business_unit, t.model, t.prompt_tokens) for t in got) == [
            ("2026-11-01", "app", "markets", "m", 4), ("2026-11-01", "app", "retail", "m", 1),
            ("2026-11-01", "app", "retail", "n", 3), ("2026-11-01", "other", "retail", "m", 2),
            ("2026-11-30", "app", "retail", "m", 1)]

    def test_unknown_outcome_is_refused(self, usage_store: UsageStore) -> None:
        with pytest.raises(ValueError, match="outcome"):
            usage_store.record(event("maybe"))
        assert usage_store.totals("2026-11-27", "2026-11-27") == []

    def test_large_counts_are_exact(self, usage_store: UsageStore) -> None:
        # A month of a busy app: far past 2**53 units would still add exactly (integers throughout).
        usage_store.record(event(p=10**12, c=10**12, cost=10**15 + 1))
        usage_store.record(event(cost=1))
        [t] = usage_store.totals("2026-11-27", "2026-11-27")
        assert (t.prompt_tokens, t.cost_units) == (10**12, 10**15 + 2)

    @pytest.mark.concurrency
    def test_concurrent_records_sum_exactly(self, usage_store: UsageStore) -> None:
        rng = random.Random(10)
        plan = [[event(rng.choice(("ok", "ok", "ok", "rejected", "error")), model=rng.choice("mn"),
                       p=rng.randrange(5000), c=rng.randrange(2000), cached=rng.randrange(100),
                       cost=rng.randrange(10**6)) for _ in range(25)] for _ in range(16)]
        barrier = threading.Barrier(len(plan))
        failures: list[BaseException] = []

        def worker(events: list[UsageEvent]) -> None:
            barrier.wait(timeout=30)
            try:
                for e in events:
                    usage_store.record(e)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(events,)) for events in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not failures
        flat = [e for events in plan for e in events]
        [row] = group_usage(usage_store.totals("2026-11-27", "2026-11-27"), ["app"])
        assert row["requests"] == sum(e.outcome == "ok" for e in flat)
        assert row["rejected"] == sum(e.outcome == "rejected" for e in flat)
        assert row["errors"] == sum(e.outcome == "error" for e in flat)
        assert row["prompt_tokens"] == sum(e.prompt_tokens for e in flat)
        assert row["completion_tokens"] == sum(e.completion_tokens for e in flat)
        assert row["cached_tokens"] == sum(e.cached_tokens for e in flat)
        units = sum(e.cost_units for e in flat)
        assert sum(t.cost_units for t in usage_store.totals("2026-11-27", "2026-11-27")) == units
        assert Decimal(repr(row["cost_usd"])) == Decimal(units) / 10**8

    def test_per_request_costs_sum_to_the_cent(self, usage_store: UsageStore) -> None:
        # What /v1 answers report per request (8 decimals) adds up exactly in units.
        costs = [0.000375, 0.00001234, 0.1, 0.2, 0.00000001]
        for cost in costs:
            usage_store.record(event(cost=cost_units(cost)))
        [t] = usage_store.totals("2026-11-27", "2026-11-27")
        assert Decimal(t.cost_units) / 10**8 == sum(Decimal(repr(c)) for c in costs)
