"""`POST /v1/embeddings` through the official openai SDK against the gateway as `make run` serves
it (devserver/, SigV4 by botocore via client/garden_auth.py), with a catalog that has a local-embed
model. Every 200 is validated against OpenAI's CreateEmbeddingResponse schema."""
from __future__ import annotations

import base64
import copy
import json
import struct
import time
from typing import Any, Iterator

import openai
import pytest
from botocore.credentials import Credentials
from local_server import Server, serve
from openai_schema import validate
from support import BLOCK_KEY_ID, KEY_ID, QUOTA_KEY_ID, SECRET, TEST_CATALOG

from chalicelib.providers.local_embed import embed_text
from chalicelib.quota import utc_day
from chalicelib.store.sqlite import SqliteLedger
from client.garden_auth import openai_client

PRICE_PER_1K = 0.002
PROMPT = "Wire 4111 1111 1111 1111 to jane.doe@example.com please"
REDACTED = "Wire [CREDIT_DEBIT_NUMBER] to [EMAIL] please"


def embedding_catalog() -> dict[str, Any]:
    """The test catalog plus `embed` (local-embed, 1..256 dimensions) and `embed-fixed` (no
    `dimensions` in the catalog: a caller may not choose a size), allowed to every app."""
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["embed"] = {
        "kind": "embedding", "dimensions": {"default": 256, "max": 256}, "bytes_per_token": 4,
        "price": {"input_per_1k": PRICE_PER_1K},
        "deployments": [{"provider": "local-embed", "model_id": "hashed-trigrams-256", "name": "local-embed"}],
    }
    raw["models"]["embed-fixed"] = {
        "kind": "embedding", "bytes_per_token": 4, "price": {"input_per_1k": 0.0},
        "deployments": [{"provider": "local-embed", "model_id": "hashed-trigrams-256"}],
    }
    for app in raw["apps"]:
        app["allowed_models"] += ["embed", "embed-fixed"]
    return raw


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("embeddings")
    catalog = root / "embedding-catalog.json"
    catalog.write_text(json.dumps(embedding_catalog()))
    with serve(root, env={"GARDEN_CATALOG": str(catalog)}) as server:
        yield server


def sdk(server: Server, key_id: str = KEY_ID) -> openai.OpenAI:
    return openai_client(f"{server.base_url}/v1", region="us-east-1", credentials=Credentials(key_id, SECRET),
                         max_retries=0)


@pytest.fixture
def client(served: Server) -> openai.OpenAI:
    return sdk(served)


def create(client: openai.OpenAI, **params: Any) -> tuple[Any, dict[str, Any], Any]:
    """The SDK's parsed answer, the raw JSON body (validated against OpenAI's schema) and headers."""
    raw = client.embeddings.with_raw_response.create(**params)
    body = json.loads(raw.http_response.text)
    schema_view = copy.deepcopy(body)
    for item in schema_view["data"]:
        # OpenAI's schema types `embedding` as a float array only, yet its API (and this gateway)
        # answers base64 as a string: validate the floats that string holds.
        if isinstance(item["embedding"], str):
            item["embedding"] = floats(item["embedding"])
    validate(schema_view, "CreateEmbeddingResponse")
    return raw.parse(), body, raw.headers


def floats(b64: str) -> list[float]:
    packed = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(packed) // 4}f", packed))


def float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def test_plain_float(client: openai.OpenAI) -> None:
    answer, body, headers = create(client, model="embed", input="The quick brown fox", encoding_format="float")
    assert body["object"] == "list" and body["model"] == "embed"
    [item] = answer.data
    assert (item.object, item.index) == ("embedding", 0)
    assert item.embedding == pytest.approx(embed_text("The quick brown fox"), abs=1e-7)
    assert len(item.embedding) == 256
    tokens = -(-len("The quick brown fox") // 4)
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (tokens, tokens)
    assert headers["x-garden-deployment"] == "local-embed" and headers["x-garden-attempts"] == "1"
    assert headers["x-request-id"]


def test_base64_decodes_to_the_float_answer_exactly(client: openai.OpenAI) -> None:
    text = ["Grüße aus Zürich", "second input"]
    as_floats, _, _ = create(client, model="embed", input=text, encoding_format="float")
    as_base64, body, _ = create(client, model="embed", input=text, encoding_format="base64")
    assert all(isinstance(item["embedding"], str) for item in body["data"])
    for f, b in zip(as_floats.data, as_base64.data, strict=True):
        # Little-endian float32, as OpenAI packs it; the float answer prints the same float32s.
        assert floats(b.embedding) == float32(f.embedding)


def test_the_sdks_default_asks_for_base64_and_decodes_it(client: openai.OpenAI) -> None:
    answer = client.embeddings.create(model="embed", input="default encoding")  # the SDK sends base64
    assert answer.data[0].embedding == float32(list(embed_text("default encoding")))


def test_a_list_of_inputs_keeps_its_order(client: openai.OpenAI) -> None:
    inputs = [f"input number {i}" for i in range(40)]
    answer, _, _ = create(client, model="embed", input=inputs, encoding_format="float", user="end-user-7")
    assert [item.index for item in answer.data] == list(range(40))
    for text, item in zip(inputs, answer.data, strict=True):
        assert item.embedding == pytest.approx(embed_text(text), abs=1e-7)


@pytest.mark.parametrize("size", [1, 64, 256])
def test_dimensions_accepted(client: openai.OpenAI, size: int) -> None:
    answer, _, _ = create(client, model="embed", input="matryoshka", dimensions=size, encoding_format="float")
    assert answer.data[0].embedding == pytest.approx(embed_text("matryoshka", size), abs=1e-7)


@pytest.mark.parametrize("model, size", [("embed", 257), ("embed-fixed", 64)])
def test_dimensions_refused(client: openai.OpenAI, model: str, size: int) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=model, input="x", dimensions=size)
    assert refused.value.param == "dimensions"
    validate(refused.value.body and {"error": refused.value.body}, "ErrorResponse")


@pytest.mark.parametrize("tokens", [[1212, 318, 257], [[1212, 318], [257]]])
def test_token_arrays_are_refused_naming_input(client: openai.OpenAI, tokens: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="embed", input=tokens)
    assert (refused.value.param, refused.value.code) == ("input", "unsupported_value")


@pytest.mark.parametrize("empty", ["", [], ["ok", ""]])
def test_empty_input_is_refused(client: openai.OpenAI, empty: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="embed", input=empty)
    assert refused.value.param == "input"


def test_model_kind_mismatch_both_ways(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as chat_model:
        client.embeddings.create(model="local-echo", input="x")
    assert (chat_model.value.code, chat_model.value.param) == ("model_kind_mismatch", "model")
    with pytest.raises(openai.BadRequestError) as embedding_model:
        client.chat.completions.create(model="embed", messages=[{"role": "user", "content": "x"}])
    assert (embedding_model.value.code, embedding_model.value.param) == ("model_kind_mismatch", "model")


def test_pii_is_redacted_per_input_before_the_model_sees_it(client: openai.OpenAI) -> None:
    # local-embed is deterministic: the vector of what it was sent is the vector of the redacted text.
    answer, _, _ = create(client, model="embed", input=[PROMPT, "card 4111 1111", "1111 1111 ok"],
                          encoding_format="float")
    assert answer.data[0].embedding == pytest.approx(embed_text(REDACTED), abs=1e-7)
    # Inputs are separate texts: digits split across two inputs are no card, and stay as sent.
    assert answer.data[1].embedding == pytest.approx(embed_text("card 4111 1111"), abs=1e-7)
    assert answer.data[2].embedding == pytest.approx(embed_text("1111 1111 ok"), abs=1e-7)


def test_blocked_pii_and_guardrail(served: Server) -> None:
    with pytest.raises(openai.BadRequestError) as blocked:
        sdk(served, BLOCK_KEY_ID).embeddings.create(model="embed", input=["fine", f"pay {PROMPT}"])
    assert (blocked.value.code, blocked.value.param) == ("pii_blocked", "input")
    with pytest.raises(openai.BadRequestError) as filtered:
        sdk(served).embeddings.create(model="embed", input=["fine", "we offer guaranteed returns"])
    assert (filtered.value.code, filtered.value.param) == ("content_filter", "input")


def test_quota_is_settled_at_the_models_price(served: Server, client: openai.OpenAI) -> None:
    ledger = SqliteLedger(served.home / "garden.sqlite3")
    try:
        now = time.time()
        before = ledger.usage("test-app", utc_day(now), now)
        answer, _, _ = create(client, model="embed", input=["a" * 400, "b" * 40], encoding_format="base64")
        now = time.time()
        after = ledger.usage("test-app", utc_day(now), now)
    finally:
        ledger.close()
    assert answer.usage.prompt_tokens == 100 + 10
    assert after.tokens - before.tokens == 110
    assert after.reserved == before.reserved == 0
    assert after.cost_usd - before.cost_usd == pytest.approx(110 * PRICE_PER_1K / 1000)


def test_an_app_over_quota_is_refused_before_any_call(served: Server) -> None:
    with pytest.raises(openai.RateLimitError) as refused:  # 200 tokens a day; this is 250
        sdk(served, QUOTA_KEY_ID).embeddings.create(model="embed", input="x" * 1000)
    assert refused.value.code == "insufficient_quota"  # a daily budget's kind (issue 10)
