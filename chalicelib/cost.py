"""Cost of a call from the catalog's prices (USD per 1,000 tokens)."""
from __future__ import annotations

from chalicelib.catalog import Model
from chalicelib.chat import Usage


def cost_usd(model: Model, usage: Usage) -> float:
    cost = usage.prompt_tokens * model.input_per_1k + usage.completion_tokens * model.output_per_1k
    return round(cost / 1000, 8)
