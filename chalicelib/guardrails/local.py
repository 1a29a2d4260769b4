"""Local guardrail, offline, with the same verdict shape as Bedrock's: the app's denied words and
denied topics (phrases), and, on INPUT, a seed list of prompt-injection patterns kept in
`prompt_attacks.txt`. Every match blocks; categories name the rule, never the matched text."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from chalicelib.catalog import DeniedTopic, GuardrailPolicy
from chalicelib.guardrails import BLOCKED, PASS, GuardrailVerdict

_SEED = Path(__file__).with_name("prompt_attacks.txt")


class LocalGuardrail:
    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        categories: list[str] = []
        if policy.denied_words and _any(_phrases(policy.denied_words), texts):
            categories.append("DENIED_WORD")
        for topic in policy.denied_topics:
            if _any(_topic(topic), texts):
                categories.append(f"TOPIC:{topic.name}")
        if source == "INPUT" and policy.prompt_attack and _any(_prompt_attacks(), texts):
            categories.append("PROMPT_ATTACK")
        return GuardrailVerdict(BLOCKED, tuple(categories)) if categories else PASS


def _any(pattern: re.Pattern[str], texts: Sequence[str]) -> bool:
    return any(pattern.search(t) for t in texts)


@lru_cache(maxsize=256)
def _phrases(words: tuple[str, ...]) -> re.Pattern[str]:
    # Whole words only, case-insensitive; longest first so a phrase wins over its prefix.
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _topic(topic: DeniedTopic) -> re.Pattern[str]:
    return _phrases(topic.phrases)


@lru_cache(maxsize=1)
def _prompt_attacks() -> re.Pattern[str]:
    lines = [line.strip() for line in _SEED.read_text(encoding="utf-8").splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE)
