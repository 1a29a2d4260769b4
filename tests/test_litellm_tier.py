"""The `openai` provider against a REAL LiteLLM proxy (the LiteLLM tier of the seed's phase 2), through
the whole gateway: chat, streaming, a fallback from a failing Bedrock deployment to the tier, the key
sent as LiteLLM expects (`Authorization: Bearer <key>`), and embeddings.

LiteLLM runs from its own virtualenv (`make litellm`) in front of a loopback fake OpenAI upstream
(tests/litellm_proxy.py): what the fake receives is what LiteLLM forwarded after accepting the key.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fakes.bedrock_server import Fail as BedrockFail
from fakes.bedrock_server import FakeBedrock
from fakes.openai_server import Fail, Reply
from litellm_proxy import CHAT_MODEL, EMBED_MODEL, MASTER_KEY, UPSTREAM_KEY, LiteLlmTier
from openai_schema import validate
from support import TEST_CATALOG, running_garden

from chalicelib.catalog import parse_catalog

KEY_ENV = "GARDEN_TEST_LITELLM_KEY"
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CHAT = {"messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Mail jane.doe@example.com the fees"}]}


def tier_catalog(base_url: str, key: dict[str, str] | None = None) -> Any:
    """The snippet the README's hybrid example follows: one alias Bedrock first, the tier second."""
    tier = {"provider": "openai", "name": "litellm-tier", "base_url": base_url, "model_id": CHAT_MODEL,
            **(key or {"api_key_env": KEY_ENV})}
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"].update({
        "tier-chat": {"max_output_tokens": 256, "price": {"input_per_1k": 0.001, "output_per_1k": 0.002},
                      "deployments": [tier]},
        "hybrid-chat": {"max_output_tokens": 256, "price": {"input_per_1k": 0.00025, "output_per_1k": 0.00125},
                        "deployments": [{"provider": "bedrock", "name": "bedrock-haiku", "model_id": BEDROCK_MODEL},
                                        {**tier, "price": {"input_per_1k": 0.0025, "output_per_1k": 0.01}}]},
        "tier-embed": {"kind": "embedding", "price": {"input_per_1k": 0.00002},
                       "deployments": [{**tier, "name": "litellm-embed", "model_id": EMBED_MODEL}]},
    })
    raw["apps"][0]["allowed_models"] += ["tier-chat", "hybrid-chat", "tier-embed"]
    return parse_catalog(raw)


@pytest.fixture
def tier(litellm_tier: LiteLlmTier, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiteLlmTier]:
    monkeypatch.setenv(KEY_ENV, MASTER_KEY)
    litellm_tier.upstream.script.clear()
    del litellm_tier.upstream.requests[:]
    yield litellm_tier


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.endpoint_url)
        yield fake


def garden(tmp_path: Path, tier: LiteLlmTier) -> Any:
    return running_garden(tmp_path, env={"GARDEN_BEDROCK_REGION": "us-east-1"},
                          catalog=tier_catalog(tier.proxy.base_url))


def sse_chunks(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(b[len("data: "):]) for b in body.decode().split("\n\n") if b and b != "data: [DONE]"]


def test_chat_through_litellm_sees_only_redacted_text(tmp_path: Path, tier: LiteLlmTier) -> None:
    with garden(tmp_path, tier) as g:
        response = g.chat({**CHAT, "model": "tier-chat", "max_tokens": 50, "temperature": 0.2})
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"] == "Mail [EMAIL] the fees"
    assert body["model"] == "tier-chat" and body["usage"]["prompt_tokens"] > 0
    assert response.headers["x-garden-deployment"] == "litellm-tier"
    # LiteLLM accepted the gateway's key and called its upstream with its own.
    _, sent, headers = tier.upstream.requests[-1]
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent["max_tokens"] == 50 and "jane.doe" not in json.dumps(sent)


def test_streaming_through_litellm_is_buffered_and_named(tmp_path: Path, tier: LiteLlmTier) -> None:
    tier.upstream.script["upstream-chat"] = Reply(text="a streamed answer from the tier", split=3)
    with garden(tmp_path, tier) as g:
        response = g.chat({**CHAT, "model": "tier-chat", "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200, response.body
    assert response.headers["x-garden-deployment"] == "litellm-tier"
    chunks = sse_chunks(response.body)
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "a streamed answer from the tier"
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert tier.upstream.requests[-1][1]["stream"] is True  # LiteLLM streamed from its upstream too


@pytest.mark.parametrize("code", ["ServiceUnavailableException", "ThrottlingException"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_bedrock_deployment_falls_back_to_the_tier(tmp_path: Path, tier: LiteLlmTier,
                                                             bedrock: FakeBedrock, code: str, stream: bool) -> None:
    bedrock.script[BEDROCK_MODEL] = BedrockFail(code)
    with garden(tmp_path, tier) as g:
        response = g.chat({**CHAT, "model": "hybrid-chat", "stream": stream})
    assert response.status_code == 200, response.body
    assert response.headers["x-garden-deployment"] == "litellm-tier"
    assert response.headers["x-garden-attempts"] == "2"
    assert bedrock.requests and tier.upstream.requests
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in sse_chunks(response.body)
                   if c["choices"]) if stream else json.loads(response.body)["choices"][0]["message"]["content"]
    assert text == "Mail [EMAIL] the fees"


def test_a_wrong_key_is_refused_by_litellm_and_is_the_gateways_misconfiguration(
        tmp_path: Path, tier: LiteLlmTier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-not-the-master-key")
    with garden(tmp_path, tier) as g:
        response = g.chat({**CHAT, "model": "tier-chat"})
    assert response.status_code == 503, response.body
    error = json.loads(response.body)["error"]
    validate(json.loads(response.body), "ErrorResponse")
    assert error["code"] == "upstream_key_rejected" and "sk-not" not in response.body.decode()
    assert tier.upstream.requests == []  # LiteLLM refused it before calling anyone


def test_an_upstream_error_behind_litellm_never_reaches_the_caller(tmp_path: Path, tier: LiteLlmTier) -> None:
    tier.upstream.script["upstream-chat"] = Fail(400, "bad request quoting SECRET-PROMPT-TEXT")
    with garden(tmp_path, tier) as g:
        response = g.chat({**CHAT, "model": "tier-chat"})
    assert response.status_code == 400 and "SECRET" not in response.body.decode()
    assert json.loads(response.body)["error"]["code"] == "upstream_validation"


def test_embeddings_through_litellm(tmp_path: Path, tier: LiteLlmTier) -> None:
    with garden(tmp_path, tier) as g:
        response: Any = g.request("POST", "/v1/embeddings", {"model": "tier-embed", "input": ["one", "two words"]})
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateEmbeddingResponse")
    assert [d["index"] for d in body["data"]] == [0, 1] and len(body["data"][0]["embedding"]) == 8
    assert response.headers["x-garden-deployment"] == "litellm-embed"
    assert tier.upstream.requests[-1][0] == "/v1/embeddings"


def test_the_key_from_an_ssm_securestring_is_what_litellm_accepts(tmp_path: Path, tier: LiteLlmTier, moto_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """As in AWS: the gateway's own boto3 SSM client (found through AWS_ENDPOINT_URL_SSM) reads the
    SecureString once, and LiteLLM accepts it as the Bearer key."""
    import boto3

    name = f"/garden/litellm/gateway-key-{tmp_path.name}"
    boto3.client("ssm", endpoint_url=moto_url).put_parameter(Name=name, Value=MASTER_KEY, Type="SecureString")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    monkeypatch.delenv(KEY_ENV)
    catalog = tier_catalog(tier.proxy.base_url, {"api_key_parameter": name})
    with running_garden(tmp_path, catalog=catalog) as g:
        responses = [g.chat({**CHAT, "model": "tier-chat"}) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200], responses[0].body
    assert json.loads(responses[1].body)["choices"][0]["message"]["content"] == "Mail [EMAIL] the fees"
