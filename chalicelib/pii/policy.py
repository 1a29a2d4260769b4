"""What an app's PII policy does to detected entities: ALLOW, MASK, REDACT or BLOCK.

MASK keeps at most the last four digits (PCI DSS 3.4.1 allows no more for display); REDACT
replaces the entity with `[TYPE]`. BLOCK names the type, never the value.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from chalicelib.catalog import PiiPolicy
from chalicelib.pii import PiiEntity


@dataclass(slots=True)
class PiiOutcome:
    """What the policy did, as counts only: safe to log and audit."""

    counts: Counter[str] = field(default_factory=Counter)  # "<TYPE>:<ACTION>" -> n
    blocked: list[str] = field(default_factory=list)  # types whose action is BLOCK

    def merge(self, other: "PiiOutcome") -> None:
        self.counts.update(other.counts)
        self.blocked.extend(t for t in other.blocked if t not in self.blocked)


Edit = tuple[int, int, str]  # begin, end (exclusive) and what replaces text[begin:end]


def apply_policy(
    text: str, entities: Sequence[PiiEntity], policy: PiiPolicy, direction: str
) -> tuple[str, PiiOutcome]:
    edits, outcome = policy_edits(text, entities, policy, direction)
    pieces: list[str] = []
    cursor = 0
    for begin, end, replacement in edits:
        pieces += (text[cursor:begin], replacement)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces), outcome


def policy_edits(
    text: str, entities: Sequence[PiiEntity], policy: PiiPolicy, direction: str
) -> tuple[list[Edit], PiiOutcome]:
    """The replacements the policy makes (allowed entities make none), sorted, and what it did."""
    outcome = PiiOutcome()
    edits: list[Edit] = []
    allowed_terms = {t.casefold() for t in policy.allow_terms} if entities else set()
    for entity in entities:  # sorted and non-overlapping, as the port promises
        value = text[entity.begin : entity.end]
        action = "ALLOW" if value.casefold() in allowed_terms else policy.action(direction, entity.type)
        outcome.counts[f"{entity.type}:{action}"] += 1
        if action == "BLOCK" and entity.type not in outcome.blocked:
            outcome.blocked.append(entity.type)
        if action != "ALLOW":
            edits.append((entity.begin, entity.end, _replacement(value, entity.type, action)))
    return edits, outcome


def _replacement(value: str, entity_type: str, action: str) -> str:
    if action == "ALLOW":
        return value
    if action == "MASK":
        return mask_keep_last_four(value)
    return f"[{entity_type}]"  # REDACT, and BLOCK too: a blocked value never travels on


def mask_keep_last_four(value: str) -> str:
    """'4111 1111 1111 1111' -> '**** **** **** 1111'; separators stay, so the shape stays readable."""
    digits = sum(c.isdigit() for c in value)
    keep = 4 if digits > 4 else 0
    out: list[str] = []
    seen = 0
    for c in value:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - keep else "*")
        elif c.isalnum():
            out.append("*")
        else:
            out.append(c)
    return "".join(out)
