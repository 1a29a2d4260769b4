"""Cost of a call from the catalog's prices (USD per 1,000 tokens).

Prompt tokens read from or written to a provider's prompt cache are billed at their own prices
where the catalog gives them (a common complaint about gateways is cache tokens billed as if
they were ordinary input).
"""
from __future__ import annotations

from chalicelib.catalog import Price
from chalicelib.chat import Usage


def cost_usd(price: Price, usage: Usage) -> float:
    """`price` is the serving deployment's (Model.price_for): a route may mix providers."""
    read_price = price.input_per_1k if price.cache_read_per_1k is None else price.cache_read_per_1k
    write_price = price.input_per_1k if price.cache_write_per_1k is None else price.cache_write_per_1k
    uncached = usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    cost = (uncached * price.input_per_1k + usage.cache_read_tokens * read_price
            + usage.cache_write_tokens * write_price + usage.completion_tokens * price.output_per_1k)
    return round(cost / 1000, 8)
