"""Bedrock through the whole pipeline: the real boto3 client (found through the standard
AWS_ENDPOINT_URL_BEDROCK_RUNTIME variable, as a BU developer would point it) against a loopback
server speaking Bedrock's wire protocol, with faults injected per model."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

import pytest
from fakes.bedrock_server import Fail, FakeBedrock, Hang, Reply
from openai_schema import validate
from support import TEST_CATALOG, Garden, running_garden

from chalicelib.catalog import parse_catalog

PRIMARY, SECONDARY = "anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-lite-v1:0"
CHAT = {"model": "claude", "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Mail jane.doe@example.com the fees"}]}


def bedrock_catalog() -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["claude"] = {
        "max_output_tokens": 512,
        "price": {"input_per_1k": 0.00025, "output_per_1k": 0.00125},
        "deployments": [{"provider": "bedrock", "model_id": PRIMARY, "name": "haiku"},
                        {"provider": "bedrock", "model_id": SECONDARY, "name": "nova"}],
    }
    raw["apps"][0]["allowed_models"].append("claude")
    return parse_catalog(raw)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
        yield server


def garden_with(tmp_path: Path, **env: str) -> Any:
    return running_garden(tmp_path, env={"GARDEN_BEDROCK_REGION": "us-east-1", **env}, catalog=bedrock_catalog())


def models_called(fake: FakeBedrock) -> list[str]:
    return [unquote(path.split("/")[2]) for path, _, _ in fake.requests]


def test_chat_through_bedrock_sees_only_redacted_text(tmp_path: Path, fake: FakeBedrock) -> None:
    with garden_with(tmp_path) as g:
        response = g.chat({**CHAT, "max_tokens": 100, "temperature": 0.1, "stop": ["END"]})
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"] == "Mail [EMAIL] the fees"
    assert response.headers["x-garden-deployment"] == "haiku" and response.headers["x-garden-attempts"] == "1"
    sent = fake.requests[0][1]
    assert "jane.doe" not in json.dumps(sent)
    assert sent["system"] == [{"text": "Be brief."}]
    assert sent["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.1, "stopSequences": ["END"]}


def test_max_tokens_is_always_sent_and_clamped(tmp_path: Path, fake: FakeBedrock) -> None:
    with garden_with(tmp_path) as g:
        g.chat(CHAT)
        g.chat({**CHAT, "max_tokens": 100_000})
    assert [r[1]["inferenceConfig"]["maxTokens"] for r in fake.requests] == [512, 512]


def test_streaming_through_converse_stream(tmp_path: Path, fake: FakeBedrock) -> None:
    with garden_with(tmp_path) as g:
        response = g.chat({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    chunks = [json.loads(b[len("data: "):]) for b in response.body.decode().split("\n\n")
              if b and b != "data: [DONE]"]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == \
        "Mail [EMAIL] the fees"
    assert chunks[-1]["usage"]["prompt_tokens"] > 0
    assert fake.requests[0][0].endswith("/converse-stream")


def test_tool_use_becomes_tool_calls(tmp_path: Path, fake: FakeBedrock) -> None:
    fake.script[PRIMARY] = Reply(tool_use={"name": "lookup", "input": {"id": "A-1"}})
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with garden_with(tmp_path) as g:
        body = json.loads(g.chat({**CHAT, "tools": tools, "tool_choice": "required"}).body)
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup" and json.loads(call["function"]["arguments"]) == {"id": "A-1"}
    assert fake.requests[0][1]["toolConfig"]["toolChoice"] == {"any": {}}


@pytest.mark.parametrize("code", ["ThrottlingException", "ModelNotReadyException", "ServiceUnavailableException",
                                  "InternalServerException", "ModelTimeoutException"])
def test_retryable_faults_fail_over_to_the_next_deployment(tmp_path: Path, fake: FakeBedrock, code: str) -> None:
    fake.script[PRIMARY] = Fail(code)
    with garden_with(tmp_path) as g:
        response = g.chat(CHAT)
    assert response.status_code == 200, response.body
    assert response.headers["x-garden-deployment"] == "nova" and response.headers["x-garden-attempts"] == "2"
    assert models_called(fake)[-1] == SECONDARY
    assert models_called(fake).count(PRIMARY) <= 2  # botocore's bounded retries, then fallback


@pytest.mark.parametrize(("code", "status"), [("ValidationException", 400), ("AccessDeniedException", 403),
                                              ("ModelErrorException", 502)])
def test_no_retry_and_no_fallback_on_caller_or_model_errors(tmp_path: Path, fake: FakeBedrock, code: str,
                                                            status: int) -> None:
    fake.script[PRIMARY] = Fail(code)
    with garden_with(tmp_path) as g:
        response = g.chat(CHAT)
        assert_no_hold(g)
    assert response.status_code == status
    assert response.headers["x-garden-attempts"] == "1" and response.headers["x-garden-deployment"] == "haiku"
    assert models_called(fake) == [PRIMARY]
    assert "SECRET-PROMPT-TEXT" not in response.body.decode()  # AWS's message may quote the prompt


def test_no_request_outlives_its_deadline(tmp_path: Path, fake: FakeBedrock) -> None:
    fake.script[PRIMARY] = Hang(10)
    with garden_with(tmp_path, GARDEN_REQUEST_TIMEOUT_S="2") as g:
        started = time.monotonic()
        response = g.chat(CHAT)
        elapsed = time.monotonic() - started
        assert_no_hold(g)
    assert response.status_code == 504, response.body
    assert elapsed < 4.0  # the 2 s deadline plus slack for a loaded machine; the upstream hangs 10 s
    validate(json.loads(response.body), "ErrorResponse")


def test_without_credentials_answers_503_quickly(tmp_path: Path, fake: FakeBedrock,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with garden_with(tmp_path) as g:
        started = time.monotonic()
        response = g.chat(CHAT)
        assert time.monotonic() - started < 3.0  # boto3's first import and client included
    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "no_credentials"
    assert fake.requests == []


def test_calls_go_through_the_operations_role(tmp_path: Path, fake: FakeBedrock, moto_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_url)  # moto's STS answers AssumeRole
    role = "arn:aws:iam::999988887777:role/garden-bedrock"
    with garden_with(tmp_path, GARDEN_OPS_ROLE_ARN=role) as g:
        assert g.chat(CHAT).status_code == 200
        assert g.chat(CHAT).status_code == 200
    signed_by = [headers.get("authorization", "") for _, _, headers in fake.requests]
    # Signed with the assumed role's temporary key, not the caller's "testing" key, both times.
    assert all("Credential=testing/" not in h and "Credential=" in h for h in signed_by)


def assert_no_hold(g: Garden) -> None:
    now = time.time()
    assert g.ledger.usage("test-app", time.strftime("%Y-%m-%d", time.gmtime(now)), now).reserved == 0


def test_open_breaker_stops_calling_a_dead_deployment(tmp_path: Path, fake: FakeBedrock) -> None:
    fake.script[PRIMARY] = Fail("ServiceUnavailableException")
    with garden_with(tmp_path, GARDEN_BREAKER_THRESHOLD="2", GARDEN_BREAKER_COOLDOWN_S="300") as g:
        statuses = [g.chat(CHAT).status_code for _ in range(7)]
    assert statuses == [200] * 7  # the secondary served every request
    calls = models_called(fake)
    # Two failing requests (botocore tries each twice) open the circuit; then no more calls.
    assert calls.count(PRIMARY) == 4 and calls.count(SECONDARY) == 7
