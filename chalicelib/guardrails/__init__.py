"""Guardrail port: a verdict on text going to (INPUT) or coming from (OUTPUT) a model.

A verdict carries counts and categories only. Guardrail services echo the matched text in their
assessments: adapters must drop it before a verdict leaves them (memoryless).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from chalicelib.catalog import GuardrailPolicy


@dataclass(frozen=True, slots=True)
class GuardrailVerdict:
    intervened: bool
    categories: tuple[str, ...] = ()  # e.g. ("DENIED_WORD",); never the matched text


class Guardrail(Protocol):
    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        """`source` is INPUT or OUTPUT, as Bedrock ApplyGuardrail names them."""
        ...
