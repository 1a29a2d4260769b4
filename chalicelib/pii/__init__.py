"""PII detection port: a detector finds entities; `policy.apply_policy` decides what happens to them.

Type names follow Amazon Comprehend's DetectPiiEntities (CREDIT_DEBIT_NUMBER, EMAIL, SSN, ...), so
the local detector and the Comprehend adapter are interchangeable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
