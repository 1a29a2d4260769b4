"""Bedrock embeddings: the pure InvokeModel translation (Titan Text Embeddings v2, Cohere Embed v3),
and the adapter through the REAL boto3 client against the loopback Bedrock fake."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

import pytest
from fakes.bedrock_server import Fail, FakeBedrock, Hang, fake_vector
from fakes.provider_calls import make_app

from chalicelib.catalog import Deployment
from chalicelib.errors import (DeadlineExceeded, InvalidRequest, PermissionDenied, ServiceUnavailable, Signal,
                               UpstreamError, UpstreamThrottled)
from chalicelib.providers import EmbeddingCall
from chalicelib.providers.bedrock.embeddings import from_invoke_model, to_invoke_model
from chalicelib.providers.bedrock.provider import BedrockProvider, bedrock_client_factory

TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-multilingual-v3"


def call(model_id: str, *inputs: str, dimensions: int | None = None, deadline_s: float = 10.0) -> EmbeddingCall:
    deployment = Deployment(provider="bedrock", model_id=model_id, name=model_id)
    return EmbeddingCall(make_app(), deployment, inputs or ("hello",), dimensions, time.monotonic() + deadline_s)


def body(invocation: Any) -> dict[str, Any]:
    return json.loads(invocation.kwargs["body"])


# --- translation ---------------------------------------------------------------------------------

def test_titan_v2_takes_one_input_a_call_normalised_at_the_size_asked() -> None:
    calls = to_invoke_model(call(TITAN, "a", "b", dimensions=256))
    assert [body(c) for c in calls] == [{"inputText": "a", "dimensions": 256, "normalize": True},
                                        {"inputText": "b", "dimensions": 256, "normalize": True}]
    assert calls[0].kwargs["modelId"] == TITAN and calls[0].kwargs["contentType"] == "application/json"
    assert body(to_invoke_model(call(TITAN, "a"))[0])["dimensions"] == 1024  # the model's default, said


def test_cohere_takes_96_texts_a_call_as_search_documents() -> None:
    inputs = tuple(f"t{i}" for i in range(200))
    calls = to_invoke_model(call(COHERE, *inputs))
    assert [c.inputs for c in calls] == [96, 96, 8]
    assert body(calls[0]) == {"texts": list(inputs[:96]), "input_type": "search_document", "truncate": "END"}
    assert body(calls[2])["texts"] == list(inputs[192:])


@pytest.mark.parametrize("model_id, dimensions", [(TITAN, 300), (TITAN, 64), (COHERE, 256),
                                                  ("amazon.titan-embed-text-v1", 512)])
def test_a_size_the_model_cannot_give_is_refused_naming_dimensions(model_id: str, dimensions: int) -> None:
    with pytest.raises(InvalidRequest) as refused:
        to_invoke_model(call(model_id, "x", dimensions=dimensions))
    assert refused.value.param == "dimensions"


@pytest.mark.parametrize("model_id, size", [(TITAN, 50_001), (COHERE, 2049)])
def test_an_input_over_the_models_limit_is_refused_before_any_call(model_id: str, size: int) -> None:
    with pytest.raises(InvalidRequest) as refused:
        to_invoke_model(call(model_id, "ok", "x" * size))
    assert refused.value.param == "input" and "input[1]" in refused.value.message


def test_unknown_bedrock_model_is_a_configuration_fault_that_no_breaker_counts() -> None:
    with pytest.raises(UpstreamError) as fault:
        to_invoke_model(call("anthropic.claude-3-haiku-20240307-v1:0", "x"))
    assert fault.value.signal is Signal.NONE and not fault.value.fallback


def test_tokens_come_from_the_header_then_titans_count_then_an_estimate() -> None:
    titan = call(TITAN, "abcd", "efgh")
    answers = [({"embedding": [0.6, 0.8], "inputTextTokenCount": 9}, {"x-amzn-bedrock-input-token-count": "3"}),
               ({"embedding": [1.0, 0.0], "inputTextTokenCount": 5}, {})]
    embedded = from_invoke_model(titan, answers)
    assert embedded.vectors == ((0.6, 0.8), (1.0, 0.0)) and embedded.prompt_tokens == 3 + 5
    cohere = call(COHERE, "abcde", "xy")  # no count anywhere: ceil(bytes / 4) each
    embedded = from_invoke_model(cohere, [({"embeddings": {"float": [[1.0], [0.5]]}, "texts": ["..."]}, {})])
    assert embedded.vectors == ((1.0,), (0.5,)) and embedded.prompt_tokens == 2 + 1


@pytest.mark.parametrize("payload", [None, {}, {"embedding": []}, {"embedding": ["x"]}, {"embedding": [True]},
                                     {"embeddings": [[1.0]]}])
def test_a_malformed_answer_is_bedrocks_fault_and_never_quoted(payload: Any) -> None:
    with pytest.raises(UpstreamError) as fault:
        from_invoke_model(call(TITAN, "x"), [(payload, {})])
    assert fault.value.code == "upstream_malformed_output" and "x" not in fault.value.message.split()


# --- the real boto3 client against the fake ------------------------------------------------------

@pytest.fixture
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


def provider(fake: FakeBedrock, max_attempts: int = 1) -> BedrockProvider:
    return BedrockProvider(bedrock_client_factory("us-east-1", None, max_attempts=max_attempts,
                                                  endpoint_url=fake.endpoint_url))


def test_titan_over_the_wire(fake: FakeBedrock) -> None:
    embedded = provider(fake).embed(call(TITAN, "first text", "second", dimensions=512))
    assert embedded.vectors == (tuple(fake_vector("first text", 512)), tuple(fake_vector("second", 512)))
    assert embedded.prompt_tokens == 3 + 2  # Bedrock's token-count header, per call
    paths = sorted(path for path, _, _ in fake.requests)
    assert paths == ["/model/amazon.titan-embed-text-v2%3A0/invoke"] * 2
    assert sorted(b["inputText"] for _, b, _ in fake.requests) == ["first text", "second"]
    assert all(h["authorization"].startswith("AWS4-HMAC-SHA256") for _, _, h in fake.requests)


def test_many_titan_inputs_run_in_parallel_and_keep_their_order(fake: FakeBedrock) -> None:
    inputs = tuple(f"input {i}" for i in range(24))
    seen: list[int] = []
    lock = threading.Lock()
    active = [0]

    def slow(request_body: dict[str, Any]) -> Hang:
        with lock:
            active[0] += 1
            seen.append(active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return Hang(0.0)

    fake.script[TITAN] = slow
    embedded = provider(fake).embed(call(TITAN, *inputs, dimensions=256))
    assert embedded.vectors == tuple(tuple(fake_vector(t, 256)) for t in inputs)
    # Calls overlapped at the fake (a wall-clock bound would only measure how busy the machine is).
    assert max(seen) > 1


def test_cohere_over_the_wire_in_batches(fake: FakeBedrock) -> None:
    inputs = tuple(f"doc {i}" for i in range(100))
    embedded = provider(fake).embed(call(COHERE, *inputs))
    assert embedded.vectors == tuple(tuple(fake_vector(t, 1024)) for t in inputs)
    assert sorted(len(b["texts"]) for _, b, _ in fake.requests) == [4, 96]
    assert embedded.prompt_tokens == sum(-(-len(t) // 4) for t in inputs)


@pytest.mark.parametrize("code, error, fallback, signal", [
    ("ThrottlingException", UpstreamThrottled, True, Signal.BUSY),
    ("ServiceUnavailableException", ServiceUnavailable, True, Signal.DOWN),
    ("InternalServerException", ServiceUnavailable, True, Signal.DOWN),
    ("ValidationException", InvalidRequest, False, Signal.NONE),
    ("AccessDeniedException", PermissionDenied, False, Signal.NONE),
    ("ModelErrorException", UpstreamError, False, Signal.NONE),
])
def test_errors_map_as_converse_does_and_never_quote_aws(fake: FakeBedrock, code: str, error: type,
                                                          fallback: bool, signal: Signal) -> None:
    fake.script[TITAN] = Fail(code)
    with pytest.raises(error) as raised:
        provider(fake).embed(call(TITAN, "x"))
    assert (raised.value.fallback, raised.value.signal) == (fallback, signal)
    assert "SECRET-PROMPT-TEXT" not in raised.value.message


def test_one_failing_input_fails_the_whole_call(fake: FakeBedrock) -> None:
    fake.script[TITAN] = lambda b: Fail("ThrottlingException") if b["inputText"] == "bad" else Hang(0.0)
    with pytest.raises(UpstreamThrottled):
        provider(fake).embed(call(TITAN, "a", "bad", "c"))


def test_a_slow_model_is_cut_at_the_deadline(fake: FakeBedrock) -> None:
    fake.script[TITAN] = Hang(5.0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        provider(fake).embed(call(TITAN, "x", deadline_s=1.5))
    assert time.monotonic() - started < 2.5
