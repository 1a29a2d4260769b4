"""Guardrail port: a verdict on text going to (INPUT) or coming from (OUTPUT) a model.

A verdict carries categories and counts only. Guardrail services echo the matched text in their
assessments: adapters must drop it before a verdict leaves them (memoryless).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from chalicelib.catalog import GuardrailPolicy

NONE, MASKED, BLOCKED = "NONE", "MASKED", "BLOCKED"


@dataclass(frozen=True, slots=True)
class GuardrailVerdict:
    action: str  # NONE | MASKED (texts rewritten, may pass) | BLOCKED (must not pass)
    # e.g. ("DENIED_WORD", "PROMPT_ATTACK", "TOPIC:investment-advice", "PII:EMAIL"); never matched text
    categories: tuple[str, ...] = ()
    texts: tuple[str, ...] | None = None  # MASKED: the rewritten texts, in the order given

    @property
    def intervened(self) -> bool:
        return self.action != NONE


PASS = GuardrailVerdict(NONE)


class Guardrail(Protocol):
    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        """`source` is INPUT or OUTPUT, as Bedrock ApplyGuardrail names them. Raise
        ServiceUnavailable when the guardrail cannot answer; the pipeline applies fail-closed."""
        ...
