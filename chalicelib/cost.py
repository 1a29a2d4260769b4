"""Cost of a call from the catalog's prices (USD per 1,000 tokens).

Prompt tokens read from or written to a provider's prompt cache are billed at their own prices
where the catalog gives them (a common complaint about gateways is cache tokens billed as if
they were ordinary input).
"""
from __future__ import annotations

from chalicelib.catalog import Model
from chalicelib.chat import Usage


def cost_usd(model: Model, usage: Usage) -> float:
    read_price = model.input_per_1k if model.cache_read_per_1k is None else model.cache_read_per_1k
    write_price = model.input_per_1k if model.cache_write_per_1k is None else model.cache_write_per_1k
    uncached = usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    cost = (uncached * model.input_per_1k + usage.cache_read_tokens * read_price
            + usage.cache_write_tokens * write_price + usage.completion_tokens * model.output_per_1k)
    return round(cost / 1000, 8)
