"""Cost per call, cached prompt tokens at their own prices."""
from __future__ import annotations

import pytest

from chalicelib.catalog import Model
from chalicelib.chat import Usage
from chalicelib.cost import cost_usd


def model(**cache: float) -> Model:
    return Model("m", "x", 100, input_per_1k=3.0, output_per_1k=15.0, deployments=(), **cache)


def test_plain_usage() -> None:
    assert cost_usd(model(), Usage(1000, 100)) == pytest.approx(3.0 + 1.5)


def test_cached_tokens_at_their_prices() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cache_read_tokens=600, cache_write_tokens=200)
    priced = model(cache_read_per_1k=0.3, cache_write_per_1k=3.75)
    assert cost_usd(priced, usage) == pytest.approx((200 * 3.0 + 600 * 0.3 + 200 * 3.75) / 1000)
    assert cost_usd(model(), usage) == pytest.approx(3.0)  # unpriced cache: ordinary input
