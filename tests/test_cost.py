"""Cost per call, cached prompt tokens at their own prices."""
from __future__ import annotations

import pytest

from chalicelib.catalog import Deployment, Model, Price
from chalicelib.chat import Usage
from chalicelib.cost import cost_usd


def model(**cache: float) -> Price:
    return Model("m", "x", 100, input_per_1k=3.0, output_per_1k=15.0, deployments=(), **cache).price


def test_plain_usage() -> None:
    assert cost_usd(model(), Usage(1000, 100)) == pytest.approx(3.0 + 1.5)


def test_cached_tokens_at_their_prices() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cache_read_tokens=600, cache_write_tokens=200)
    priced = model(cache_read_per_1k=0.3, cache_write_per_1k=3.75)
    assert cost_usd(priced, usage) == pytest.approx((200 * 3.0 + 600 * 0.3 + 200 * 3.75) / 1000)
    assert cost_usd(model(), usage) == pytest.approx(3.0)  # unpriced cache: ordinary input


def test_the_serving_deployment_price_wins() -> None:
    own = Price(1.0, 2.0)
    m = Model("m", "x", 100, 3.0, 15.0, (Deployment("openai", "gpt", "azure", price=own),
                                         Deployment("bedrock", "claude", "bedrock")))
    assert m.price_for(m.deployments[0]) == own
    assert m.price_for(m.deployments[1]) == m.price == Price(3.0, 15.0)
