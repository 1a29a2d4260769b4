"""SageMaker translation: pure functions, no network. What is sent is OpenAI's own request shape
(validated against OpenAI's schema); answers and streams cut at any byte come back whole."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai_schema import validate

from chalicelib.catalog import Deployment
from chalicelib.chat import Message, ToolCall
from chalicelib.errors import (DeadlineExceeded, GatewayError, InvalidRequest, PermissionDenied, ServiceUnavailable,
                               Signal, UpstreamError, UpstreamThrottled)
from chalicelib.providers import EmbeddingCall, ProviderCall
from chalicelib.providers.sagemaker.translate import (from_chat, from_embeddings, from_stream, invoke_kwargs,
                                                      map_error, sse_data, to_chat, to_embeddings)
from fakes.provider_calls import WEATHER, make_app, make_call

ENDPOINT = "llama-3-8b-endpoint"


def sm_call(*messages: Message, component: str | None = None, **request: Any) -> ProviderCall:
    call = make_call(*messages, **request)
    return replace(call, deployment=Deployment("sagemaker", ENDPOINT, "llama-sm", inference_component=component))


def sent(call: ProviderCall) -> dict[str, Any]:
    return json.loads(to_chat(call))


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, **extra}


def sse(*chunks: dict[str, Any], done: bool = True) -> bytes:
    events = [f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks] + (["data: [DONE]\n\n"] if done else [])
    return "".join(events).encode()


USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
# Multi-byte characters of every UTF-8 length, so some split points fall inside a character.
TEXT = "Grüße, 東京 🌍 – ok"
STREAM = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": TEXT[:6]}), chunk({"content": TEXT[6:]}),
             chunk({}, "stop"), chunk(None, usage=USAGE))


# --- requests ------------------------------------------------------------------------------------

def test_the_body_is_an_openai_chat_request_with_max_tokens_always_set() -> None:
    call = sm_call(Message("system", "be brief"), Message("developer", "rules"), Message("user", "hi"),
                   max_tokens=99, temperature=0.2, top_p=0.9, stop=("END",))
    body = sent(call)
    validate(body, "CreateChatCompletionRequest")
    assert body == {"model": ENDPOINT, "max_tokens": 99, "stream": False, "temperature": 0.2, "top_p": 0.9,
                    "stop": ["END"], "messages": [{"role": "system", "content": "be brief"},
                                                  {"role": "system", "content": "rules"},
                                                  {"role": "user", "content": "hi"}]}


def test_invoke_kwargs_name_the_endpoint_and_the_inference_component() -> None:
    call = sm_call(component="llama-ic-1")
    kwargs = invoke_kwargs(call.deployment, to_chat(call))
    assert kwargs["EndpointName"] == ENDPOINT and kwargs["InferenceComponentName"] == "llama-ic-1"
    assert (kwargs["ContentType"], kwargs["Accept"]) == ("application/json", "application/json")
    assert json.loads(kwargs["Body"])["model"] == "llama-ic-1"  # the model the component serves
    assert "InferenceComponentName" not in invoke_kwargs(sm_call().deployment, b"{}")


def test_tools_tool_calls_and_results_keep_openai_shapes() -> None:
    call = sm_call(
        Message("user", "weather?"),
        Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),)),
        Message("tool", "cold", tool_call_id="call_1"),
        tools=(WEATHER,), tool_choice="get_weather")
    body = sent(call)  # WEATHER's parameters are read-only mappings: they must serialise
    validate(body, "CreateChatCompletionRequest")
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
    assert body["messages"][2] == {"role": "tool", "content": "cold", "tool_call_id": "call_1"}
    assert sent(sm_call(tools=(WEATHER,), tool_choice="required"))["tool_choice"] == "required"


def test_a_stream_asks_for_usage() -> None:
    body = sent(sm_call(stream=True))
    validate(body, "CreateChatCompletionRequest")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_any_text_serialises_to_ascii_json() -> None:
    body = to_chat(sm_call(Message("user", "zero\u200bwidth \U0001f600 \x00")))
    assert body.isascii() and json.loads(body)["messages"][0]["content"] == "zero\u200bwidth \U0001f600 \x00"


@settings(max_examples=100, deadline=None)
@given(text=st.text(), stop=st.lists(st.text(min_size=1), max_size=3), stream=st.booleans(),
       temperature=st.none() | st.floats(0, 2), top_p=st.none() | st.floats(0, 1))
def test_botocore_accepts_whatever_a_request_holds(text: str, stop: list[str], stream: bool,
                                                    temperature: float | None, top_p: float | None) -> None:
    # No caller-controlled value reaches botocore in a form it refuses on the client side (issue 8).
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    call = sm_call(Message("user", text), component="ic-1", stop=tuple(stop), stream=stream,
                   temperature=temperature, top_p=top_p)
    operation = "InvokeEndpointWithResponseStream" if stream else "InvokeEndpoint"
    report = ParamValidator().validate(invoke_kwargs(call.deployment, to_chat(call)),
                                       model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def embedding_call(*inputs: str, dimensions: int | None = None) -> EmbeddingCall:
    return EmbeddingCall(make_app(), Deployment("sagemaker", "bge-endpoint", "bge-sm"), inputs or ("a",),
                         dimensions, time.monotonic() + 10)


def test_embeddings_body_is_openai_shaped() -> None:
    body = json.loads(to_embeddings(embedding_call("one", "two", dimensions=64)))
    validate(body, "CreateEmbeddingRequest")
    assert body == {"model": "bge-endpoint", "input": ["one", "two"], "encoding_format": "float", "dimensions": 64}
    assert "dimensions" not in json.loads(to_embeddings(embedding_call("one")))


# --- answers -------------------------------------------------------------------------------------

def completion_body(message: dict[str, Any], finish: str = "stop", usage: Any = USAGE) -> bytes:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                            "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body).encode()


def test_a_completion_with_usage_and_cached_tokens() -> None:
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 8}}
    completion = from_chat(completion_body({"role": "assistant", "content": "hello"}, usage=usage))
    assert (completion.content, completion.finish_reason) == ("hello", "stop")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 5)
    assert completion.usage.cache_read_tokens == 8  # part of prompt_tokens, as OpenAI counts them


def test_tool_calls_in_a_completion_including_tgis_object_arguments() -> None:
    completion = from_chat(completion_body({"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"id": "0", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        finish="eos_token"))
    assert completion.tool_calls == (ToolCall("call_9", "get_weather", '{"city": "Oslo"}'),
                                     ToolCall("0", "get_weather", '{"city": "Rome"}'))
    assert completion.finish_reason == "tool_calls" and completion.content == ""


@pytest.mark.parametrize(("reason", "mapped"), [("stop", "stop"), ("eos_token", "stop"), ("stop_sequence", "stop"),
                                                ("length", "length"), ("tool_calls", "tool_calls"),
                                                ("content_filter", "content_filter"), (None, "stop")])
def test_finish_reasons_of_every_container(reason: str | None, mapped: str) -> None:
    assert from_chat(completion_body({"role": "assistant", "content": "x"}, finish=reason)).finish_reason == mapped


@pytest.mark.parametrize("raw", [b"not json", b"[1]", json.dumps({"choices": []}).encode(),
                                 completion_body({"role": "assistant", "content": "x"}, usage=None),
                                 completion_body({"role": "assistant", "content": "x"}, usage={"prompt_tokens": 1})])
def test_an_answer_the_gateway_cannot_bill_or_read_is_a_fault_of_the_deployment(raw: bytes) -> None:
    with pytest.raises(UpstreamError) as raised:
        from_chat(raw)
    assert raised.value.signal is Signal.DOWN and not raised.value.fallback


def test_an_error_object_in_a_200_is_the_models_failure_on_this_input() -> None:
    with pytest.raises(UpstreamError) as raised:
        from_chat(json.dumps({"object": "error", "message": "SECRET-PROMPT-TEXT", "code": 400}).encode())
    assert raised.value.signal is Signal.NONE and "SECRET" not in raised.value.message


# --- streams -------------------------------------------------------------------------------------

def test_a_stream_folds_into_one_completion() -> None:
    completion = from_stream([STREAM])
    assert (completion.content, completion.finish_reason) == (TEXT, "stop")
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=40))
def test_payload_parts_split_at_any_bytes_give_the_same_answer(points: list[int]) -> None:
    cuts = sorted(set(points))
    parts = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
    assert from_stream(parts) == from_stream([STREAM])


def test_one_byte_parts_even_inside_characters() -> None:
    assert from_stream([STREAM[i:i + 1] for i in range(len(STREAM))]).content == TEXT


def test_sse_details_crlf_comments_other_fields_multiline_data() -> None:
    raw = (b": keep-alive\r\n\r\nevent: message\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
           b"retry: 10\ndata:[DONE]\n\n")
    assert list(sse_data([raw])) == ['{"a":\n1}', "[DONE]"]


def test_json_lines_are_read_as_events_too() -> None:
    raw = b"".join(json.dumps(c).encode() + b"\n" for c in (chunk({"content": "a"}), chunk({"content": "b"}, "stop"),
                                                            chunk(None, usage=USAGE)))
    assert from_stream([raw[:7], raw[7:]]).content == "ab"


def test_streamed_tool_calls_assemble_by_index() -> None:
    raw = sse(chunk({"role": "assistant"}),
              chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "get_weather", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
              chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                     "function": {"name": "get_time", "arguments": "{}"}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}),
              chunk({}, "tool_calls"), chunk(None, usage=USAGE))
    completion = from_stream([raw])
    assert completion.tool_calls == (ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),
                                     ToolCall("call_b", "get_time", "{}"))
    assert completion.finish_reason == "tool_calls"


def test_done_ends_the_stream_whatever_follows() -> None:
    assert from_stream([STREAM + b"data: {not json\n\n"]).content == TEXT


def test_a_finished_stream_without_done_is_whole() -> None:
    assert from_stream([sse(chunk({"content": "x"}, "stop", usage=USAGE), done=False)]).content == "x"


@pytest.mark.parametrize("cut", [len(STREAM) // 3, STREAM.index(b'"finish_reason": "stop"'),
                                 STREAM.index(b'"usage"')])
def test_a_stream_that_ends_early_is_an_error_not_a_short_answer(cut: int) -> None:
    with pytest.raises(UpstreamError) as raised:
        from_stream([STREAM[:cut]])
    assert raised.value.code in ("upstream_stream_incomplete", "upstream_malformed_response")
    assert raised.value.signal is Signal.DOWN


def test_a_stream_that_never_reports_usage_says_so() -> None:
    with pytest.raises(UpstreamError) as raised:
        from_stream([sse(chunk({"content": "x"}), chunk({}, "stop"))])
    assert raised.value.code == "upstream_malformed_response"


def test_an_error_event_mid_stream_never_quotes_the_container() -> None:
    with pytest.raises(UpstreamError) as raised:
        from_stream([sse(chunk({"content": "x"}), {"error": "SECRET-PROMPT-TEXT", "error_type": "generation"})])
    assert raised.value.signal is Signal.NONE and "SECRET" not in raised.value.message


def test_invalid_utf8_or_endless_lines_are_refused() -> None:
    with pytest.raises(UpstreamError):
        from_stream([b"data: \xff\xfe\n\n"])
    with pytest.raises(UpstreamError):
        from_stream(b"x" * (1024 * 1024) for _ in range(8))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["choices", "message", "delta", "content", "tool_calls", "function", "name",
                         "arguments", "id", "index", "finish_reason", "usage", "prompt_tokens",
                         "completion_tokens", "data", "embedding", "error", "object"]), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_answer_is_read_or_refused_as_a_gateway_error(value: Any) -> None:
    # Whatever a container answers, the gateway answers an error of its own, never a 500.
    raw = json.dumps(value).encode()
    for read in (from_chat, lambda r: from_stream([b"data: " + r + b"\n\n"]),
                 lambda r: from_embeddings(r, embedding_call("a"))):
        try:
            read(raw)
        except GatewayError:
            pass


# --- embeddings ----------------------------------------------------------------------------------

def test_embeddings_come_back_in_input_order() -> None:
    raw = json.dumps({"object": "list", "data": [
        {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
        {"object": "embedding", "index": 0, "embedding": [1, 0]}], "usage": {"prompt_tokens": 3, "total_tokens": 3}})
    embedded = from_embeddings(raw.encode(), embedding_call("first", "second"))
    assert embedded.vectors == ((1.0, 0.0), (0.0, 1.0)) and embedded.prompt_tokens == 3


def test_embeddings_without_usage_are_counted_one_token_per_byte() -> None:
    raw = json.dumps({"data": [{"index": 0, "embedding": [0.5]}]}).encode()
    assert from_embeddings(raw, embedding_call("é!")).prompt_tokens == 3


@pytest.mark.parametrize("data", [[], [{"index": 0, "embedding": []}], [{"index": 0, "embedding": ["x"]}],
                                  [{"index": 0, "embedding": [1.0, 2.0, 3.0]}]])
def test_embeddings_of_the_wrong_shape_are_refused(data: list[Any]) -> None:
    with pytest.raises(UpstreamError):
        from_embeddings(json.dumps({"data": data}).encode(), embedding_call("a", dimensions=2))


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "status", "original", "error", "fallback", "signal"), [
    ("ValidationError", 400, None, InvalidRequest, False, Signal.NONE),
    ("AccessDeniedException", 400, None, PermissionDenied, False, Signal.NONE),
    ("ThrottlingException", 400, None, UpstreamThrottled, True, Signal.BUSY),
    ("ModelNotReadyException", 429, None, UpstreamThrottled, True, Signal.BUSY),
    ("ServiceUnavailable", 503, None, ServiceUnavailable, True, Signal.DOWN),
    ("InternalFailure", 500, None, ServiceUnavailable, True, Signal.DOWN),
    ("InternalDependencyException", 530, None, ServiceUnavailable, True, Signal.DOWN),
    ("InternalStreamFailure", None, None, ServiceUnavailable, True, Signal.DOWN),
    ("ModelStreamError", None, None, ServiceUnavailable, True, Signal.BUSY),
    ("ModelError", 424, 400, InvalidRequest, False, Signal.NONE),
    ("ModelError", 424, 422, InvalidRequest, False, Signal.NONE),
    ("ModelError", 424, 404, UpstreamError, False, Signal.NONE),
    ("ModelError", 424, None, UpstreamError, False, Signal.NONE),
    ("ModelError", 424, 429, UpstreamThrottled, True, Signal.BUSY),
    ("ModelError", 424, 408, DeadlineExceeded, True, Signal.BUSY),
    ("ModelError", 424, 500, ServiceUnavailable, True, Signal.DOWN),
    ("ModelError", 424, 503, ServiceUnavailable, True, Signal.DOWN),
    ("SomethingNew", 429, None, UpstreamThrottled, True, Signal.BUSY),
    ("SomethingNew", 502, None, ServiceUnavailable, True, Signal.DOWN),
    ("SomethingNew", 409, None, UpstreamError, False, Signal.NONE),
])
def test_error_mapping(code: str, status: int | None, original: int | None, error: type[GatewayError],
                       fallback: bool, signal: Signal) -> None:
    mapped = map_error(code, status, original)
    assert (type(mapped), mapped.fallback, mapped.signal) == (error, fallback, signal)
