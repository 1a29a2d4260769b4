"""QuotaKeeper on a real SQLite ledger: flexible output budgets and top-ups."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.catalog import App, Deployment, GuardrailPolicy, Model, PiiPolicy, Price, Quotas
from chalicelib.errors import QuotaExceeded
from chalicelib.quota import QuotaKeeper, utc_day
from chalicelib.store.sqlite import SqliteLedger

NOW = 1_800_000_000.0


def app(limit: int) -> App:
    return App("a", "bu", ("arn:aws:iam::111122223333:role/r",), frozenset(), PiiPolicy({}, {}),
               GuardrailPolicy(), Quotas(tokens_per_day=limit))


class Keeper(QuotaKeeper):
    """A QuotaKeeper that also says how much its ledger holds."""

    def __init__(self, ledger: SqliteLedger) -> None:
        super().__init__(ledger, 25, clock=lambda: NOW)
        self.ledger = ledger


@pytest.fixture
def keeper(tmp_path: Path) -> Keeper:
    return Keeper(SqliteLedger(tmp_path / "l.db"))


def held(keeper: Keeper) -> int:
    return keeper.ledger.usage("a", utc_day(NOW), NOW).reserved


def test_a_flexible_output_shrinks_to_the_budget_left(keeper: Keeper) -> None:
    keeper.reserve(app(1000), 300, 500, "r1")
    flexible = keeper.reserve(app(1000), 100, 4096, "r2", flexible=True)
    assert (flexible.input_tokens, flexible.output_tokens) == (100, 100)
    assert held(keeper) == 1000
    with pytest.raises(QuotaExceeded):
        keeper.reserve(app(1000), 1, 4096, "r3", flexible=True)  # nothing left, not even one token


def test_a_fixed_output_that_does_not_fit_is_refused_not_clamped(keeper: Keeper) -> None:
    keeper.reserve(app(1000), 300, 500, "r1")
    with pytest.raises(QuotaExceeded) as caught:
        keeper.reserve(app(1000), 100, 300, "r2")
    assert int(caught.value.headers["retry-after"]) > 0
    with pytest.raises(QuotaExceeded, match="lower max_tokens"):
        keeper.reserve(app(1000), 100, 1000, "r3")  # more than the whole quota


def test_top_up_holds_the_growth_or_takes_it_from_a_flexible_output(keeper: Keeper) -> None:
    fixed = keeper.reserve(app(1000), 100, 400, "fixed")
    fixed = keeper.top_up(app(1000), fixed, 250)
    assert (fixed.tokens, held(keeper)) == (650, 650)
    flexible = keeper.reserve(app(1000), 100, 250, "flex", flexible=True)
    assert held(keeper) == 1000
    flexible = keeper.top_up(app(1000), flexible, 180)  # no room: 80 tokens move from output to input
    assert (flexible.input_tokens, flexible.output_tokens, held(keeper)) == (180, 170, 1000)
    with pytest.raises(QuotaExceeded):
        keeper.top_up(app(1000), fixed, 400)  # fixed output: nothing to give


def priced_app(**quotas: Any) -> App:
    return App("p", "bu", ("arn:aws:iam::111122223333:role/p",), frozenset({"m"}), PiiPolicy({}, {}),
               GuardrailPolicy(), Quotas(**quotas))


MODEL = Model("m", "t", 4096, 0.01, 0.1, (Deployment("local-echo", "a", "a"),
                                           Deployment("local-echo", "b", "b", price=Price(0.02, 0.2))))


def test_a_flexible_output_shrinks_to_the_usd_budget_at_the_highest_price(keeper: Keeper) -> None:
    # $0.01 a month; 100 input tokens at $0.02/1k = $0.002; output at $0.2/1k: 40 tokens fit.
    reservation = keeper.reserve(priced_app(usd_per_month=0.01), 100, 4096, "r", flexible=True, model=MODEL)
    assert (reservation.input_tokens, reservation.output_tokens) == (100, 40)


def test_a_release_keeps_the_requests_place_in_the_minute_and_frees_its_tokens(keeper: Keeper) -> None:
    limited = priced_app(requests_per_minute=1, tokens_per_day=1000)
    keeper.release(keeper.reserve(limited, 100, 800, "r1", model=MODEL))
    with pytest.raises(QuotaExceeded) as caught:
        keeper.reserve(limited, 100, 800, "r2", model=MODEL)
    assert caught.value.code == "rate_limit_exceeded"
    assert keeper.ledger.usage("p", utc_day(NOW), NOW).reserved == 0


def test_a_settle_books_the_actual_cost_and_a_replay_nothing(keeper: Keeper) -> None:
    limited = priced_app(usd_per_month=1.0)
    reservation = keeper.reserve(limited, 100, 100, "r", model=MODEL)
    keeper.settle(reservation, 150, 0.0015)
    keeper.settle(reservation, 150, 0.0015)
    usage = keeper.ledger.usage("p", utc_day(NOW), NOW)
    assert (usage.tokens, usage.requests, usage.cost_usd, usage.reserved) == (150, 1, 0.0015, 0)
