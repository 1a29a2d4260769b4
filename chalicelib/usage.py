"""Usage aggregates: what every chat and embeddings request used and cost, kept for chargeback.

The store keeps one aggregate per (app, business unit, model, UTC day) (`UsageTotals`), for at least
13 months; `group_usage` sums them for the admin API's `group_by` and the monthly chargeback. Costs
are whole units of 1e-8 USD (the precision of every per-request cost), so sums are exact and equal
what the /v1 answers reported (`x-garden-cost-usd`) to the cent and beyond.

Outcomes: `requests` are answered 200, `rejected` are 429s, `errors` any other failure.

Policy activity (`counts`): beside the totals, each aggregate counts what the console's pages show
by name: 429s and other failures by error code, PII entities by type, guardrail interventions by
direction, action and category (`event_counts`). Every name is drawn from a fixed vocabulary (the
gateway's own error codes, Comprehend's PII types, Guardrails' categories; anything else `OTHER`),
so an aggregate holds a bounded number of them, and never request content.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Mapping, Protocol, Sequence

from chalicelib.pii.type_names import COMPREHEND_TO_GUARDRAILS

COST_UNIT = Decimal("0.00000001")  # USD per cost unit
# group_by name -> the row key it contributes, in the contract's column order.
GROUP_KEYS = {"app": "app_id", "business_unit": "business_unit", "model": "model", "day": "day", "month": "month"}
METRICS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "errors", "rejected")
OUTCOMES = ("ok", "rejected", "error")
# Kinds of policy activity, in the order rows list them; a count's stored name is "<kind>:<code>".
KINDS = ("rejected", "error", "pii", "guardrail")
OTHER = "OTHER"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")  # the gateway's error codes are constants of this shape
PII_TYPES = frozenset(COMPREHEND_TO_GUARDRAILS) | {"DETECTOR_UNAVAILABLE"}
_GUARDRAIL_PLAIN = frozenset({"PROMPT_ATTACK", "DENIED_WORD", "GUARDRAIL", "TOPIC", "REGEX"})
_GUARDRAIL_SUB = {"CONTENT": frozenset({"HATE", "INSULTS", "SEXUAL", "VIOLENCE", "MISCONDUCT"}),
                  "WORD": frozenset({"PROFANITY"}), "PII": PII_TYPES - {"DETECTOR_UNAVAILABLE"},
                  "GROUNDING": frozenset({"GROUNDING", "RELEVANCE"})}


def cost_units(cost_usd: float) -> int:
    """A per-request cost (rounded to 8 decimals by cost.py) in whole 1e-8 USD."""
    return int((Decimal(repr(cost_usd)) / COST_UNIT).to_integral_value())


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One governed chat or embeddings request, as the usage aggregates count it."""

    app_id: str
    business_unit: str
    model: str  # the catalog model that served (or was asked for, when the request failed before routing)
    day: str  # YYYY-MM-DD, UTC
    outcome: str  # ok | rejected | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_units: int = 0
    counts: tuple[tuple[str, int], ...] = ()  # ("<kind>:<code>", n): event_counts' names, each once


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """The stored aggregate of one (app, business unit, model, day)."""

    app_id: str
    business_unit: str
    model: str
    day: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_units: int = 0
    errors: int = 0
    rejected: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)  # "<kind>:<code>" -> n (event_counts)


class UsageStore(Protocol):
    def record(self, event: UsageEvent) -> None:
        """Add one request to its day's aggregate (atomic add; safe under concurrency)."""
        ...

    def totals(self, from_day: str, to_day: str) -> list[UsageTotals]:
        """Every aggregate with from_day <= day <= to_day (inclusive, UTC)."""
        ...


def event_counts(outcome: str, error_code: str | None, pii: Mapping[str, int],
                 guardrail: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """A finished request's policy activity as named counts (a RequestRecord's `error_code`, `pii`
    "<TYPE>:<ACTION>" -> n, `guardrail` "<INPUT|OUTPUT>:<ACTION>:<CATEGORY>"), every name from a
    fixed vocabulary: the aggregates stay bounded and hold no text."""
    counts: dict[str, int] = {}

    def add(name: str, n: int) -> None:
        if n > 0:
            counts[name] = counts.get(name, 0) + n

    if outcome in ("rejected", "error"):
        code = error_code if error_code and _CODE.fullmatch(error_code) else "other"
        add(f"{outcome}:{code}", 1)
    for key, n in pii.items():
        kind = key.split(":", 1)[0]
        add(f"pii:{kind if kind in PII_TYPES else OTHER}", int(n))
    for entry in guardrail:
        add(f"guardrail:{guardrail_code(entry)}", 1)
    return tuple(sorted(counts.items()))


def guardrail_code(entry: str) -> str:
    """"INPUT:BLOCKED:TOPIC:investment-advice" -> "INPUT:BLOCKED:TOPIC": direction, action and the
    category's fixed name (topic and regex names are configuration: collapsed)."""
    direction, _, rest = entry.partition(":")
    action, _, category = rest.partition(":")
    direction = direction if direction in ("INPUT", "OUTPUT") else OTHER
    if action == "UNAVAILABLE":
        return f"{direction}:UNAVAILABLE:FAIL_OPEN"
    action = action if action in ("BLOCKED", "MASKED") else OTHER
    family, _, sub = category.partition(":")
    if family in ("TOPIC", "REGEX"):
        name = family
    elif family in _GUARDRAIL_PLAIN and not sub:
        name = family
    elif family in _GUARDRAIL_SUB:
        name = f"{family}:{sub if sub in _GUARDRAIL_SUB[family] else OTHER}"
    else:
        name = OTHER
    return f"{direction}:{action}:{name}"


def group_counts(totals: Iterable[UsageTotals], group_by: Sequence[str],
                 kinds: Sequence[str] = KINDS) -> list[dict[str, object]]:
    """The aggregates' named counts summed by `group_by` (as group_usage): rows of the grouped keys,
    then `kind`, `code`, `count`; sorted by the keys, then kind (KINDS order), then code."""
    keys = [GROUP_KEYS[g] for g in GROUP_KEYS if g in group_by]
    sums: dict[tuple[tuple[str, ...], int, str], int] = {}
    for t in totals:
        values = {"app_id": t.app_id, "business_unit": t.business_unit, "model": t.model, "day": t.day,
                  "month": t.day[:7]}
        group = tuple(values[k] for k in keys)
        for name, n in t.counts.items():
            kind, _, code = name.partition(":")
            if kind in kinds and n:
                key = (group, KINDS.index(kind), code)
                sums[key] = sums.get(key, 0) + n
    return [{**dict(zip(keys, group, strict=True)), "kind": KINDS[kind], "code": code, "count": n}
            for (group, kind, code), n in sorted(sums.items())]


def group_usage(totals: Iterable[UsageTotals], group_by: Sequence[str]) -> list[dict[str, object]]:
    """Sum aggregates by the `group_by` names (app, business_unit, model, day, month): rows with only
    the grouped keys, in the contract's order (grouped keys first, then METRICS), sorted by them."""
    keys = [GROUP_KEYS[g] for g in GROUP_KEYS if g in group_by]  # contract order, whatever the caller's order
    sums: dict[tuple[str, ...], list[int]] = {}
    for t in totals:
        values = {"app_id": t.app_id, "business_unit": t.business_unit, "model": t.model, "day": t.day,
                  "month": t.day[:7]}
        row = sums.setdefault(tuple(values[k] for k in keys), [0] * len(METRICS))
        for i, n in enumerate((t.requests, t.prompt_tokens, t.completion_tokens, t.cached_tokens,
                               t.cost_units, t.errors, t.rejected)):
            row[i] += n
    out: list[dict[str, object]] = []
    for group in sorted(sums):
        metrics = dict(zip(METRICS, sums[group], strict=True))
        metrics["cost_usd"] = float(Decimal(metrics["cost_usd"]) * COST_UNIT)
        out.append({**dict(zip(keys, group, strict=True)), **metrics})
    return out
