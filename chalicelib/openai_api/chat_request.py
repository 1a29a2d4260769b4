"""OpenAI `POST /v1/chat/completions` body -> `ChatRequest`, or a 400 naming the field.

Unknown fields are ignored, as OpenAI-compatible servers do. Error messages name the field and the
rule, never the value: a value may be a customer's words, and error messages reach logs.
"""
from __future__ import annotations

from typing import Any

from chalicelib.chat import ChatRequest, Message, Tool, ToolCall
from chalicelib.errors import InvalidRequest
from chalicelib.generated.chat_request_validator import validate as validate_chat_request
from chalicelib.openai_api.chat_schema import CHAT_REQUEST_SCHEMA
from chalicelib.openai_api.strict_json import check_embedded_json, strict_json_object
from chalicelib.schema_validation import JsonSchemaValueException, coerce_integers, violation

def parse_chat_request(body: bytes) -> ChatRequest:
    raw = strict_json_object(body)
    _check_schema(raw)
    # The schema admits 1.0 where it says integer (JSON has one number type); past this point an
    # integer field holds an int, so no SDK downstream refuses it client-side.
    raw = coerce_integers(CHAT_REQUEST_SCHEMA, raw)
    if raw.get("n") not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported", param="n", code="unsupported_value")
    stop = raw.get("stop")
    stream_options = raw.get("stream_options") or {}
    tools = tuple(_tool(t["function"]) for t in raw.get("tools") or ())
    tool_choice = _tool_choice(raw.get("tool_choice"))
    if tool_choice not in (None, "none", "auto", "required") and tool_choice not in {t.name for t in tools}:
        raise InvalidRequest("tool_choice: names a function that is not in tools", param="tool_choice",
                             code="invalid_value")
    return ChatRequest(
        model=raw["model"],
        messages=tuple(_message(i, m) for i, m in enumerate(raw["messages"])),
        max_tokens=raw.get("max_completion_tokens") or raw.get("max_tokens"),
        temperature=raw.get("temperature"),
        top_p=raw.get("top_p"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        stream=bool(raw.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
        user=raw.get("user"),
        metadata=dict(raw.get("metadata") or {}),
        tools=tools,
        tool_choice=tool_choice if tools else None,
    )


def _check_schema(raw: dict[str, Any]) -> None:
    try:
        validate_chat_request(raw)
    except JsonSchemaValueException as error:
        param, rule = violation(error)
        raise InvalidRequest(f"{param}: {rule}", param=param, code="invalid_value") from None


def _message(index: int, m: dict[str, Any]) -> Message:
    role = "system" if m["role"] == "developer" else m["role"]
    content = m.get("content")
    if content is None and not (role == "assistant" and m.get("tool_calls")):
        # Only an assistant message that calls tools may go without content.
        _missing(f"messages[{index}].content")
    if role == "tool" and not m.get("tool_call_id"):
        _missing(f"messages[{index}].tool_call_id")
    parts: tuple[str, ...] = ()
    if isinstance(content, list):
        for j, part in enumerate(content):
            if "text" not in part:
                _missing(f"messages[{index}].content[{j}].text")
        # Joined with nothing, as a model reads consecutive text parts: a number or a phrase split
        # across parts is one number or phrase to the screens too.
        parts = tuple(part["text"] for part in content)
        content = "".join(parts)
    for j, c in enumerate(m.get("tool_calls") or ()):
        check_embedded_json(c["function"]["arguments"], f"messages[{index}].tool_calls[{j}].function.arguments")
    calls = tuple(ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"])
                  for c in m.get("tool_calls") or ())
    return Message(role=role, content=content or "", tool_calls=calls, tool_call_id=m.get("tool_call_id"),
                   parts=parts)


def _missing(param: str) -> None:
    raise InvalidRequest(f"{param}: is required", param=param, code="invalid_value")


def _tool(function: dict[str, Any]) -> Tool:
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return Tool(name=function["name"], description=function.get("description"), parameters=parameters)


def _tool_choice(choice: Any) -> str | None:
    if isinstance(choice, dict):
        return choice["function"]["name"]  # the one function the model must call
    return choice
