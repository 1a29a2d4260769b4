"""Guardrails applied in turn: the first block wins; a masking verdict hands its texts on.

In AWS the app's own rules (denied words and topics, prompt-attack seeds) run locally first, at no
cost, and Bedrock Guardrails judges what they let through.
"""
from __future__ import annotations

from typing import Sequence

from chalicelib.catalog import GuardrailPolicy
from chalicelib.guardrails import BLOCKED, MASKED, NONE, Guardrail, GuardrailVerdict


class GuardrailChain:
    def __init__(self, *guardrails: Guardrail) -> None:
        self._guardrails = guardrails

    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        categories: list[str] = []
        current = tuple(texts)
        masked = False
        for guardrail in self._guardrails:
            verdict = guardrail.check(current, source, policy)
            categories += verdict.categories
            if verdict.action == BLOCKED:
                return GuardrailVerdict(BLOCKED, tuple(categories))
            if verdict.action == MASKED and verdict.texts is not None:
                current, masked = verdict.texts, True
        if masked:
            return GuardrailVerdict(MASKED, tuple(categories), current)
        return GuardrailVerdict(NONE, tuple(categories))
