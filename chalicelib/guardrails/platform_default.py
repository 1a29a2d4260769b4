"""The platform's Bedrock guardrail for apps that name none of their own.

`make configure` points GARDEN_BEDROCK_GUARDRAIL_ID / _VERSION at the guardrail the repo creates
(infra/bedrock-guardrail.yaml); an app whose catalog entry has a `bedrock_guardrail_id` keeps its own.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from chalicelib.catalog import GuardrailPolicy
from chalicelib.guardrails import Guardrail, GuardrailVerdict


class PlatformDefault:
    """Wraps the Bedrock guardrail: fills in the platform's id and version where the app has none."""

    def __init__(self, inner: Guardrail, guardrail_id: str, version: str) -> None:
        self._inner, self._id, self._version = inner, guardrail_id, version

    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        if policy.bedrock_id is None:
            policy = replace(policy, bedrock_id=self._id, bedrock_version=self._version)
        return self._inner.check(texts, source, policy)
