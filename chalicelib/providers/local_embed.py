"""`local-embed`: a deterministic local embedder, so `make run` serves `/v1/embeddings` offline.

NOT semantic: a vector is a hashed bag of the text's character trigrams (the "hashing trick"), so
texts that share spelling share direction, and nothing more: "car" and "automobile" are strangers.
It is stable (the same input gives the same vector, in every process: blake2b, not Python's
salted `hash`), cheap (one hash per distinct trigram, no dependencies: the Lambda ships none) and
shaped like the real thing: 256 dimensions, unit length. A smaller `dimensions` keeps the first
components and re-normalises, as Matryoshka models (OpenAI's text-embedding-3, Titan v2) do.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from typing import Callable

from chalicelib.errors import DeadlineExceeded, InvalidRequest
from chalicelib.providers import Embedded, EmbeddingCall

DIMENSIONS = 256
_N = 3  # trigram: short enough that short texts have several, long enough to carry spelling


class LocalEmbedProvider:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic

    def embed(self, call: EmbeddingCall) -> Embedded:
        size = DIMENSIONS if call.dimensions is None else call.dimensions
        if not 1 <= size <= DIMENSIONS:
            raise InvalidRequest(f"dimensions: local-embed gives 1 to {DIMENSIONS}", param="dimensions",
                                 code="invalid_value")
        vectors = []
        for text in call.inputs:
            if self._monotonic() > call.deadline:
                raise DeadlineExceeded("the request deadline passed while embedding")
            vectors.append(embed_text(text, size))
        # Billed as local-echo bills: ceil(UTF-8 bytes / 4) per input (tokens.py).
        tokens = sum((len(text.encode("utf-8")) + 3) // 4 for text in call.inputs)
        return Embedded(tuple(vectors), tokens)


def embed_text(text: str, dimensions: int = DIMENSIONS) -> tuple[float, ...]:
    """The unit vector of `text`, truncated to `dimensions` and re-normalised."""
    padded = f" {text} "  # the first and last characters get trigrams of their own
    grams = Counter(padded[i:i + _N] for i in range(max(1, len(padded) - _N + 1)))
    full = [0.0] * DIMENSIONS
    for gram, count in grams.items():
        digest = hashlib.blake2b(gram.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % DIMENSIONS
        full[index] += count if digest[4] & 1 else -count  # a signed hash keeps the bag unbiased
    return _unit(full[:dimensions], text)


def _unit(vector: list[float], text: str) -> tuple[float, ...]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # every hashed trigram cancelled out (rare): still a stable unit vector
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=4).digest()
        vector = [0.0] * len(vector)
        vector[int.from_bytes(digest, "little") % len(vector)] = 1.0
        return tuple(vector)
    return tuple(x / norm for x in vector)
