"""Bedrock Converse translation: pure functions, no network."""
from __future__ import annotations

import json

import pytest

from chalicelib.chat import Message, Tool, ToolCall, Usage
from chalicelib.errors import (
    DeadlineExceeded, InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable, UpstreamError,
    UpstreamThrottled,
)
from chalicelib.providers.bedrock.translate import from_converse, from_stream, map_error, to_converse
from fakes.provider_calls import WEATHER, make_call



def test_plain_request_sets_model_system_and_always_max_tokens() -> None:
    kwargs = to_converse(make_call(Message("system", "be brief"), Message("user", "hi"), max_tokens=99))
    assert kwargs == {
        "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
        "system": [{"text": "be brief"}],
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 99},
        "requestMetadata": {"garden:app": "test-app", "garden:business_unit": "retail-banking"},
    }


def test_text_parts_stay_separate_blocks() -> None:
    parts = ("my card [CREDIT_DEBIT_NUMBER]", "", " ok")
    kwargs = to_converse(make_call(Message("user", "".join(parts), parts=parts)))
    assert kwargs["messages"] == [{"role": "user", "content": [
        {"text": "my card [CREDIT_DEBIT_NUMBER]"}, {"text": " ok"}]}]


def test_sampling_options_and_stop_sequences() -> None:
    kwargs = to_converse(make_call(temperature=0.2, top_p=0.9, stop=("END", "STOP")))
    assert kwargs["inferenceConfig"] == {"maxTokens": 256, "temperature": 0.2, "topP": 0.9,
                                         "stopSequences": ["END", "STOP"]}


def test_consecutive_same_role_messages_merge_and_developer_is_system() -> None:
    kwargs = to_converse(make_call(
        Message("developer", "rules"), Message("user", "a"), Message("user", "b"),
        Message("assistant", "c"), Message("assistant", "d"), Message("user", "e")))
    assert kwargs["system"] == [{"text": "rules"}]
    assert kwargs["messages"] == [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
        {"role": "assistant", "content": [{"text": "c"}, {"text": "d"}]},
        {"role": "user", "content": [{"text": "e"}]},
    ]


def test_tool_calls_and_results_become_tool_use_and_tool_result_blocks() -> None:
    kwargs = to_converse(make_call(
        Message("user", "weather?"),
        Message("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Oslo"}'),
                                             ToolCall("call_2", "get_weather", '{"city": "Rome"}'))),
        Message("tool", "cold", tool_call_id="call_1"),
        Message("tool", "warm", tool_call_id="call_2"),
        Message("user", "thanks"),
        tools=(WEATHER,), tool_choice="auto"))
    assert kwargs["messages"] == [
        {"role": "user", "content": [{"text": "weather?"}]},
        {"role": "assistant", "content": [  # no blank text block: Converse rejects those
            {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}},
            {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {"city": "Rome"}}}]},
        {"role": "user", "content": [  # both results and the next user text in one user turn
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "cold"}]}},
            {"toolResult": {"toolUseId": "call_2", "content": [{"text": "warm"}]}},
            {"text": "thanks"}]},
    ]


def test_invalid_tool_arguments_are_a_400_naming_the_field() -> None:
    call = make_call(Message("user", "x"),
                     Message("assistant", "", tool_calls=(ToolCall("c", "f", "{}"), ToolCall("d", "f", "{bad"))))
    with pytest.raises(InvalidRequest) as info:
        to_converse(call)
    assert info.value.status == 400
    assert info.value.param == "messages[1].tool_calls[1].function.arguments"
    assert "{bad" not in info.value.message


@pytest.mark.parametrize("choice, expected", [
    (None, None), ("auto", {"auto": {}}), ("required", {"any": {}}),
    ("get_weather", {"tool": {"name": "get_weather"}}),
])
def test_tool_config_and_tool_choice(choice: str | None, expected: dict | None) -> None:
    config = to_converse(make_call(tools=(WEATHER,), tool_choice=choice))["toolConfig"]
    assert config["tools"] == [{"toolSpec": {
        "name": "get_weather", "description": "Weather for a city",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]
    assert config.get("toolChoice") == expected
    json.dumps(config)  # plain dicts: botocore serialises documents with json.dumps


def test_tool_choice_none_omits_tool_config() -> None:
    assert "toolConfig" not in to_converse(make_call(tools=(WEATHER,), tool_choice="none"))


def test_tool_without_description_or_parameters() -> None:
    config = to_converse(make_call(tools=(Tool("ping", None, {}),)))["toolConfig"]
    assert config["tools"] == [{"toolSpec": {"name": "ping", "inputSchema": {
        "json": {"type": "object", "properties": {}}}}}]


def test_prompt_caching_puts_cache_points_after_system_and_tools() -> None:
    kwargs = to_converse(make_call(Message("system", "s1"), Message("system", "s2"), Message("user", "u"),
                                   prompt_caching=True, tools=(WEATHER,)))
    assert kwargs["system"] == [{"text": "s1"}, {"text": "s2"}, {"cachePoint": {"type": "default"}}]
    assert kwargs["toolConfig"]["tools"][-1] == {"cachePoint": {"type": "default"}}
    assert len(kwargs["toolConfig"]["tools"]) == 2
    plain = to_converse(make_call(Message("system", "s1"), Message("user", "u"), tools=(WEATHER,)))
    assert "cachePoint" not in json.dumps(plain)


def _response(content: list, stop: str, **usage: int) -> dict:
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, **usage}}


@pytest.mark.parametrize("stop, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
])
def test_stop_reasons(stop: str, finish: str) -> None:
    assert from_converse(_response([{"text": "x"}], stop)).finish_reason == finish


@pytest.mark.parametrize("stop", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_output_is_an_upstream_error(stop: str) -> None:
    with pytest.raises(UpstreamError):
        from_converse(_response([{"text": "x"}], stop))


def test_text_joined_and_tool_use_becomes_tool_call() -> None:
    completion = from_converse(_response(
        [{"text": "Let me "}, {"text": "check."},
         {"toolUse": {"toolUseId": "tu1", "name": "get_weather", "input": {"city": "Oslo"}}}], "tool_use"))
    assert completion.content == "Let me check."
    assert completion.tool_calls == (ToolCall("tu1", "get_weather", '{"city": "Oslo"}'),)
    assert completion.usage == Usage(10, 5)


def test_usage_adds_cache_tokens_to_prompt_tokens() -> None:
    usage = from_converse(_response([{"text": "x"}], "end_turn",
                                    cacheReadInputTokens=1000, cacheWriteInputTokens=200)).usage
    assert usage == Usage(prompt_tokens=1210, completion_tokens=5, cache_read_tokens=1000,
                          cache_write_tokens=200)


def _stream_events() -> list[dict]:
    return [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hel"}}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "lo"}}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu9", "name": "f"}}}},
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"a": '}}}},
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '[1, 2]}'}}}},
        {"contentBlockStop": {"contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "tool_use"}},
        {"metadata": {"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 12,
                                "cacheReadInputTokens": 2}, "metrics": {"latencyMs": 1}}},
    ]


def test_stream_accumulates_text_tool_input_stop_and_usage() -> None:
    completion = from_stream(_stream_events())
    assert completion.content == "Hello"
    assert completion.tool_calls == (ToolCall("tu9", "f", '{"a": [1, 2]}'),)
    assert completion.finish_reason == "tool_calls"
    assert completion.usage == Usage(9, 3, cache_read_tokens=2)


def test_stream_cut_before_metadata_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        from_stream(_stream_events()[:-2])


@pytest.mark.parametrize("code, status, error, error_code", [
    ("ValidationException", 400, InvalidRequest, "upstream_validation"),
    ("AccessDeniedException", 403, PermissionDenied, "upstream_access_denied"),
    ("ResourceNotFoundException", 404, NotFound, "upstream_model_not_found"),
    ("ThrottlingException", 429, UpstreamThrottled, "upstream_throttled"),
    ("ModelNotReadyException", 429, UpstreamThrottled, "upstream_throttled"),
    ("ServiceQuotaExceededException", 400, UpstreamThrottled, "upstream_throttled"),
    ("ModelTimeoutException", 408, DeadlineExceeded, "upstream_timeout"),
    ("ModelErrorException", 424, UpstreamError, "upstream_model_error"),
    ("ServiceUnavailableException", 503, ServiceUnavailable, "upstream_unavailable"),
    ("InternalServerException", 500, ServiceUnavailable, "upstream_unavailable"),
    ("modelStreamErrorException", None, UpstreamError, "upstream_model_error"),
    ("throttlingException", None, UpstreamThrottled, "upstream_throttled"),
    ("SomethingNew", 400, UpstreamError, "upstream_error"),
])
def test_map_error(code: str, status: int | None, error: type, error_code: str) -> None:
    mapped = map_error(code, status)
    assert type(mapped) is error and mapped.code == error_code
    assert mapped.status == error.status


@pytest.mark.parametrize("tools, choice", [((), None), ((WEATHER,), "none")])
def test_tool_history_without_tool_config_is_carried_as_text(tools: tuple, choice: str | None) -> None:
    # Converse rejects toolUse/toolResult blocks when no toolConfig is sent.
    kwargs = to_converse(make_call(
        Message("user", "weather?"),
        Message("assistant", "Checking.", tool_calls=(ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),)),
        Message("tool", "cold", tool_call_id="call_1"),
        Message("user", "so?"), tools=tools, tool_choice=choice))
    assert "toolConfig" not in kwargs
    assert kwargs["messages"] == [
        {"role": "user", "content": [{"text": "weather?"}]},
        {"role": "assistant", "content": [{"text": "Checking."},
                                          {"text": '[tool call call_1: get_weather({"city": "Oslo"})]'}]},
        {"role": "user", "content": [{"text": "[tool result for call_1]: cold"}, {"text": "so?"}]},
    ]
