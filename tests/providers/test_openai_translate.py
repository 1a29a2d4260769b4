"""OpenAI-compatible translation and SSE decoding: pure functions, no network."""
from __future__ import annotations

import json
import random
import time
from dataclasses import replace

import pytest
from fakes.provider_calls import WEATHER, make_call

from chalicelib.catalog import Deployment
from chalicelib.chat import Message, ToolCall, Usage
from chalicelib.errors import (DeadlineExceeded, InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable,
                               Signal, UpstreamError, UpstreamThrottled)
from chalicelib.providers import EmbeddingCall
from chalicelib.providers.openai import translate
from chalicelib.providers.sse import SseDecoder

DEPLOYMENT = Deployment(provider="openai", model_id="upstream-chat", name="tier", base_url="http://127.0.0.1:1/v1")


def call(*messages: Message, **request: object):  # type: ignore[no-untyped-def]
    return replace(make_call(*messages, **request), deployment=DEPLOYMENT)


def test_plain_request_always_sets_max_tokens_and_never_forwards_user_or_metadata() -> None:
    body = translate.chat_body(call(Message("developer", "be brief"), Message("user", "hi"), max_tokens=99,
                                    user="caller-7", metadata={"k": "v"}))
    assert body == {"model": "upstream-chat", "max_tokens": 99,
                    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}


def test_sampling_stop_parts_and_stream_options() -> None:
    parts = ("my card [CREDIT_DEBIT_NUMBER]", " ok")
    body = translate.chat_body(call(Message("user", "".join(parts), parts=parts), temperature=1.5, top_p=0.9,
                                    stop=("END",), stream=True))
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": parts[0]},
                                                             {"type": "text", "text": parts[1]}]}]
    assert (body["temperature"], body["top_p"], body["stop"]) == (1.5, 0.9, ["END"])
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_tools_tool_choice_and_tool_history() -> None:
    history = (Message("user", "weather?"),
               Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),)),
               Message("tool", "rainy", tool_call_id="call_1"))
    body = translate.chat_body(call(*history, tools=(WEATHER,), tool_choice="get_weather"))
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "rainy"}
    for choice in ("auto", "none", "required"):
        assert translate.chat_body(call(tools=(WEATHER,), tool_choice=choice))["tool_choice"] == choice
    json.loads(translate.encode(body))  # read-only mappings became plain JSON


@pytest.mark.parametrize(("field", "value"), [("temperature", 2.5), ("top_p", -0.1), ("temperature", float("nan"))])
def test_out_of_range_sampling_is_a_400_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(InvalidRequest) as caught:
        translate.chat_body(call(**{field: value}))
    assert caught.value.param == field and str(value) not in caught.value.message


def test_embeddings_body_asks_floats_and_passes_dimensions() -> None:
    embed = EmbeddingCall(make_call().app, DEPLOYMENT, ("a", "b"), 64, time.monotonic() + 5)
    assert translate.embeddings_body(embed) == {"model": "upstream-chat", "input": ["a", "b"],
                                                "encoding_format": "float", "dimensions": 64}
    assert "dimensions" not in translate.embeddings_body(replace(embed, dimensions=None))


def test_completion_with_cached_tokens_and_tool_calls() -> None:
    completion = translate.from_chat({
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 60}}})
    assert completion.content == "" and completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("c1", "f", '{"a":1}'),)
    assert completion.usage == Usage(prompt_tokens=100, completion_tokens=7, cache_read_tokens=60)


def test_litellm_cache_writes_are_read_and_never_exceed_the_prompt() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 4},
             "cache_creation_input_tokens": 50}
    completion = translate.from_chat({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
                                      "usage": usage})
    assert completion.usage == Usage(10, 1, cache_read_tokens=4, cache_write_tokens=6)


def test_missing_usage_or_choices_are_upstream_faults_never_quoting() -> None:
    with pytest.raises(UpstreamError) as no_usage:
        translate.from_chat({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]})
    assert no_usage.value.code == "upstream_no_usage" and no_usage.value.signal is Signal.NONE
    with pytest.raises(UpstreamError) as malformed:
        translate.from_chat({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    assert malformed.value.code == "upstream_malformed_response"
    with pytest.raises(UpstreamError):
        translate.decode(b"<html>SECRET-PROMPT-TEXT</html>")


def _sse(events: list[dict], eol: str = "\n") -> bytes:
    return "".join(f"data: {json.dumps(e)}{eol}{eol}" for e in events).encode() + f"data: [DONE]{eol}{eol}".encode()


STREAM = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": "Grüß "}}]},
    {"choices": [{"index": 0, "delta": {"content": "dich 🌍"}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c9", "function": {"name": "f",
                                                                                         "arguments": '{"a"'}}]}}]},
    {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 2}"}}]}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 3}}},
]


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_stream_split_at_every_odd_place_folds_to_one_completion(eol: str) -> None:
    payload = _sse(STREAM, eol)
    rng = random.Random(7)
    for trial in range(40):
        cuts = sorted(rng.sample(range(1, len(payload)), k=min(len(payload) - 1, 1 + trial * 3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        decoder = SseDecoder()
        events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.end()
        completion = translate.from_chunks(events)
        assert completion.content == "Grüß dich 🌍"
        assert completion.tool_calls == (ToolCall("c9", "f", '{"a": 2}'),)
        assert completion.finish_reason == "tool_calls"
        assert completion.usage == Usage(9, 4, cache_read_tokens=3)


def test_sse_comments_multiline_data_and_a_last_event_without_blank_line() -> None:
    decoder = SseDecoder()
    events = decoder.feed(b": ping\n\nevent: x\ndata: a\ndata:b\nid: 1\n\ndata: tail")
    assert events == ["a\nb"]
    assert decoder.end() == ["tail"]


def test_a_cut_stream_or_an_error_event_is_an_error() -> None:
    events = [json.dumps(e) for e in STREAM[:3]]
    with pytest.raises(UpstreamError) as cut:
        translate.from_chunks(events)
    assert cut.value.code == "upstream_stream_incomplete" and cut.value.signal is Signal.DOWN
    with pytest.raises(UpstreamThrottled):
        translate.from_chunks(events + [json.dumps({"error": {"message": "SECRET-PROMPT-TEXT", "code": 429}})])
    with pytest.raises(ServiceUnavailable) as failed:
        translate.from_chunks(events + [json.dumps({"error": {"message": "SECRET-PROMPT-TEXT", "code": "boom"}})])
    assert "SECRET" not in failed.value.message


@pytest.mark.parametrize(("status", "error", "fallback", "signal"), [
    (400, InvalidRequest, False, Signal.NONE), (422, InvalidRequest, False, Signal.NONE),
    (401, translate.UpstreamMisconfigured, False, Signal.NONE), (403, PermissionDenied, False, Signal.NONE),
    (404, NotFound, False, Signal.NONE), (408, DeadlineExceeded, True, Signal.BUSY),
    (429, UpstreamThrottled, True, Signal.BUSY), (500, ServiceUnavailable, True, Signal.DOWN),
    (502, ServiceUnavailable, True, Signal.DOWN), (503, ServiceUnavailable, True, Signal.DOWN),
    (409, UpstreamError, False, Signal.NONE),
])
def test_status_mapping(status: int, error: type, fallback: bool, signal: Signal) -> None:
    mapped = translate.map_status(status)
    assert type(mapped) is error and mapped.fallback is fallback and mapped.signal is signal
    assert mapped.status == {401: 503, 408: 504, 409: 502, 500: 503, 502: 503, 422: 400}.get(status, status)


@pytest.mark.parametrize(("kind", "fallback", "signal"), [
    ("read_timeout", True, Signal.BUSY), ("connect_timeout", True, Signal.DOWN), ("unreachable", True, Signal.DOWN),
    ("broken", True, Signal.DOWN), ("no_time", True, Signal.NONE), ("too_large", False, Signal.NONE)])
def test_transport_mapping(kind: str, fallback: bool, signal: Signal) -> None:
    mapped = translate.map_transport(kind)
    assert mapped.fallback is fallback and mapped.signal is signal


@pytest.mark.parametrize(("status", "body", "refused"), [
    (401, b"", True),
    (400, b'{"error": {"message": "No connected db.", "type": "no_db_connection", "code": "400"}}', True),
    (403, b'{"error": {"message": "SECRET-PROMPT-TEXT", "type": "auth_error"}}', True),
    (400, b'{"error": {"message": "SECRET-PROMPT-TEXT", "type": "invalid_request_error"}}', False),
    (400, b"<html>not json</html>", False), (400, b"[1]", False), (500, b'{"error": {"type": "auth_error"}}', False),
])
def test_key_refusals_are_read_from_the_status_or_the_error_type_only(status: int, body: bytes, refused: bool) -> None:
    assert translate.key_refused(status, body) is refused


def test_odd_but_valid_answers_and_garbage_usage() -> None:
    completion = translate.from_chat({
        "choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                                 "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"x": 1}}}]},
                     "finish_reason": "function_call"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    assert completion.content == "ab" and completion.tool_calls == (ToolCall("c", "f", '{"x": 1}'),)
    assert completion.finish_reason == "tool_calls"
    for usage in ({"prompt_tokens": "many", "completion_tokens": 1}, {"prompt_tokens": 1, "completion_tokens": [1]}):
        with pytest.raises(UpstreamError):
            translate.from_chat({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}], "usage": usage})
        with pytest.raises(UpstreamError):
            translate.from_chunks([json.dumps({"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}],
                                               "usage": usage})])
