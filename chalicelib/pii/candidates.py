"""Candidates of the local PII detector and the one rule that picks among them.

A candidate is a plain tuple (cheap to build by the thousand): begin, end, type, score, tier and a
tie-break preference. Overlaps: higher tier wins, then the longer span, then the preference.
"""
from __future__ import annotations

from bisect import bisect_left

from chalicelib.pii import PiiEntity

Cand = tuple[int, int, str, float, int, int]  # begin, end, type, score, tier, tie-break pref
BLOCK = "BLOCK"  # claims a checksum-invalid number; never emitted

# (tier, tie-break preference) per type; see "Overlaps" in local.py.
RANK: dict[str, tuple[int, int]] = {
    "EMAIL": (5, 0),
    "CREDIT_DEBIT_NUMBER": (4, 0),
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": (4, 0),
    "AWS_ACCESS_KEY": (4, 0),
    "PIN": (3, 3),
    "CREDIT_DEBIT_CVV": (3, 3),
    "CREDIT_DEBIT_EXPIRY": (3, 3),
    "SSN": (3, 2),
    "BANK_ACCOUNT_NUMBER": (3, 2),
    "AWS_SECRET_KEY": (3, 2),
    "PASSWORD": (3, 1),
    "BANK_ROUTING": (3, 0),
    "SWIFT_CODE": (2, 0),
    "IP_ADDRESS": (2, 0),
    "PHONE": (1, 0),
}
EMITTED_TYPES: frozenset[str] = frozenset(RANK)


def add(out: list[Cand], b: int, e: int, kind: str, score: float, tier: int | None = None) -> None:
    t, pref = RANK[kind]
    out.append((b, e, kind, score, t if tier is None else tier, pref))


def resolve(found: list[Cand]) -> list[PiiEntity]:
    """Greedy by priority; keep a candidate only if it overlaps nothing already kept."""
    starts: list[int] = []  # kept spans, sorted by begin, for O(log n) overlap checks
    ends: list[int] = []
    kept: list[Cand] = []
    for cand in sorted(set(found), key=lambda c: (-c[4], c[0] - c[1], -c[5], c[0])):
        b, e = cand[0], cand[1]
        i = bisect_left(starts, b)
        if (i < len(starts) and starts[i] < e) or (i > 0 and ends[i - 1] > b):
            continue
        starts.insert(i, b)
        ends.insert(i, e)
        kept.insert(i, cand)
    return [PiiEntity(c[2], c[0], c[1], c[3]) for c in kept if c[2] != BLOCK]
