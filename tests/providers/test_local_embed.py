"""local-embed: deterministic, unit length, 256 dimensions, Matryoshka-style truncation."""
from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest
from fakes.provider_calls import make_app

from chalicelib.catalog import Deployment
from chalicelib.errors import DeadlineExceeded, InvalidRequest
from chalicelib.providers import EmbeddingCall
from chalicelib.providers.local_embed import DIMENSIONS, LocalEmbedProvider, embed_text

DEPLOYMENT = Deployment(provider="local-embed", model_id="hashed-trigrams-256", name="local-embed")


def call(*inputs: str, dimensions: int | None = None, deadline_s: float = 5.0) -> EmbeddingCall:
    return EmbeddingCall(make_app(), DEPLOYMENT, inputs, dimensions, time.monotonic() + deadline_s)


def norm(vector: tuple[float, ...]) -> float:
    return math.sqrt(sum(x * x for x in vector))


@pytest.mark.parametrize("text", ["a", "hello world", "Grüße, 世界 🌍", "x" * 10_000, "  ", "\ud800 lone"])
def test_every_vector_has_256_dimensions_and_unit_length(text: str) -> None:
    vector = embed_text(text)
    assert len(vector) == DIMENSIONS == 256
    assert norm(vector) == pytest.approx(1.0, abs=1e-12)


def test_the_same_input_gives_the_same_vector_in_another_process() -> None:
    # blake2b, not Python's per-process salted hash(): stable across containers and restarts.
    here = embed_text("the same input")
    code = ("import sys; sys.path.insert(0, '.'); from chalicelib.providers.local_embed import embed_text; "
            "print(repr(embed_text('the same input')))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345"}).stdout.strip()
    assert repr(here) == there


def test_spelling_is_all_it_knows() -> None:
    def cosine(a: str, b: str) -> float:
        return sum(x * y for x, y in zip(embed_text(a), embed_text(b), strict=True))

    assert cosine("interest rate", "interest rates") > 0.7  # shared trigrams
    assert abs(cosine("car", "automobile")) < 0.3  # synonyms mean nothing to it: not semantic


@pytest.mark.parametrize("size", [1, 8, 64, 255, 256])
def test_dimensions_truncate_then_renormalise(size: int) -> None:
    full = embed_text("matryoshka")
    short = embed_text("matryoshka", size)
    assert len(short) == size and norm(short) == pytest.approx(1.0)
    scale = norm(full[:size])
    if scale:
        assert short == pytest.approx([x / scale for x in full[:size]])


def test_provider_embeds_each_input_in_order_and_bills_a_token_per_four_bytes() -> None:
    embedded = LocalEmbedProvider().embed(call("one", "two", "ünï", dimensions=32))
    assert embedded.vectors == (embed_text("one", 32), embed_text("two", 32), embed_text("ünï", 32))
    assert embedded.prompt_tokens == 1 + 1 + 2  # "ünï" is 5 UTF-8 bytes


@pytest.mark.parametrize("size", [0, 257, 1024])
def test_sizes_it_cannot_give_are_refused_naming_dimensions(size: int) -> None:
    with pytest.raises(InvalidRequest) as refused:
        LocalEmbedProvider().embed(call("x", dimensions=size))
    assert refused.value.param == "dimensions"


def test_it_stops_at_the_deadline() -> None:
    with pytest.raises(DeadlineExceeded):
        LocalEmbedProvider().embed(call("x", deadline_s=-1.0))
