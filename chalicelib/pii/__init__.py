"""PII detection port: a detector finds entities; `policy.apply_policy` decides what happens to them.

Type names follow Amazon Comprehend's DetectPiiEntities (CREDIT_DEBIT_NUMBER, EMAIL, SSN, ...), so
the local detector and the Comprehend adapter are interchangeable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.textnorm import View


@dataclass(frozen=True, slots=True)
class PiiEntity:
    type: str
    begin: int  # offset of the first character, in Python str indices
    end: int  # exclusive, as Comprehend's EndOffset: text[begin:end] is the entity
    score: float = 1.0


class PiiDetector(Protocol):
    def detect(self, text: str, language: str = "en") -> list[PiiEntity]:
        """Entities in `text`, sorted by `begin`, non-overlapping."""
        ...


def to_original(view: View, entities: list[PiiEntity]) -> list[PiiEntity]:
    """Entities found in `view.text` (sorted, non-overlapping) as spans of the original text. The
    map is monotonic; only two entities inside one expanded character ("½" is "1/2") could share
    an original character, and then the later one starts where the earlier ends."""
    if view.identity:
        return entities
    out: list[PiiEntity] = []
    last_end = 0
    for entity in entities:
        begin, end = view.original(entity.begin, entity.end)
        begin = max(begin, last_end)
        if begin < end:
            out.append(PiiEntity(entity.type, begin, end, entity.score))
            last_end = end
    return out
