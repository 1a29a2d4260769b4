"""The SageMaker adapter through the REAL boto3 client against a loopback server speaking
sagemaker-runtime's wire protocol: serialisation, SigV4, error parsing (ModelError's
OriginalStatusCode), botocore retries, timeouts, and the response stream's event-stream framing with
SSE split across payload parts at arbitrary bytes."""
from __future__ import annotations

import datetime
import json
import socket
import time
from dataclasses import replace
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.aws.runtime_clients import runtime_client_factory
from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.catalog import Deployment
from chalicelib.chat import Message, ToolCall
from chalicelib.errors import (DeadlineExceeded, GatewayError, InvalidRequest, PermissionDenied, ServiceUnavailable,
                               Signal, UpstreamError, UpstreamThrottled)
from chalicelib.providers import EmbeddingCall, ProviderCall
from chalicelib.providers.sagemaker.provider import SageMakerProvider
from fakes.provider_calls import WEATHER, make_app, make_call
from fakes.sagemaker_server import SECRET, CutShort, Fail, FakeSageMaker, Hang, Reply, StreamFail, Trickle

ENDPOINT = "llama-endpoint"
TEXT = "Grüße aus 東京 🌍, all well"  # 1- to 4-byte UTF-8 characters
WEATHER_CALL = {"name": "get_weather", "arguments": {"city": "Oslo", "days": [1, 2]}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSageMaker]:
    with FakeSageMaker() as running:
        yield running


@pytest.fixture
def fake(server: FakeSageMaker) -> FakeSageMaker:
    with server._lock:
        server.script.clear()
        server.requests.clear()
        server.calls.clear()
    return server


_factories: dict[tuple[str | None, int], Any] = {}


def provider(fake: FakeSageMaker | None = None, max_attempts: int = 1) -> SageMakerProvider:
    # One client factory per setting for the module, as one container keeps its clients.
    endpoint_url = fake.endpoint_url if fake else None
    key = (endpoint_url, max_attempts)
    if key not in _factories:
        _factories[key] = runtime_client_factory("sagemaker-runtime", "us-east-1", None, max_attempts=max_attempts,
                                                 endpoint_url=endpoint_url)
    return SageMakerProvider(_factories[key])


def sm_call(*messages: Message, component: str | None = None, region: str | None = None,
            **request: Any) -> ProviderCall:
    call = make_call(*messages, **request)
    return replace(call, deployment=Deployment("sagemaker", ENDPOINT, "llama-sm", region=region,
                                               inference_component=component))


def embedding_call(*inputs: str, dimensions: int | None = None, deadline_s: float = 10.0) -> EmbeddingCall:
    return EmbeddingCall(make_app(), Deployment("sagemaker", "bge-endpoint", "bge-sm", inference_component="bge-ic"),
                         inputs, dimensions, time.monotonic() + deadline_s)


# --- chat ----------------------------------------------------------------------------------------

def test_invoke_endpoint_plain(fake: FakeSageMaker) -> None:
    call = sm_call(Message("system", "be brief"), Message("user", "hi there"), temperature=0.3, stop=("END",))
    completion = provider(fake).complete(call)
    assert (completion.content, completion.finish_reason) == ("hi there", "stop")
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    seen = fake.requests[0]
    assert (seen.endpoint, seen.operation) == (ENDPOINT, "invocations")
    assert seen.body == {"model": ENDPOINT, "messages": [{"role": "system", "content": "be brief"},
                                                         {"role": "user", "content": "hi there"}],
                         "max_tokens": 256, "stream": False, "temperature": 0.3, "stop": ["END"]}
    assert seen.headers["content-type"] == "application/json" and seen.headers["accept"] == "application/json"
    assert "x-amzn-sagemaker-inference-component" not in seen.headers
    # SigV4 for SageMaker's signing name, in the default region
    assert "/us-east-1/sagemaker/aws4_request" in seen.headers["authorization"]


def test_inference_component_header_and_region(fake: FakeSageMaker) -> None:
    provider(fake).complete(sm_call(component="llama-ic-1", region="eu-west-1"))
    seen = fake.requests[0]
    assert seen.headers["x-amzn-sagemaker-inference-component"] == "llama-ic-1"
    assert seen.body["model"] == "llama-ic-1"
    assert "/eu-west-1/sagemaker/aws4_request" in seen.headers["authorization"]  # called where it runs


def test_cached_tokens_are_reported(fake: FakeSageMaker) -> None:
    fake.script[ENDPOINT] = Reply("ok", cached_tokens=6)
    assert provider(fake).complete(sm_call()).usage.cache_read_tokens == 6


@pytest.mark.parametrize("stream", [False, True])
def test_tools(fake: FakeSageMaker, stream: bool) -> None:
    fake.script[ENDPOINT] = Reply(tool_calls=(WEATHER_CALL,))
    completion = provider(fake).complete(sm_call(tools=(WEATHER,), tool_choice="required", stream=stream))
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("call_fake0", "get_weather", '{"city": "Oslo", "days": [1, 2]}'),)
    body = fake.requests[0].body
    assert body["tool_choice"] == "required" and body["tools"][0]["function"]["name"] == "get_weather"


# --- streams -------------------------------------------------------------------------------------

def test_stream_one_part_per_event(fake: FakeSageMaker) -> None:
    fake.script[ENDPOINT] = Reply(TEXT)
    completion = provider(fake).complete(sm_call(stream=True))
    assert (completion.content, completion.finish_reason) == (TEXT, "stop")
    assert completion.usage.completion_tokens > 0
    seen = fake.requests[0]
    assert seen.operation == "invocations-response-stream"
    assert seen.body["stream"] is True and seen.body["stream_options"] == {"include_usage": True}


def test_stream_in_one_byte_parts(fake: FakeSageMaker) -> None:
    fake.script[ENDPOINT] = Reply(TEXT, split_at=range(1, 10_000))
    assert provider(fake).complete(sm_call(stream=True)).content == TEXT


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=st.lists(st.integers(min_value=1, max_value=1200), max_size=30))
def test_stream_split_at_arbitrary_bytes(fake: FakeSageMaker, points: list[int]) -> None:
    fake.script[ENDPOINT] = Reply(TEXT, tool_calls=(WEATHER_CALL,), split_at=tuple(points))
    completion = provider(fake).complete(sm_call(stream=True))
    assert completion.content == TEXT
    assert completion.tool_calls[0].arguments == '{"city": "Oslo", "days": [1, 2]}'


def test_a_stream_cut_short_is_an_error_not_a_short_answer(fake: FakeSageMaker) -> None:
    fake.script[ENDPOINT] = CutShort(after_parts=3)
    with pytest.raises(UpstreamError) as raised:
        provider(fake).complete(sm_call(Message("user", TEXT), stream=True))
    assert raised.value.code == "upstream_stream_incomplete" and raised.value.signal is Signal.DOWN


def test_a_stream_whose_connection_breaks_mid_frame(fake: FakeSageMaker) -> None:
    fake.script[ENDPOINT] = CutShort(after_parts=3, broken=True)
    with pytest.raises(ServiceUnavailable) as raised:
        provider(fake).complete(sm_call(Message("user", TEXT), stream=True))
    assert raised.value.signal is Signal.DOWN and raised.value.fallback


def test_a_stream_without_usage_is_refused(fake: FakeSageMaker) -> None:
    fake.script[ENDPOINT] = Reply("x", usage=False)
    with pytest.raises(UpstreamError) as raised:
        provider(fake).complete(sm_call(stream=True))
    assert raised.value.code == "upstream_malformed_response"


@pytest.mark.parametrize(("exception_type", "signal"), [("ModelStreamError", Signal.BUSY),
                                                         ("InternalStreamFailure", Signal.DOWN)])
def test_mid_stream_exceptions(fake: FakeSageMaker, exception_type: str, signal: Signal) -> None:
    fake.script[ENDPOINT] = StreamFail(exception_type, after_parts=2)
    with pytest.raises(ServiceUnavailable) as raised:
        provider(fake).complete(sm_call(Message("user", TEXT), stream=True))
    assert raised.value.signal is signal and raised.value.fallback
    assert SECRET not in raised.value.message and TEXT not in raised.value.message


# --- errors --------------------------------------------------------------------------------------

ERRORS = [
    # code, container status, gateway error, status, fallback, signal
    (Fail("ValidationError"), InvalidRequest, 400, False, Signal.NONE),
    (Fail("AccessDeniedException"), PermissionDenied, 403, False, Signal.NONE),
    (Fail("ModelError", 400), InvalidRequest, 400, False, Signal.NONE),
    (Fail("ModelError", 422), InvalidRequest, 400, False, Signal.NONE),
    (Fail("ModelError", 404), UpstreamError, 502, False, Signal.NONE),
    (Fail("ModelError"), UpstreamError, 502, False, Signal.NONE),
    (Fail("ModelError", 429), UpstreamThrottled, 429, True, Signal.BUSY),
    (Fail("ModelError", 408), DeadlineExceeded, 504, True, Signal.BUSY),
    (Fail("ModelError", 500), ServiceUnavailable, 503, True, Signal.DOWN),
    (Fail("ModelNotReadyException"), UpstreamThrottled, 429, True, Signal.BUSY),
    (Fail("ThrottlingException"), UpstreamThrottled, 429, True, Signal.BUSY),
    (Fail("ServiceUnavailable"), ServiceUnavailable, 503, True, Signal.DOWN),
    (Fail("InternalFailure"), ServiceUnavailable, 503, True, Signal.DOWN),
    (Fail("InternalDependencyException"), ServiceUnavailable, 503, True, Signal.DOWN),
]


@pytest.mark.parametrize(("fail", "error", "status", "fallback", "signal"), ERRORS,
                         ids=[f"{e[0].code}-{e[0].original_status}" for e in ERRORS])
@pytest.mark.parametrize("stream", [False, True])
def test_every_error_class(fake: FakeSageMaker, fail: Fail, error: type[GatewayError], status: int,
                           fallback: bool, signal: Signal, stream: bool) -> None:
    fake.script[ENDPOINT] = fail
    with pytest.raises(GatewayError) as raised:
        provider(fake).complete(sm_call(Message("user", TEXT), stream=stream))
    got = raised.value
    assert (type(got), got.status, got.fallback, got.signal) == (error, status, fallback, signal)
    assert SECRET not in got.message and TEXT not in got.message  # neither AWS's nor the container's text


def test_faults_are_retried_within_total_max_attempts(fake: FakeSageMaker) -> None:
    fake.script[ENDPOINT] = [Fail("InternalFailure"), Reply("second time lucky")]
    assert provider(fake, max_attempts=2).complete(sm_call()).content == "second time lucky"
    assert fake.calls[ENDPOINT] == 2


@pytest.mark.parametrize("fail", [Fail("ValidationError"), Fail("ModelError", 400), Fail("ModelError", 500)])
def test_model_and_validation_errors_are_not_retried(fake: FakeSageMaker, fail: Fail) -> None:
    fake.script[ENDPOINT] = fail
    with pytest.raises(GatewayError):
        provider(fake, max_attempts=3).complete(sm_call())
    assert fake.calls[ENDPOINT] == 1


# --- deadline ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_a_stalled_endpoint_cannot_hold_the_call_past_its_deadline(fake: FakeSageMaker, stream: bool) -> None:
    fake.script[ENDPOINT] = [Reply(), Hang(10)]
    sagemaker = provider(fake, max_attempts=2)
    sagemaker.complete(sm_call(stream=stream))  # boto3's first import and session
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as raised:
        sagemaker.complete(sm_call(deadline_s=2.1, stream=stream))
    # read_timeout (1.5 s, fitted inside the 2.1 s with connect) plus slack for a loaded machine
    assert 1.0 <= time.monotonic() - started < 3.5
    assert fake.calls[ENDPOINT] == 2  # not retried: a retry could not end in time
    assert raised.value.signal is Signal.BUSY


def test_a_trickling_stream_is_cut_at_the_deadline(fake: FakeSageMaker) -> None:
    # Every part arrives well within the read timeout; the whole stream would take ~5 s.
    fake.script[ENDPOINT] = Trickle(0.25, Reply("x" * 100))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        provider(fake).complete(sm_call(deadline_s=1.5, stream=True))
    assert time.monotonic() - started < 2.5


def test_past_deadline_raises_without_calling(fake: FakeSageMaker) -> None:
    with pytest.raises(DeadlineExceeded):
        provider(fake).complete(sm_call(deadline_s=-0.1))
    with pytest.raises(DeadlineExceeded):
        provider(fake).embed(embedding_call("a", deadline_s=0.2))
    assert fake.calls == {}


def test_unreachable_endpoint_is_503() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client_for = runtime_client_factory("sagemaker-runtime", "us-east-1", None, max_attempts=1,
                                        endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ServiceUnavailable) as raised:
        SageMakerProvider(client_for).complete(sm_call())
    assert raised.value.signal is Signal.DOWN


# --- embeddings ----------------------------------------------------------------------------------

def test_embeddings(fake: FakeSageMaker) -> None:
    embedded = provider(fake).embed(embedding_call("first text", "second", dimensions=16))
    assert len(embedded.vectors) == 2 and all(len(v) == 16 for v in embedded.vectors)
    assert embedded.prompt_tokens == 3 + 2  # the container's usage: ceil(bytes / 4) each
    seen = fake.requests[0]
    assert (seen.endpoint, seen.operation) == ("bge-endpoint", "invocations")
    assert seen.body == {"model": "bge-ic", "input": ["first text", "second"], "encoding_format": "float",
                         "dimensions": 16}
    assert seen.headers["x-amzn-sagemaker-inference-component"] == "bge-ic"
    # in the caller's order, though the fake answers in reverse
    again = provider(fake).embed(embedding_call("second"))
    assert provider(fake).embed(embedding_call("second", dimensions=16)).vectors[0] == embedded.vectors[1]
    assert len(again.vectors[0]) == 8  # the container's default size


@pytest.mark.parametrize(("fail", "error"), [(Fail("ModelError", 413), InvalidRequest),
                                             (Fail("ModelNotReadyException"), UpstreamThrottled),
                                             (Fail("InternalFailure"), ServiceUnavailable)])
def test_embedding_errors(fake: FakeSageMaker, fail: Fail, error: type[GatewayError]) -> None:
    fake.script["bge-endpoint"] = fail
    with pytest.raises(error) as raised:
        provider(fake).embed(embedding_call("quote me"))
    assert SECRET not in raised.value.message and "quote me" not in raised.value.message


# --- where the client goes, and as whom ------------------------------------------------------------

def test_aws_endpoint_url_sagemaker_runtime_is_honoured(fake: FakeSageMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", fake.endpoint_url)
    assert provider(None).complete(sm_call()).content == "hello"
    assert fake.calls == {ENDPOINT: 1}


def test_calls_are_signed_with_the_apps_assumed_role(fake: FakeSageMaker) -> None:
    sts = boto3.client("sts", region_name="us-east-1")
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    with Stubber(sts) as stub:
        stub.add_response("assume_role", {"Credentials": {
            "AccessKeyId": "ASIAAPPSESSION000002", "SecretAccessKey": "s" * 40,
            "SessionToken": "app-session-token", "Expiration": expires}})
        credentials = AssumedRoleCredentials(sts, "arn:aws:iam::444455556666:role/garden-bedrock")
        client_for = runtime_client_factory("sagemaker-runtime", "us-east-1", credentials,
                                            endpoint_url=fake.endpoint_url)
        SageMakerProvider(client_for).complete(replace(sm_call(), app=make_app("payments-bot")))
    headers = fake.requests[0].headers
    assert "Credential=ASIAAPPSESSION000002/" in headers["authorization"]
    assert headers["x-amz-security-token"] == "app-session-token"


def test_the_body_sent_is_json_even_for_awkward_text(fake: FakeSageMaker) -> None:
    text = "nul \x00, bidi \u202e, emoji \U0001f600"
    assert provider(fake).complete(sm_call(Message("user", text))).content == text
    assert json.loads(json.dumps(fake.requests[0].body))["messages"][0]["content"] == text
