"""SageMaker endpoints through the whole gateway: the real boto3 client (found through the standard
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME variable) against a loopback server speaking sagemaker-runtime,
with a Bedrock deployment (AWS_ENDPOINT_URL_BEDROCK_RUNTIME, the Bedrock fake) as the fallback. And
the memoryless canary over this route: a canary in every field, echoed back by the endpoint and
quoted in its error messages, is found nowhere the gateway writes."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from botocore.credentials import Credentials
from fakes.bedrock_server import FakeBedrock
from fakes.bedrock_server import Reply as BedrockReply
from fakes.sagemaker_server import SECRET, Fail, FakeSageMaker, Hang, Reply, StreamFail
from local_server import serve
from openai_schema import validate
from support import KEY_ID, SECRET as SIGNING_SECRET, TEST_CATALOG, Garden, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.quota import utc_day
from client.garden_auth import SigV4RequestsAuth, openai_client

ENDPOINT, COMPONENT, EMBED_ENDPOINT = "llama-3-8b-endpoint", "llama-3-8b-ic", "bge-small-endpoint"
BEDROCK_LLAMA = "meta.llama3-8b-instruct-v1:0"
# The catalog entries this file tests with (README, "SageMaker endpoints"): a chat alias served by
# an inference component on a SageMaker endpoint, falling back to Bedrock; an embedding model on
# its own endpoint (no `dimensions`: the container's model has one size).
SAGEMAKER_MODELS: dict[str, Any] = {
    "llama-3-8b": {
        "max_output_tokens": 512,
        "price": {"input_per_1k": 0.0002, "output_per_1k": 0.0004},
        "deployments": [
            {"provider": "sagemaker", "name": "llama-sagemaker", "model_id": ENDPOINT,
             "inference_component": COMPONENT, "region": "us-east-1"},
            {"provider": "bedrock", "name": "llama-bedrock", "model_id": BEDROCK_LLAMA,
             "price": {"input_per_1k": 0.0003, "output_per_1k": 0.0006}},
        ],
    },
    "bge-small": {
        "kind": "embedding",
        "price": {"input_per_1k": 0.00002},
        "deployments": [{"provider": "sagemaker", "name": "bge-sagemaker", "model_id": EMBED_ENDPOINT}],
    },
}
CHAT = {"model": "llama-3-8b", "messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Mail jane.doe@example.com the fees"}]}


def sagemaker_catalog() -> dict[str, Any]:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"].update(copy.deepcopy(SAGEMAKER_MODELS))
    for app in raw["apps"]:
        app["allowed_models"] += list(SAGEMAKER_MODELS)
    return raw


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSageMaker]:
    with FakeSageMaker() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", server.endpoint_url)
        yield server


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
        yield server


def garden_with(tmp_path: Path, **env: str) -> Any:
    return running_garden(tmp_path, env={"GARDEN_BEDROCK_REGION": "us-east-1", **env},
                          catalog=parse_catalog(sagemaker_catalog()))


def held(g: Garden) -> int:
    now = time.time()
    return g.ledger.usage("test-app", utc_day(now), now).reserved


def sse_chunks(body: bytes) -> list[dict[str, Any]]:
    events = [e for e in body.decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    return [json.loads(e[len("data: "):]) for e in events[:-1]]


def answer_text(body: bytes, stream: bool) -> str:
    if not stream:
        return json.loads(body)["choices"][0]["message"]["content"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in sse_chunks(body) if c["choices"])


def test_chat_is_served_by_the_endpoint_and_sees_only_redacted_text(tmp_path: Path, sagemaker: FakeSageMaker,
                                                                    bedrock: FakeBedrock) -> None:
    with garden_with(tmp_path) as g:
        response = g.chat({**CHAT, "max_tokens": 100_000, "temperature": 0.1})
        now = time.time()
        usage = g.ledger.usage("test-app", utc_day(now), now)
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"] == "Mail [EMAIL] the fees"
    assert (response.headers["x-garden-deployment"], response.headers["x-garden-attempts"]) == ("llama-sagemaker", "1")
    seen = sagemaker.requests[0]
    assert (seen.endpoint, seen.headers["x-amzn-sagemaker-inference-component"]) == (ENDPOINT, COMPONENT)
    assert "jane.doe" not in json.dumps(seen.body)
    assert seen.body["max_tokens"] == 512 and seen.body["temperature"] == 0.1  # clamped to the catalog's limit
    assert body["usage"]["total_tokens"] == usage.tokens
    assert usage.cost_usd == pytest.approx((body["usage"]["prompt_tokens"] * 0.0002
                                            + body["usage"]["completion_tokens"] * 0.0004) / 1000)
    assert bedrock.requests == []


def test_a_stream_split_anywhere_is_buffered_whole_and_names_its_deployment(
        tmp_path: Path, sagemaker: FakeSageMaker, bedrock: FakeBedrock) -> None:
    text = "Grüße aus 東京 🌍: the fees are listed."
    sagemaker.script[ENDPOINT] = Reply(text, split_at=tuple(range(3, 4000, 7)))
    with garden_with(tmp_path) as g:
        response = g.chat({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200, response.body
    assert response.headers["x-garden-deployment"] == "llama-sagemaker"
    chunks = sse_chunks(response.body)
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert answer_text(response.body, stream=True) == text
    assert chunks[-1]["usage"]["prompt_tokens"] > 0
    assert sagemaker.requests[0].operation == "invocations-response-stream"


def test_tools_through_the_gateway(tmp_path: Path, sagemaker: FakeSageMaker, bedrock: FakeBedrock) -> None:
    sagemaker.script[ENDPOINT] = Reply(tool_calls=({"name": "lookup", "arguments": {"id": "A-1"}},))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with garden_with(tmp_path) as g:
        body = json.loads(g.chat({**CHAT, "tools": tools, "tool_choice": "required"}).body)
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup" and json.loads(call["function"]["arguments"]) == {"id": "A-1"}
    assert sagemaker.requests[0].body["tools"] == tools and sagemaker.requests[0].body["tool_choice"] == "required"


@pytest.mark.parametrize("fail", [Fail("InternalFailure"), Fail("ServiceUnavailable"), Fail("ModelNotReadyException"),
                                  Fail("ModelError", 429), Fail("ModelError", 503)])
@pytest.mark.parametrize("stream", [False, True])
def test_faults_fall_back_to_bedrock(tmp_path: Path, sagemaker: FakeSageMaker, bedrock: FakeBedrock,
                                     fail: Fail, stream: bool) -> None:
    sagemaker.script[ENDPOINT] = fail
    bedrock.script[BEDROCK_LLAMA] = BedrockReply("from Bedrock")
    with garden_with(tmp_path) as g:
        response = g.chat({**CHAT, "stream": stream})
        now = time.time()
        usage = g.ledger.usage("test-app", utc_day(now), now)
    assert response.status_code == 200, response.body
    assert (response.headers["x-garden-deployment"], response.headers["x-garden-attempts"]) == ("llama-bedrock", "2")
    assert answer_text(response.body, stream) == "from Bedrock"
    assert usage.cost_usd > 0 and sagemaker.calls[ENDPOINT] <= 2  # botocore's bounded retries, then fallback


def test_a_stream_failing_mid_way_falls_back(tmp_path: Path, sagemaker: FakeSageMaker, bedrock: FakeBedrock) -> None:
    sagemaker.script[ENDPOINT] = StreamFail("ModelStreamError", after_parts=3)
    with garden_with(tmp_path) as g:
        response = g.chat({**CHAT, "stream": True})
    assert response.status_code == 200 and response.headers["x-garden-deployment"] == "llama-bedrock"


@pytest.mark.parametrize(("fail", "status"), [(Fail("ModelError", 400), 400), (Fail("ValidationError"), 400),
                                              (Fail("ModelError", 424), 502)])
def test_what_the_request_caused_is_not_retried_elsewhere(tmp_path: Path, sagemaker: FakeSageMaker,
                                                          bedrock: FakeBedrock, fail: Fail, status: int) -> None:
    sagemaker.script[ENDPOINT] = fail
    with garden_with(tmp_path) as g:
        response = g.chat(CHAT)
        assert held(g) == 0
    assert response.status_code == status
    validate(json.loads(response.body), "ErrorResponse")
    assert (response.headers["x-garden-deployment"], response.headers["x-garden-attempts"]) == ("llama-sagemaker", "1")
    assert sagemaker.calls[ENDPOINT] == 1 and bedrock.requests == []
    assert SECRET not in response.body.decode()  # the container's message may quote the prompt


def test_a_stalled_endpoint_does_not_outlive_the_deadline(tmp_path: Path, sagemaker: FakeSageMaker,
                                                          bedrock: FakeBedrock) -> None:
    sagemaker.script[ENDPOINT] = Hang(10)
    with garden_with(tmp_path, GARDEN_REQUEST_TIMEOUT_S="2") as g:
        started = time.monotonic()
        response = g.chat(CHAT)
        elapsed = time.monotonic() - started
        assert held(g) == 0
    assert response.status_code == 504, response.body
    assert elapsed < 4.0  # the 2 s deadline plus slack for a loaded machine; the endpoint hangs 10 s
    validate(json.loads(response.body), "ErrorResponse")


def test_embeddings_through_the_gateway(tmp_path: Path, sagemaker: FakeSageMaker) -> None:
    with garden_with(tmp_path) as g:
        response = g.request("POST", "/v1/embeddings", {"model": "bge-small", "input": ["jane.doe@example.com", "b"]})
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateEmbeddingResponse")
    assert [d["index"] for d in body["data"]] == [0, 1] and len(body["data"][0]["embedding"]) == 8
    assert response.headers["x-garden-deployment"] == "bge-sagemaker"
    seen = sagemaker.requests[0]
    assert seen.endpoint == EMBED_ENDPOINT and seen.body["input"] == ["[EMAIL]", "b"]
    assert "dimensions" not in seen.body


# --- memoryless -----------------------------------------------------------------------------------

CANARY = "CANARY-s4Gm-memoryless-77e1"


def test_no_canary_anywhere_the_gateway_writes_on_the_sagemaker_route(tmp_path: Path) -> None:
    catalog = tmp_path / "sagemaker-catalog.json"
    catalog.write_text(json.dumps(sagemaker_catalog()))
    with FakeSageMaker() as fake, FakeBedrock() as bedrock:
        bedrock.script[BEDROCK_LLAMA] = BedrockReply()
        env = {"GARDEN_CATALOG": str(catalog), "GARDEN_BEDROCK_REGION": "us-east-1",
               "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": fake.endpoint_url,
               "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.endpoint_url}
        with serve(tmp_path, env=env) as server:
            def post(body: dict[str, Any]) -> requests.Response:
                auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SIGNING_SECRET))
                return requests.post(f"{server.base_url}/v1/chat/completions", data=json.dumps(body).encode(),
                                     auth=auth, timeout=10, headers={"content-type": "application/json"})

            chat = {"model": "llama-3-8b", "user": CANARY, "metadata": {"k": CANARY}, "stop": [CANARY],
                    "messages": [{"role": "system", "content": f"system {CANARY}"},
                                 {"role": "user", "content": f"hello {CANARY}"}]}
            tools = [{"type": "function", "function": {"name": "lookup", "description": CANARY, "parameters": {
                "type": "object", "properties": {"q": {"type": "string", "description": CANARY}}}}}]
            statuses: dict[str, Any] = {}
            statuses["plain"] = post(chat)
            statuses["stream"] = post({**chat, "stream": True, "stream_options": {"include_usage": True}})
            fake.script[ENDPOINT] = Reply(tool_calls=({"name": "lookup", "arguments": {"q": CANARY}},))
            statuses["tools"] = post({**chat, "tools": tools})
            for name, fail in [("model_error", Fail("ModelError", 400)), ("validation", Fail("ValidationError")),
                               ("fallback", Fail("InternalFailure"))]:
                fake.script[ENDPOINT] = fail
                statuses[name] = post(chat)
            fake.script[ENDPOINT] = StreamFail("ModelStreamError", after_parts=3)
            statuses["mid_stream"] = post({**chat, "stream": True})
            sdk = openai_client(f"{server.base_url}/v1", region="us-east-1",
                                credentials=Credentials(KEY_ID, SIGNING_SECRET), max_retries=0)
            embedded = sdk.embeddings.with_raw_response.create(model="bge-small", input=[CANARY, f"x {CANARY}"],
                                                              user=CANARY)
            codes = {name: r.status_code for name, r in statuses.items()}
            assert codes == {"plain": 200, "stream": 200, "tools": 200, "model_error": 400, "validation": 400,
                             "fallback": 200, "mid_stream": 200}
            assert embedded.http_response.status_code == 200
            # The canary did travel: the endpoint echoed it, and quoted it in its error messages.
            assert CANARY in statuses["plain"].text and CANARY in statuses["stream"].text
            assert CANARY in json.dumps([r.body for r in fake.requests])

    written = [p for p in server.home.rglob("*") if p.is_file()] + [server.output]
    assert [str(p) for p in written if CANARY.encode() in p.read_bytes()] == []
    audit_lines = [line for p in (server.home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert len(audit_lines) == len(statuses) + 1  # the search was not vacuous
    assert any('"llama-sagemaker"' in line for line in audit_lines)
