"""Local guardrail, offline, with the same verdict shape as Bedrock's: the app's denied words and
denied topics (phrases), and, on INPUT, a seed list of prompt-injection patterns kept in
`prompt_attacks.txt`. Every match blocks; categories name the rule, never the matched text.

Rules judge what a model reads, not the characters as typed. Each text is read through
`chalicelib.textnorm` (NFKC, invisible characters such as zero-width spaces and soft hyphens
removed, look-alike Cyrillic and Greek letters as Latin, accents dropped), case-folded, and then in
two views:
- spaced: every run of whitespace and punctuation is one space, so "guaranteed\\n\\nreturns",
  "guaranteed-returns" and "guaranteed  returns" all read "guaranteed returns";
- joined: a hyphen (a line-break hyphen too), dot, slash, asterisk or apostrophe inside a word is
  dropped and letters spaced one by one are put together, so "guaran-teed", "g.u.a.r.a.n.t.e.e.d"
  and "g u a r a n t e e d" read "guaranteed" (a phrase matches here with or without its spaces).
A phrase matches whole words in either view, so "class" never matches "ass". Prompt-attack
patterns read both views, the case-folded text with its punctuation (they look for
"<|im_start|>" and "### system"), whitespace runs collapsed and "." crossing line ends, and a
reading where zero-width characters are word breaks. What no view undoes: paraphrase, other
languages, encodings (base64, leetspeak, ROT13); Bedrock Guardrails is the layer for those.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from chalicelib.catalog import DeniedTopic, GuardrailPolicy
from chalicelib.guardrails import BLOCKED, PASS, GuardrailVerdict
from chalicelib.textnorm import fold

_SEED = Path(__file__).with_name("prompt_attacks.txt")

# Each pattern starts with a literal or a class, so `re` skips ahead in C (see pii/patterns.py).
_BLANKS = re.compile(r"[ \t\r\f\v]{2,}|[\t\r\f\v]")  # whitespace runs other than newlines
_BLANK_LINES = re.compile(r"[ \t\r\f\v]*\n\s*")
_NON_WORD = re.compile(r"[\W_]+")
# Inside a word: a hyphen (with the line break of a hyphenated word), dot, slash, asterisk,
# apostrophe, pipe, tilde or plus; and a space between two one-letter "words". An underscore
# separates words (snake_case), as in the spaced view.
_IN_WORD = re.compile(r"-(?<=\w-)\s*(?=\w)|[./*'|~+](?<=\w[./*'|~+])(?=\w)| (?<=\b\w )(?=\w\b)")
_ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff\u180e]")


class LocalGuardrail:
    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        views = [_Views(t) for t in texts if t]
        categories: list[str] = []
        if policy.denied_words and _phrases(policy.denied_words).matches(views):
            categories.append("DENIED_WORD")
        for topic in policy.denied_topics:
            if _topic(topic).matches(views):
                categories.append(f"TOPIC:{topic.name}")
        if source == "INPUT" and policy.prompt_attack and _prompt_attacks().matches(views):
            categories.append("PROMPT_ATTACK")
        return GuardrailVerdict(BLOCKED, tuple(categories)) if categories else PASS


class _Views:
    """The readings of one text that the rules match against, built once per check."""

    def __init__(self, text: str) -> None:
        folded = fold(text).casefold()
        self.lines = _BLANK_LINES.sub("\n", _BLANKS.sub(" ", folded))  # punctuation kept
        self.spaced = _spaced(folded)
        self.joined = _joined(folded)
        # A zero-width space may stand for a word break ("ignore\u200ball"): read it as one too.
        self.gapped = _spaced(fold(_ZERO_WIDTH.sub(" ", text)).casefold()) if _ZERO_WIDTH.search(text) else ""


def _spaced(folded: str) -> str:
    return _NON_WORD.sub(" ", folded).strip()


def _joined(folded: str) -> str:
    return _spaced(_IN_WORD.sub("", _BLANKS.sub(" ", folded)))


class _Phrases:
    def __init__(self, phrases: Sequence[str]) -> None:
        self._spaced = _alternation(sorted({_spaced(fold(p).casefold()) for p in phrases} - {""}))
        joined = {_joined(fold(p).casefold()) for p in phrases}
        # "g.u.a.r.a.n.t.e.e.d r.e.t.u.r.n.s" joins into one word: so may the phrase.
        self._joined = _alternation(sorted((joined | {j.replace(" ", "") for j in joined}) - {""}))

    def matches(self, views: Sequence[_Views]) -> bool:
        return any(self._spaced.search(v.spaced) or self._joined.search(v.joined) for v in views)


def _alternation(phrases: list[str]) -> re.Pattern[str]:
    # Whole words only; longest first so a phrase wins over its prefix. An empty list never matches.
    if not phrases:
        return re.compile(r"(?!)")
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


@lru_cache(maxsize=256)
def _phrases(words: tuple[str, ...]) -> _Phrases:
    return _Phrases(words)


def _topic(topic: DeniedTopic) -> _Phrases:
    return _phrases(topic.phrases)


class _Seeds:
    """The seed patterns as one alternation. A leading `\\b` keeps `re` from skipping ahead in C
    (2x slower), so the scan runs without it and each hit is confirmed with it."""

    def __init__(self, patterns: Sequence[str]) -> None:
        # The views are case-folded: IGNORECASE (a quarter slower) only for a pattern that needs it.
        flags = re.MULTILINE | re.DOTALL | (re.IGNORECASE if any(_upper_literal(p) for p in patterns) else 0)
        self._exact = re.compile("|".join(f"(?:{p})" for p in patterns), flags)
        self._scan = re.compile("|".join(f"(?:{p.removeprefix(_WORD_START)})" for p in patterns), flags)

    def matches(self, views: Sequence[_Views]) -> bool:
        # `lines` keeps the punctuation some patterns need, `spaced` reads "you-are-now" as words,
        # `joined` undoes in-word tricks, `gapped` (only with zero-widths) reads them as breaks.
        for v in views:
            seen: set[str] = set()
            for view in (v.lines, v.spaced, v.joined, v.gapped):
                if view not in seen and self._search(view):
                    return True
                seen.add(view)
        return False

    def _search(self, text: str) -> bool:
        m = self._scan.search(text)
        while m:
            if self._exact.match(text, m.start()):
                return True
            m = self._scan.search(text, m.start() + 1)
        return False


_WORD_START = "\\b"


def _upper_literal(pattern: str) -> bool:
    """An upper-case letter that is not an escape (\\S, \\W, \\B, \\D, \\A, \\Z are not letters)."""
    return bool(re.search(r"(?<!\\)[A-Z]", pattern))


@lru_cache(maxsize=1)
def _prompt_attacks() -> _Seeds:
    lines = [line.strip() for line in _SEED.read_text(encoding="utf-8").splitlines()]
    return _Seeds([line for line in lines if line and not line.startswith("#")])
