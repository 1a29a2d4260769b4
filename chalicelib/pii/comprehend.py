"""Amazon Comprehend DetectPiiEntities behind the PiiDetector port.

Facts this adapter relies on (Comprehend API reference and developer guide):
- `Text` is at most 100 KB of UTF-8 per call. We count 100,000 bytes (the smaller reading of "KB"),
  so a text of any size is cut into chunks that can never raise TextSizeLimitExceededException.
- Offsets are code points of the text sent (a multi-byte UTF-8 character counts once), which is
  what Python str indices are; EndOffset is exclusive (`text[BeginOffset:EndOffset]`), as in AWS's
  documented example (pinned in tests/adapters/test_comprehend.py).
- PII detection supports only `en` and `es`; any other language is sent as `en` rather than
  failing: English rules still find emails, cards, phones and most ids in other languages.
- Comprehend reads what it is sent: "4111\u200b1111..." or "jane＠example.com" would pass it by. It
  is sent `chalicelib.textnorm`'s view (the local detector's too), chunked, and its offsets are
  mapped back to the original text, so redaction replaces exactly what the caller wrote.
- botocore 1.44's Comprehend model lists ["smithy-rpc-v2-cbor", "json"]; botocore resolves JSON 1.1
  (its own priority order puts json first), the protocol the tests' fake speaks.

Memoryless: no text is logged or put into an exception; failures log the AWS error code only.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Callable

from chalicelib.errors import ServiceUnavailable
from chalicelib.lazy import OnFirstUse
from chalicelib.pii import PiiEntity, to_original
from chalicelib.textnorm import normalize

log = logging.getLogger(__name__)

MAX_BYTES = 100_000  # DetectPiiEntities: 100 KB of UTF-8 per call
OVERLAP_CHARS = 200  # an entity up to this long that straddles a cut is whole in the next chunk
_SOFT_WINDOW = 2_000  # look this far back from a hard cut for a sentence end or whitespace
SUPPORTED_LANGUAGES = frozenset({"en", "es"})
_SENTENCE_END = re.compile(r"[.!?。！？]\s")
_WHITESPACE = re.compile(r"\s")


class ComprehendPiiDetector:
    """`client_factory` returns a boto3 `comprehend` client; it is called once, on first use, so
    importing this module (and building the gateway) costs no boto3 import at cold start."""

    def __init__(self, client_factory: Callable[[], Any], min_score: float = 0.5) -> None:
        self._client = OnFirstUse(client_factory)
        self.min_score = min_score

    def detect(self, text: str, language: str = "en") -> list[PiiEntity]:
        view = normalize(text)  # what a model reads; offsets come back to the original below
        if not view.text:
            return []  # Comprehend rejects an empty Text (min length 1)
        language_code = comprehend_language(language)
        found: list[PiiEntity] = []
        for start, chunk in chunks(view.text):
            for raw in self._call(chunk, language_code):
                entity = _entity(raw, start, len(chunk))
                if entity is not None and entity.score >= self.min_score:
                    found.append(entity)
        return to_original(view, resolve_overlaps(found))

    def _call(self, chunk: str, language_code: str) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError  # lazy: cold start
        from urllib3.exceptions import HTTPError

        try:
            response = self._client().detect_pii_entities(Text=chunk, LanguageCode=language_code)
        except ClientError as exc:
            log.warning("comprehend DetectPiiEntities failed: %s", exc.response.get("Error", {}).get("Code"))
            raise ServiceUnavailable("PII detector unavailable", code="pii_unavailable") from None
        except (BotoCoreError, HTTPError) as exc:  # timeouts, connection, credentials
            log.warning("comprehend DetectPiiEntities failed: %s", type(exc).__name__)
            raise ServiceUnavailable("PII detector unavailable", code="pii_unavailable") from None
        return list(response.get("Entities") or [])


def comprehend_language(language: str) -> str:
    """"es", "es-MX", "ES" -> "es"; anything Comprehend PII cannot take -> "en"."""
    primary = (language or "").split("-")[0].split("_")[0].lower()
    return primary if primary in SUPPORTED_LANGUAGES else "en"


def chunks(text: str, max_bytes: int = MAX_BYTES, overlap: int = OVERLAP_CHARS) -> list[tuple[int, str]]:
    """(start, chunk) pairs covering `text`, each chunk at most `max_bytes` of UTF-8.

    Cuts prefer a sentence end, then whitespace, within the last `_SOFT_WINDOW` characters; only a
    text with no whitespace there is cut hard. Slicing a str never splits a character, and sizes are
    counted on the encoded slice, so multi-byte text is safe. Consecutive chunks share at least
    `overlap` characters, so an entity shorter than that is whole in at least one of them."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return [(0, text)]
    out: list[tuple[int, str]] = []
    start, start_byte = 0, 0
    while True:
        if len(encoded) - start_byte <= max_bytes:
            out.append((start, text[start:]))
            return out
        hard_byte = start_byte + max_bytes
        while encoded[hard_byte] & 0xC0 == 0x80:  # a continuation byte: back to the character start
            hard_byte -= 1
        hard = start + len(encoded[start_byte:hard_byte].decode("utf-8"))
        cut = _soft_cut(text, max(start + 2 * overlap, hard - _SOFT_WINDOW), hard)
        out.append((start, text[start:cut]))
        next_start = _snap_back(text, cut - overlap, floor=start + 1)
        start_byte += len(text[start:next_start].encode("utf-8"))
        start = next_start


def _soft_cut(text: str, low: int, hard: int) -> int:
    window = text[low:hard]
    for pattern in (_SENTENCE_END, _WHITESPACE):
        matches = list(pattern.finditer(window))
        if matches:
            return low + matches[-1].end()  # the last boundary before the hard cut
    return hard


def _snap_back(text: str, position: int, floor: int) -> int:
    # Start the next chunk just after whitespace so it does not open mid-word (a half entity).
    low = max(floor, position - OVERLAP_CHARS)
    for i in range(position, low - 1, -1):
        if text[i - 1].isspace():
            return i
    return max(floor, position)


def _entity(raw: dict[str, Any], offset: int, length: int) -> PiiEntity | None:
    try:
        begin, end = int(raw["BeginOffset"]), min(int(raw["EndOffset"]), length)
        kind, score = str(raw["Type"]), float(raw.get("Score", 0.0))
    except (KeyError, TypeError, ValueError):
        return None
    if begin < 0 or end <= begin:
        return None
    return PiiEntity(kind, offset + begin, offset + end, score)


def resolve_overlaps(entities: list[PiiEntity]) -> list[PiiEntity]:
    """Non-overlapping entities sorted by begin: duplicates from chunk overlaps collapse; of two
    overlapping entities the longer wins, then the higher score (a cut half loses to the whole)."""
    kept: list[PiiEntity] = []
    for e in sorted(set(entities), key=lambda e: (-(e.end - e.begin), -e.score, e.begin, e.type)):
        if all(e.end <= k.begin or e.begin >= k.end for k in kept):
            kept.append(e)
    return sorted(kept, key=lambda e: (e.begin, e.end))
