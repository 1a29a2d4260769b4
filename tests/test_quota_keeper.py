"""QuotaKeeper on a real SQLite ledger: flexible output budgets and top-ups."""
from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.catalog import App, GuardrailPolicy, PiiPolicy, Quotas
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
