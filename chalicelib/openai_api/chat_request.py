"""OpenAI `POST /v1/chat/completions` body -> `ChatRequest`, or a 400 naming the field.

Unknown fields are ignored, as OpenAI-compatible servers do. Error messages name the field and the
rule, never the value: a value may be a customer's words, and error messages reach logs.
"""
from __future__ import annotations

import json
from typing import Any

from chalicelib.chat import ChatRequest, Message
from chalicelib.errors import InvalidRequest
from chalicelib.generated.chat_request_validator import validate as validate_chat_request
from chalicelib.schema_validation import JsonSchemaValueException, dotted

# What to say for each JSON Schema rule; none of them quotes the offending value.
_RULES = {
    "type": "has the wrong type",
    "required": "is required",
    "enum": "is not one of the accepted values",
    "const": "is not supported",
    "minimum": "is below the minimum",
    "maximum": "is above the maximum",
    "minItems": "must not be empty",
    "maxItems": "has too many items",
    "minLength": "must not be empty",
    "maxLength": "is too long",
    "maxProperties": "has too many keys",
    "propertyNames": "has a key that is too long",
}


def parse_chat_request(body: bytes) -> ChatRequest:
    raw = _json_object(body)
    _check_schema(raw)
    if raw.get("n") not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported", param="n", code="unsupported_value")
    stop = raw.get("stop")
    stream_options = raw.get("stream_options") or {}
    return ChatRequest(
        model=raw["model"],
        messages=tuple(_message(m) for m in raw["messages"]),
        max_tokens=raw.get("max_completion_tokens") or raw.get("max_tokens"),
        temperature=raw.get("temperature"),
        top_p=raw.get("top_p"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
        stream=bool(raw.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
        user=raw.get("user"),
        metadata=dict(raw.get("metadata") or {}),
    )


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("request body is empty: expected a JSON object", code="invalid_json")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("request body is not valid JSON", code="invalid_json") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    return raw


def _check_schema(raw: dict[str, Any]) -> None:
    try:
        validate_chat_request(raw)
    except JsonSchemaValueException as error:
        path = error.path
        if error.rule == "required":
            # Name the first required property that is missing, not the object that lacks it.
            path = path + [next(p for p in error.rule_definition if p not in error.value)]
        if path == ["tools"]:
            raise InvalidRequest("tools: tool calling is not supported yet", param="tools",
                                 code="unsupported_parameter") from None
        param = dotted(path) or "(body)"
        rule = _RULES.get(error.rule or "", "is invalid")
        raise InvalidRequest(f"{param}: {rule}", param=param, code="invalid_value") from None


def _message(m: dict[str, Any]) -> Message:
    role = "system" if m["role"] == "developer" else m["role"]
    content = m["content"]
    if isinstance(content, list):
        content = "\n".join(part["text"] for part in content)
    return Message(role=role, content=content)
