"""Local guardrail: the app's denied words, matched case-insensitively on word boundaries."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

from chalicelib.catalog import GuardrailPolicy
from chalicelib.guardrails import GuardrailVerdict

_PASS = GuardrailVerdict(intervened=False)


class LocalGuardrail:
    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        if not policy.denied_words:
            return _PASS
        pattern = _denied_pattern(policy.denied_words)
        if any(pattern.search(t) for t in texts):
            return GuardrailVerdict(intervened=True, categories=("DENIED_WORD",))
        return _PASS


@lru_cache(maxsize=256)
def _denied_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
