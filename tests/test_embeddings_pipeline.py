"""The embeddings route's stages in process, with fakes at the ports (a recording provider, a
counting PII detector, a masking guardrail) and Bedrock Titan / Cohere through the real boto3
client against the loopback Bedrock fake (AWS_ENDPOINT_URL_BEDROCK_RUNTIME)."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from fakes.bedrock_server import Fail, FakeBedrock, Reply, fake_vector
from openai_schema import validate
from support import QUOTA_KEY_ID, Garden, running_garden
from test_embeddings import PROMPT, REDACTED, embedding_catalog

from chalicelib.catalog import GuardrailPolicy, parse_catalog
from chalicelib.guardrails import MASKED, PASS, GuardrailVerdict
from chalicelib.pii import PiiEntity
from chalicelib.pii.local import LocalPiiDetector
from chalicelib.providers import Embedded, EmbeddingCall
from chalicelib.providers.local_embed import LocalEmbedProvider
from chalicelib.quota import utc_day

TITAN, COHERE = "amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"


class Recording:
    """local-embed that keeps what it was sent: the inputs as the model would see them."""

    def __init__(self, drop_one: bool = False) -> None:
        self.calls: list[EmbeddingCall] = []
        self.drop_one = drop_one  # answer one vector short: a provider bug after it was paid

    def embed(self, call: EmbeddingCall) -> Embedded:
        self.calls.append(call)
        embedded = LocalEmbedProvider().embed(call)
        return Embedded(embedded.vectors[1:], embedded.prompt_tokens) if self.drop_one else embedded


class CountingDetector(LocalPiiDetector):
    def __init__(self) -> None:
        self.calls = 0

    def detect(self, text: str, language: str = "en") -> list[PiiEntity]:
        self.calls += 1
        return super().detect(text, language)


class MaskingGuardrail:
    """A guardrail at the port that masks one word, as Bedrock's anonymising filters do."""

    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        if not any("secret-project" in t for t in texts):
            return PASS
        return GuardrailVerdict(MASKED, ("WORD:secret-project",), tuple(t.replace("secret-project", "{WORD}")
                                                                         for t in texts))


def garden(tmp_path: Path, raw: dict[str, Any] | None = None, **overrides: Any) -> Any:
    return running_garden(tmp_path, catalog=parse_catalog(raw or embedding_catalog()), **overrides)


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[Garden, Recording, CountingDetector]]:
    provider, detector = Recording(), CountingDetector()
    with garden(tmp_path, providers={"local-embed": provider}, pii=detector) as g:
        yield g, provider, detector


def embed(g: Garden, body: dict[str, Any], **kwargs: Any) -> Any:
    return g.request("POST", "/v1/embeddings", body, **kwargs)


def audit_records(g: Garden) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((g.home / "audit").rglob("*.jsonl")) for line in p.read_text().splitlines()]


def test_all_inputs_are_screened_in_one_pass_and_redacted_each_in_place(recorded: Any) -> None:
    g, provider, detector = recorded
    inputs = ["nothing here", PROMPT, "mail jane.doe@example.com", "card 4111 1111", "1111 1111 end"]
    response = embed(g, {"model": "embed", "input": inputs})
    assert response.status_code == 200, response.body
    validate(json.loads(response.body), "CreateEmbeddingResponse")
    assert detector.calls == 1
    assert provider.calls[-1].inputs == ("nothing here", REDACTED, "mail [EMAIL]", "card 4111 1111", "1111 1111 end")
    [record] = audit_records(g)
    assert record["route"] == "embeddings" and record["pii"] == {"CREDIT_DEBIT_NUMBER:REDACT": 1, "EMAIL:REDACT": 2}


def test_the_guardrails_masks_replace_the_inputs(tmp_path: Path) -> None:
    provider = Recording()
    with garden(tmp_path, providers={"local-embed": provider}, guardrail=MaskingGuardrail()) as g:
        response = embed(g, {"model": "embed", "input": ["about secret-project", "plain"]})
    assert response.status_code == 200, response.body
    assert provider.calls[-1].inputs == ("about {WORD}", "plain")


def test_a_call_paid_for_is_settled_even_when_its_answer_then_fails(tmp_path: Path) -> None:
    with garden(tmp_path, providers={"local-embed": Recording(drop_one=True)}) as g:
        response = embed(g, {"model": "embed", "input": ["a" * 40, "b" * 40]})
        now = time.time()
        usage = g.ledger.usage("test-app", utc_day(now), now)
    assert response.status_code == 502
    assert (usage.tokens, usage.reserved) == (20, 0)  # booked as used, not released


def test_redaction_that_grows_the_text_is_held_before_the_call(tmp_path: Path) -> None:
    raw = embedding_catalog()
    raw["models"]["embed"]["bytes_per_token"] = 1
    text = " ".join(["::1"] * 40)  # 119 bytes that become 40 x "[IP_ADDRESS]"
    provider = Recording()
    with garden(tmp_path, raw, providers={"local-embed": provider}) as g:
        response = embed(g, {"model": "embed", "input": text})
    assert response.status_code == 200, response.body
    sent = provider.calls[-1].inputs[0]
    assert "::1" not in sent
    [record] = audit_records(g)
    assert record["reserved_tokens"] >= len(sent.encode()) > len(text)


def test_quota_refuses_before_any_paid_call(tmp_path: Path) -> None:
    provider, detector = Recording(), CountingDetector()
    with garden(tmp_path, providers={"local-embed": provider}, pii=detector) as g:
        response = embed(g, {"model": "embed", "input": ["x" * 400, "y" * 404]}, key_id=QUOTA_KEY_ID)  # 201 > 200
    assert response.status_code == 429
    assert (provider.calls, detector.calls) == ([], 0)


def test_legacy_models_carry_the_lifecycle_headers(tmp_path: Path) -> None:
    raw = embedding_catalog()
    raw["models"]["embed"]["lifecycle"] = {"status": "legacy", "deprecated": "2026-01-01", "sunset": "2027-01-01"}
    with garden(tmp_path, raw) as g:
        response = embed(g, {"model": "embed", "input": "x"})
    assert response.status_code == 200, response.body
    assert response.headers["Deprecation"] == "@1767225600"


# --- Bedrock through the whole pipeline ------------------------------------------------------------

def bedrock_catalog() -> dict[str, Any]:
    raw = copy.deepcopy(embedding_catalog())
    raw["models"]["titan"] = {
        "kind": "embedding", "dimensions": {"default": 1024, "allowed": [256, 512, 1024]},
        "price": {"input_per_1k": 0.00002},
        "deployments": [{"provider": "bedrock", "model_id": TITAN, "name": "titan-east"},
                        {"provider": "bedrock", "model_id": TITAN, "name": "titan-west", "region": "us-west-2",
                         "price": {"input_per_1k": 0.00004}}],
    }
    raw["models"]["cohere"] = {
        "kind": "embedding", "price": {"input_per_1k": 0.0001},
        "deployments": [{"provider": "bedrock", "model_id": COHERE, "name": "cohere"}],
    }
    raw["apps"][0]["allowed_models"] += ["titan", "cohere"]
    return raw


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
        yield server


def bedrock_garden(tmp_path: Path) -> Any:
    return running_garden(tmp_path, env={"GARDEN_BEDROCK_REGION": "us-east-1", "GARDEN_BEDROCK_MAX_ATTEMPTS": "1"},
                          catalog=parse_catalog(bedrock_catalog()))


def test_titan_sees_only_redacted_text_and_falls_back_at_the_serving_price(tmp_path: Path, fake: FakeBedrock) -> None:
    # One attempt per deployment: east's two calls (one per input) are throttled, west's answer.
    fake.script[TITAN] = lambda body: Fail("ThrottlingException") if fake.calls[TITAN] <= 2 else Reply()
    with bedrock_garden(tmp_path) as g:
        response = embed(g, {"model": "titan", "input": [PROMPT, "plain"], "dimensions": 256})
        now = time.time()
        usage = g.ledger.usage("test-app", utc_day(now), now)
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateEmbeddingResponse")
    assert (response.headers["x-garden-deployment"], response.headers["x-garden-attempts"]) == ("titan-west", "2")
    sent = sorted(b["inputText"] for _, b, _ in fake.requests[-2:])
    assert sent == sorted([REDACTED, "plain"])
    assert "4111" not in json.dumps([b for _, b, _ in fake.requests])
    assert body["data"][0]["embedding"] == pytest.approx(fake_vector(REDACTED, 256), abs=1e-7)
    tokens = -(-len(REDACTED) // 4) + -(-len("plain") // 4)  # the fake's token-count header
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert usage.tokens == tokens and usage.cost_usd == pytest.approx(tokens * 0.00004 / 1000)


def test_cohere_through_the_pipeline(tmp_path: Path, fake: FakeBedrock) -> None:
    with bedrock_garden(tmp_path) as g:
        response = embed(g, {"model": "cohere", "input": ["one", "mail jane.doe@example.com"]})
        refused = embed(g, {"model": "cohere", "input": "x", "dimensions": 256})
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateEmbeddingResponse")
    assert [len(d["embedding"]) for d in body["data"]] == [1024, 1024]
    [(path, sent, _)] = fake.requests
    assert path == "/model/cohere.embed-english-v3/invoke"
    assert sent == {"texts": ["one", "mail [EMAIL]"], "input_type": "search_document", "truncate": "END"}
    assert refused.status_code == 400 and json.loads(refused.body)["error"]["param"] == "dimensions"


def test_bedrock_refusing_the_input_is_a_400_and_frees_the_quota(tmp_path: Path, fake: FakeBedrock) -> None:
    fake.script[COHERE] = Fail("ValidationException")
    with bedrock_garden(tmp_path) as g:
        response = embed(g, {"model": "cohere", "input": "x"})
        now = time.time()
        usage = g.ledger.usage("test-app", utc_day(now), now)
    assert response.status_code == 400
    error = json.loads(response.body)["error"]
    assert error["code"] == "upstream_validation" and "SECRET-PROMPT-TEXT" not in error["message"]
    assert (usage.tokens, usage.reserved) == (0, 0)


def test_the_catalogs_default_size_is_asked_for_when_the_caller_names_none(tmp_path: Path, fake: FakeBedrock) -> None:
    raw = bedrock_catalog()
    raw["models"]["titan"]["dimensions"]["default"] = 512
    with running_garden(tmp_path, env={"GARDEN_BEDROCK_REGION": "us-east-1"}, catalog=parse_catalog(raw)) as g:
        response = embed(g, {"model": "titan", "input": "x"})
    assert response.status_code == 200, response.body
    assert fake.requests[0][1]["dimensions"] == 512
    assert len(json.loads(response.body)["data"][0]["embedding"]) == 512


def test_an_answer_too_big_for_a_lambda_response_is_refused_before_any_call(recorded: Any) -> None:
    g, provider, _ = recorded
    inputs = ["x"] * 2048  # 2,048 x 256 floats: over 6 MB as JSON numbers, under it as base64
    too_big = embed(g, {"model": "embed", "input": inputs})
    assert too_big.status_code == 413 and json.loads(too_big.body)["error"]["code"] == "response_too_large"
    assert provider.calls == []
    as_base64 = embed(g, {"model": "embed", "input": inputs, "encoding_format": "base64"})
    assert as_base64.status_code == 200 and len(as_base64.body) < 6_000_000
