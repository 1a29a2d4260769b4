"""The Bedrock adapter through the REAL boto3 client against a loopback server speaking Bedrock's
wire protocol: serialisation, error parsing, botocore retries, timeouts, event-stream framing."""
from __future__ import annotations

import datetime
import socket
import time
from typing import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws.sts_credentials import AssumedRoleCredentials
from chalicelib.chat import Message, ToolCall
from chalicelib.errors import (
    DeadlineExceeded, GatewayError, InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable, Signal,
    UpstreamError, UpstreamThrottled,
)
from chalicelib.providers.bedrock.provider import BedrockProvider, bedrock_client_factory
from fakes.bedrock_server import Fail, FakeBedrock, Hang, Reply, StreamFail
from fakes.provider_calls import WEATHER, make_app, make_call

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"  # the ':' must survive URL encoding
WEATHER_USE = {"name": "get_weather", "input": {"city": "Oslo", "days": [1, 2]}}


@pytest.fixture
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


def provider(fake: FakeBedrock, max_attempts: int = 1, **kwargs: object) -> BedrockProvider:
    return BedrockProvider(bedrock_client_factory("us-east-1", None, max_attempts=max_attempts,
                                                  endpoint_url=fake.endpoint_url, **kwargs))


def test_converse_plain(fake: FakeBedrock) -> None:
    completion = provider(fake).complete(make_call(Message("system", "be brief"), Message("user", "hi there")))
    assert (completion.content, completion.finish_reason) == ("hi there", "stop")
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    path, body, headers = fake.requests[0]
    assert path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert fake.calls == {MODEL: 1}
    assert body["inferenceConfig"] == {"maxTokens": 256}
    assert body["system"] == [{"text": "be brief"}]
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")


def test_converse_with_tools(fake: FakeBedrock) -> None:
    fake.script[MODEL] = Reply(tool_use=WEATHER_USE)
    completion = provider(fake).complete(make_call(tools=(WEATHER,), tool_choice="required"))
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("tooluse_fake1", "get_weather",
                                              '{"city": "Oslo", "days": [1, 2]}'),)
    body = fake.requests[0][1]
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["type"] == "object"


def test_converse_stream_plain(fake: FakeBedrock) -> None:
    fake.script[MODEL] = Reply(text="a streamed answer of some length", cache_read=40, cache_write=2)
    completion = provider(fake).complete(make_call(stream=True))
    assert fake.requests[0][0].endswith("/converse-stream")
    assert completion.content == "a streamed answer of some length"
    assert completion.finish_reason == "stop"
    assert (completion.usage.cache_read_tokens, completion.usage.cache_write_tokens) == (40, 2)
    assert completion.usage.prompt_tokens > 42


def test_converse_stream_tool_use(fake: FakeBedrock) -> None:
    fake.script[MODEL] = Reply(text="Checking.", tool_use=WEATHER_USE)
    completion = provider(fake).complete(make_call(stream=True))
    assert completion.content == "Checking."
    assert completion.tool_calls == (ToolCall("tooluse_fake1", "get_weather",
                                              '{"city": "Oslo", "days": [1, 2]}'),)
    assert completion.finish_reason == "tool_calls"


@pytest.mark.parametrize("code, error", [
    ("ValidationException", InvalidRequest),
    ("AccessDeniedException", PermissionDenied),
    ("ResourceNotFoundException", NotFound),
    ("ThrottlingException", UpstreamThrottled),
    ("ModelNotReadyException", UpstreamThrottled),
    ("ModelTimeoutException", DeadlineExceeded),
    ("ModelErrorException", UpstreamError),
    ("ServiceUnavailableException", ServiceUnavailable),
    ("InternalServerException", ServiceUnavailable),
])
@pytest.mark.parametrize("stream", [False, True])
def test_each_error_class_maps_to_its_status(fake: FakeBedrock, code: str, error: type, stream: bool) -> None:
    fake.script[MODEL] = Fail(code)
    with pytest.raises(GatewayError) as info:
        provider(fake).complete(make_call(stream=stream))
    assert type(info.value) is error and info.value.status == error.status
    assert "SECRET-PROMPT-TEXT" not in info.value.message  # AWS's text is never passed on


@pytest.mark.parametrize("code, signal", [
    ("ValidationException", Signal.NONE), ("AccessDeniedException", Signal.NONE),
    ("ResourceNotFoundException", Signal.NONE), ("ModelErrorException", Signal.NONE),
    ("ThrottlingException", Signal.BUSY), ("ModelNotReadyException", Signal.BUSY),
    ("ServiceQuotaExceededException", Signal.BUSY), ("ModelTimeoutException", Signal.BUSY),
    ("ServiceUnavailableException", Signal.DOWN), ("InternalServerException", Signal.DOWN),
])
def test_each_error_says_what_it_means_for_the_deployment(fake: FakeBedrock, code: str, signal: Signal) -> None:
    # The router's breakers read this: only BUSY (per app) and DOWN (shared) ever count.
    fake.script[MODEL] = Fail(code)
    with pytest.raises(GatewayError) as info:
        provider(fake).complete(make_call())
    assert info.value.signal is signal


@pytest.mark.parametrize("exception_type, signal", [
    ("modelStreamErrorException", Signal.NONE), ("validationException", Signal.NONE),
    ("throttlingException", Signal.BUSY), ("internalServerException", Signal.DOWN),
])
def test_mid_stream_errors_say_it_too(fake: FakeBedrock, exception_type: str, signal: Signal) -> None:
    fake.script[MODEL] = StreamFail(exception_type, after_events=3)
    with pytest.raises(GatewayError) as info:
        provider(fake).complete(make_call(Message("user", "a prompt long enough to stream"), stream=True))
    assert info.value.signal is signal


def test_throttling_is_retried_up_to_total_max_attempts(fake: FakeBedrock) -> None:
    fake.script[MODEL] = Fail("ThrottlingException")
    with pytest.raises(UpstreamThrottled):
        provider(fake, max_attempts=2).complete(make_call())
    assert fake.calls[MODEL] == 2


def test_a_retry_can_succeed(fake: FakeBedrock) -> None:
    fake.script[MODEL] = [Fail("ServiceUnavailableException"), Reply("second time lucky")]
    assert provider(fake, max_attempts=2).complete(make_call()).content == "second time lucky"
    assert fake.calls[MODEL] == 2


@pytest.mark.parametrize("code", ["ValidationException", "AccessDeniedException", "ModelErrorException"])
def test_client_errors_are_not_retried(fake: FakeBedrock, code: str) -> None:
    fake.script[MODEL] = Fail(code)
    with pytest.raises(GatewayError):
        provider(fake, max_attempts=3).complete(make_call())
    assert fake.calls[MODEL] == 1


def test_no_retry_when_the_deadline_leaves_no_time(fake: FakeBedrock) -> None:
    fake.script[MODEL] = Fail("ThrottlingException")
    with pytest.raises(UpstreamThrottled):
        provider(fake, max_attempts=3).complete(make_call(deadline_s=2.5))
    # The needs-retry hook vetoed the backoff + retry: its worst case (0.5 s connect, 1.5 s read)
    # after up to 1 s of backoff would not end by the deadline. The throttle is what the router sees.
    assert fake.calls[MODEL] == 1


@pytest.mark.parametrize("stream", [False, True])
def test_hung_upstream_raises_deadline_exceeded_within_read_timeout(fake: FakeBedrock, stream: bool) -> None:
    fake.script[MODEL] = [Reply(), Hang(10)]
    bedrock = provider(fake, max_attempts=2)
    bedrock.complete(make_call(deadline_s=10, stream=stream))  # boto3's first import and session
    assert fake.calls[MODEL] == 1
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as raised:
        bedrock.complete(make_call(deadline_s=2.1, stream=stream))
    # The read timeout fitted inside the 2.1 s with connect and margin (1 s, in 0.5 s steps) plus
    # slack for a loaded 2-core CI machine; the hang itself is 10 s.
    assert 1.0 <= time.monotonic() - started < 3.5
    assert fake.calls[MODEL] == 2  # the hung call was not retried: a retry could not end in time
    assert raised.value.signal is Signal.BUSY  # counted for this app only


def test_past_deadline_raises_without_calling(fake: FakeBedrock) -> None:
    with pytest.raises(DeadlineExceeded):
        provider(fake).complete(make_call(deadline_s=-0.1))
    assert fake.calls == {}


@pytest.mark.parametrize("stream", [False, True])
def test_a_stall_between_fitting_and_sending_refits_instead_of_failing(fake: FakeBedrock, stream: bool) -> None:
    # A client is fitted to the time left, then sent a little later (its first call loads endpoint
    # rules; a busy host stalls). A stall longer than the fit's slack (under one 0.5 s read-timeout
    # step plus the margin) must cost a step of read timeout, not the answer.
    fitted = bedrock_client_factory("us-east-1", None, max_attempts=1, endpoint_url=fake.endpoint_url)
    stalls = [0.7]

    def stalling_client_for(app: object, deployment: object, remaining_s: float) -> object:
        client = fitted(app, deployment, remaining_s)  # type: ignore[arg-type]
        if stalls:
            time.sleep(stalls.pop())
        return client

    completion = BedrockProvider(stalling_client_for).complete(make_call(stream=stream))
    assert completion.content
    assert fake.calls == {MODEL: 1}  # the refused send sent nothing


@pytest.mark.parametrize("exception_type, error", [
    ("modelStreamErrorException", UpstreamError),
    ("throttlingException", UpstreamThrottled),
    ("serviceUnavailableException", ServiceUnavailable),
    ("validationException", InvalidRequest),
])
def test_mid_stream_exception_is_mapped(fake: FakeBedrock, exception_type: str, error: type) -> None:
    fake.script[MODEL] = StreamFail(exception_type, after_events=3)
    with pytest.raises(GatewayError) as info:
        provider(fake).complete(make_call(Message("user", "a prompt long enough to stream"), stream=True))
    assert type(info.value) is error
    assert "SECRET-PROMPT-TEXT" not in info.value.message


def test_no_credentials_is_a_fast_503(fake: FakeBedrock, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as info:
        provider(fake, max_attempts=2).complete(make_call())
    assert info.value.code == "no_credentials" and info.value.status == 503
    assert time.monotonic() - started < 3.0  # a new boto3 session included, on a loaded machine
    assert fake.calls == {}


def test_unreachable_endpoint_is_503() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client_for = bedrock_client_factory("us-east-1", None, max_attempts=1,
                                        endpoint_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ServiceUnavailable):
        BedrockProvider(client_for).complete(make_call())


def test_clients_are_cached_per_credentials_region_and_timeout(fake: FakeBedrock) -> None:
    client_for = bedrock_client_factory("us-east-1", None, endpoint_url=fake.endpoint_url)
    call = make_call()
    assert client_for(call.app, call.deployment, 4.2) is client_for(call.app, call.deployment, 4.4)
    assert client_for(call.app, call.deployment, 4.2) is not client_for(call.app, call.deployment, 9.0)
    # connect + read fit the budget; a long budget also keeps 2 s free for one quick retry
    assert client_for(call.app, call.deployment, 1.2).meta.config.read_timeout == 0.5
    assert client_for(call.app, call.deployment, 4.2).meta.config.read_timeout == 3.5
    assert client_for(call.app, call.deployment, 9.0).meta.config.read_timeout == 6.0
    with pytest.raises(DeadlineExceeded):
        client_for(call.app, call.deployment, 0.9)


def test_calls_are_signed_with_the_apps_assumed_role(fake: FakeBedrock) -> None:
    sts = boto3.client("sts", region_name="us-east-1")
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    with Stubber(sts) as stub:
        stub.add_response("assume_role", {"Credentials": {
            "AccessKeyId": "ASIAAPPSESSION000001", "SecretAccessKey": "s" * 40,
            "SessionToken": "app-session-token", "Expiration": expires}})
        credentials = AssumedRoleCredentials(sts, "arn:aws:iam::444455556666:role/garden-bedrock")
        client_for = bedrock_client_factory("us-east-1", credentials, endpoint_url=fake.endpoint_url)
        BedrockProvider(client_for).complete(make_call(app=make_app("payments-bot")))
    headers = fake.requests[0][2]
    assert "Credential=ASIAAPPSESSION000001/" in headers["authorization"]
    assert headers["x-amz-security-token"] == "app-session-token"
